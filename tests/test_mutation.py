"""The transcript tests bite: with any one random component of any dealer correlation disabled, they fail.

A disabled mask (``mpsim.transcript.disabled_mask``) draws that component as zeros (a permutation as the
identity) and derives the rest of the correlation from it, so the correlation stays valid and every protocol
still computes its result; only the secrecy is gone. For each correlation the dealer offers, and each of its
random components in turn, the protocols whose example uses it are run through the same check as
tests/test_transcripts.py until one reports a problem; the test fails if none does. It also fails if the
dealer offers a correlation that no registered protocol uses (its mask could then never be checked).
"""
from __future__ import annotations

import functools
from contextlib import ExitStack

import pytest

from mpsim.dealer import Dealer
from mpsim.transcript import counted_draws, disabled_mask
from protocols.registry import REGISTRY
from transcript_env import run_once, transcript_problems

PARTIES, RING_BITS = 2, 64


@functools.cache
def usage() -> tuple[dict, dict]:
    """({correlation: [protocols whose example uses it, cheapest first]}, {correlation: random components
    drawn in one use})."""
    users, components = {}, {}
    for name in sorted(REGISTRY):
        if not REGISTRY[name].parties(PARTIES):
            continue
        counts = {}

        def counting(s, counts=counts):
            stack = ExitStack()
            for correlation in Dealer.correlations():
                counts[correlation] = stack.enter_context(counted_draws(s, correlation))
            return stack

        transcript, _, _ = run_once(name, PARTIES, RING_BITS, 0, "example", mutation=counting)
        for correlation, draws in counts.items():
            if draws:
                users.setdefault(correlation, []).append((len(transcript.observations), name))
                components[correlation] = max(components.get(correlation, 0), *draws)
    return {c: [n for _, n in sorted(v)] for c, v in users.items()}, components


def test_every_correlation_is_used_by_a_registered_protocol():
    users, _ = usage()
    assert set(users) == set(Dealer.correlations()), (
        f"correlations no registered protocol's example uses: {sorted(set(Dealer.correlations()) - set(users))}")


@pytest.mark.parametrize("correlation", Dealer.correlations())
def test_disabling_any_mask_makes_a_transcript_test_fail(correlation):
    users, components = usage()
    assert correlation in users, f"no registered protocol uses {correlation}"
    for component in range(components[correlation]):
        caught = None
        for name in users[correlation]:
            problems, _ = transcript_problems(
                name, PARTIES, RING_BITS,
                mutation=lambda s: disabled_mask(s, correlation, component))
            if problems:
                caught = (name, problems[0])
                break
        assert caught, (f"{correlation}: with random component {component} disabled, no transcript test of "
                        f"{users[correlation]} fails")
