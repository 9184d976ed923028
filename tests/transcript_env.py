"""Shared helper of tests/test_transcripts.py and tests/test_mutation.py: run a registered protocol's example
over many seeds for two different secrets and collect what every party sees (``mpsim.transcript``).

The two secrets: the example's own inputs ("example"), and every input replaced by a constant, the largest of
its values ("constant", which keeps index and positivity domains). Inputs are intercepted where examples make
them (``session.input`` and ``protocols.boolean.share_bits``); their sharings join the transcript, so every
party's own input shares are tested too. Only the protocol call itself is recorded and, when a mutation is
given, mutated.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np

import mpsim
import protocols
from mpsim import SharedTensor
from mpsim.transcript import independence_problems, record
from protocols.reuse import MaskedOperand
from protocols.registry import CELLS, REGISTRY, lookup

SEEDS = 40  # freshness false alarm 2^(1 - SEEDS) per cell (mpsim/transcript.py)
SECRETS = ("example", "constant")
RINGS = {64: 16, 32: 8}
CONFIGS = [(2, 64), (3, 64), (2, 32), (3, 32)]
SCHEME_CONFIGS = {"additive": CONFIGS, "aby3": [(3, 64), (3, 32)], "fss": [(2, 64), (2, 32)]}


def _variant(values, secret: str):
    array = np.asarray(values)
    if secret == "example" or array.size == 0:
        return values
    return np.full_like(array, array.max())


@contextmanager
def secret_inputs(session, secret: str, inputs: list):
    """Within the block, inputs made by ``session.input`` or ``share_bits`` take the ``secret`` variant and
    their sharings are appended to ``inputs``."""
    plain_input, plain_bits = session.input, protocols.boolean.share_bits

    def input_(values, *args, **kwargs):
        tensor = plain_input(_variant(values, secret), *args, **kwargs)
        inputs.append(("input", tensor))
        return tensor

    def share_bits(s, values, *args, **kwargs):
        tensor = plain_bits(s, _variant(values, secret), *args, **kwargs)
        inputs.append(("boolean input", tensor))
        return tensor

    session.input, protocols.boolean.share_bits = input_, share_bits
    try:
        yield
    finally:
        del session.input
        protocols.boolean.share_bits = plain_bits


def run_once(name, parties, ring_bits, seed, secret, mutation=None, scheme="additive"):
    """One seeded run of ``name``'s example on real shares; returns (transcript, session, output)."""
    entry = CELLS[lookup(scheme, name)]  # a suite's own cell, or the one of the scheme it overlays
    s = mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=RINGS[ring_bits], seed=seed, scheme=scheme)
    inputs = []
    with secret_inputs(s, secret, inputs):
        args, kwargs = entry.example(s)
    if name == "input":  # the protocol is the input sharing itself
        args = (args[0], _variant(args[1], secret)) + tuple(args[2:])
    with record(s) as transcript, (mutation(s) if mutation else nullcontext()):
        out = entry.fn(*args, **kwargs)
    if name == "input":
        transcript.add_input(out, "input")
    else:
        for i, tensor in enumerate(_results(out)):
            transcript.add_output(tensor, f"result {i}")
    for label, tensor in inputs:
        transcript.add_input(tensor, label)
    return transcript, s, out


def _results(out) -> list:
    """The shared results among a protocol's return values (a reusable operand contributes its mask shares)."""
    items = out if isinstance(out, (tuple, list)) else [out]
    results = []
    for item in items:
        if isinstance(item, SharedTensor):
            results.append(item)
        elif isinstance(item, MaskedOperand):
            results.append(SharedTensor(item.session, item.mask_shares, item.shape, 0))
    return results


def leaks_of(scheme="additive"):
    """The leak its innermost registered protocol (of ``scheme``) declares for an observation's op (or None)."""

    def innermost_leak(observation):
        for part in reversed(observation.scope.split("/")):
            key = lookup(scheme, part)
            if key is not None:
                return CELLS[key].leaked.get(observation.op)
        return None

    return innermost_leak


innermost_leak = leaks_of("additive")


def transcript_problems(name, parties, ring_bits, seeds=SEEDS, mutation=None, scheme="additive"):
    """The independence problems of ``name``'s transcripts over ``seeds`` seeds and both secrets, and the
    runs ({secret: [Transcript]})."""
    runs = {secret: [run_once(name, parties, ring_bits, seed, secret, mutation, scheme)[0] for seed in range(seeds)]
            for secret in SECRETS}
    randomized = CELLS[lookup(scheme, name)].kind == "randomized"
    return independence_problems(runs, leaks=leaks_of(scheme), randomized=randomized), runs


def cases():
    """(name, parties, ring_bits) for every registered protocol and every configuration it supports."""
    return [(name, n, k) for name in sorted(REGISTRY) for n, k in CONFIGS if REGISTRY[name].parties(n)]


def scheme_cases():
    """(scheme, name, parties, ring_bits) for every cell of the schemes other than additive."""
    return [(scheme, name, n, k) for (scheme, name) in sorted(CELLS) if scheme != "additive"
            for n, k in SCHEME_CONFIGS[scheme] if CELLS[(scheme, name)].parties(n)]
