"""The transcript tests bite: with any one random component of any dealer correlation disabled, they fail.

A disabled mask (``mpsim.transcript.disabled_mask``) draws that component as zeros (a permutation as the
identity) and derives the rest of the correlation from it, so the correlation stays valid and every protocol
still computes its result; only the secrecy is gone. For each correlation the dealer offers, and each of its
random components in turn, the protocols whose example uses it are run through the same check as
tests/test_transcripts.py until one reports a problem; the test fails if none does. It also fails if the
dealer offers a correlation that no registered protocol uses (its mask could then never be checked). The
same holds for every scheme's own source of randomness (ABY3's PRF keys, ``protocols.aby3.prf``).
"""
from __future__ import annotations

import functools
from contextlib import ExitStack

import pytest

from mpsim.dealer import Dealer
from mpsim.transcript import counted_draws, disabled_mask
from protocols.aby3.prf import Keys
from protocols.fss.keys import FssKeys
from protocols.registry import of
from transcript_env import run_once, transcript_problems

RING_BITS = 64
# Each scheme's source of correlated randomness, and the party count its mutations run at.
SOURCES = {"additive": (Dealer, 2), "aby3": (Keys, 3), "fss": (FssKeys, 2)}
MUTATIONS = [(scheme, c) for scheme, (source, _) in SOURCES.items() for c in source.correlations()]


@functools.cache
def usage(scheme: str = "additive") -> tuple[dict, dict]:
    """({correlation: [protocols whose example uses it, cheapest first]}, {correlation: random components
    drawn in one use}), for one scheme."""
    source, parties = SOURCES[scheme]
    users, components = {}, {}
    cells = of(scheme)
    for name in sorted(cells):
        if not cells[name].parties(parties):
            continue
        counts = {}

        def counting(s, counts=counts):
            stack = ExitStack()
            for correlation in source.correlations():
                counts[correlation] = stack.enter_context(counted_draws(s, correlation))
            return stack

        transcript, _, _ = run_once(name, parties, RING_BITS, 0, "example", mutation=counting, scheme=scheme)
        for correlation, draws in counts.items():
            if draws:
                users.setdefault(correlation, []).append((len(transcript.observations), name))
                components[correlation] = max(components.get(correlation, 0), *draws)
    return {c: [n for _, n in sorted(v)] for c, v in users.items()}, components


@pytest.mark.parametrize("scheme", sorted(SOURCES))
def test_every_correlation_is_used_by_a_registered_protocol(scheme):
    users, _ = usage(scheme)
    offered = set(SOURCES[scheme][0].correlations())
    assert set(users) == offered, (
        f"{scheme}: correlations no registered protocol's example uses: {sorted(offered - set(users))}")


@pytest.mark.filterwarnings("ignore::mpsim.TruncationWarning")
@pytest.mark.parametrize("scheme,correlation", MUTATIONS)
def test_disabling_any_mask_makes_a_transcript_test_fail(scheme, correlation):
    users, components = usage(scheme)
    parties = SOURCES[scheme][1]
    assert correlation in users, f"no registered protocol uses {correlation}"
    for component in range(components[correlation]):
        caught = None
        for name in users[correlation]:
            problems, _ = transcript_problems(
                name, parties, RING_BITS, scheme=scheme,
                mutation=lambda s: disabled_mask(s, correlation, component))
            if problems:
                caught = (name, problems[0])
                break
        assert caught, (f"{correlation}: with random component {component} disabled, no transcript test of "
                        f"{users[correlation]} fails")
