"""Every registered protocol's transcript is independent of the secrets (the method: mpsim/transcript.py).

For each protocol and each configuration it supports (N in {2, 3}, K in {32, 64}), its registered example
runs on real shares over ``SEEDS`` seeds for two secrets (the example's inputs, and a constant), and what each
party sees (its input and result shares, every message it receives, every opened value) must pass the
structure, uniformity, freshness and declared-leak tests. tests/test_mutation.py proves these tests fail when
any one mask of any dealer correlation is disabled.
"""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
from mpsim.transcript import (ALPHA, Transcript, bit_tolerance, freshness_problem, independence_problems,
                              quantities, record, same_law_problem, uniformity_problem)
from protocols.registry import REGISTRY
from transcript_env import SEEDS, cases, innermost_leak, leaks_of, run_once, scheme_cases, transcript_problems


@pytest.mark.parametrize("name,parties,ring_bits", cases(), ids=lambda v: str(v))
def test_each_partys_view_is_independent_of_the_secret(name, parties, ring_bits):
    problems, runs = transcript_problems(name, parties, ring_bits)
    assert not problems, f"{name} N={parties} K={ring_bits}: {len(problems)} problems, first: " + "; ".join(problems[:3])
    first = runs["example"][0]
    tested = quantities(first, innermost_leak)
    assert tested, f"{name}: nothing of the parties' view was tested"
    declared_rounds = REGISTRY[name].rounds != "0"
    if declared_rounds and REGISTRY[name].kind == "fixed":
        # Every channel call of a communicating protocol delivered values that were tested.
        assert first.observations, f"{name} declares communication but delivered nothing to observe"


@pytest.mark.filterwarnings("ignore::mpsim.TruncationWarning")
@pytest.mark.parametrize("scheme,name,parties,ring_bits", scheme_cases(), ids=lambda v: str(v))
def test_each_partys_view_is_independent_of_the_secret_in_every_scheme(scheme, name, parties, ring_bits):
    """The same battery for the other schemes' cells (ABY3: each party's view is its two components and
    what it receives; one party may be corrupted)."""
    problems, runs = transcript_problems(name, parties, ring_bits, scheme=scheme)
    assert not problems, (f"{scheme}/{name} N={parties} K={ring_bits}: {len(problems)} problems, first: "
                          + "; ".join(problems[:3]))
    first = runs["example"][0]
    assert quantities(first, leaks_of(scheme)), f"{scheme}/{name}: nothing of the parties' view was tested"
    assert first.observations, f"{scheme}/{name} communicates but delivered nothing to observe"


@pytest.mark.parametrize("parties", [2, 3])
def test_reveal_opens_exactly_its_result(parties):
    """``reveal`` declares its opening as its output: the opened value is the result, nothing more."""
    transcript, s, out = run_once("reveal", parties, 64, 0, "example")
    (obs,) = transcript.observations
    assert innermost_leak(obs) == "output"
    np.testing.assert_array_equal(s.ring.decode(obs.value, s.frac_bits).reshape(out.shape), out)


def test_every_declared_leak_names_an_op_its_protocol_opens():
    """A ``leaked`` declaration that matches no opening of its protocol would exempt nothing, or the wrong thing."""
    for name, entry in REGISTRY.items():
        if not entry.leaked:
            continue
        transcript, _, _ = run_once(name, 2, 64, 0, "example")
        ops = {o.op for o in transcript.observations if o.scope.split("/")[-1] == name}
        assert set(entry.leaked) <= ops, f"{name} declares leaks for {set(entry.leaked) - ops}, which it never opens"


# -- the statistics themselves ----------------------------------------------------------------------------------
def _words(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2**64, size=n, dtype=np.uint64)


def test_uniform_words_pass_and_biased_ones_fail():
    assert uniformity_problem(_words(4000), 64, "prg") is None
    assert uniformity_problem(_words(4000) & np.uint64(7), 3, "3-bit") is None
    assert uniformity_problem(_words(4000) & np.uint64(7), 4, "3-bit at width 4") is not None  # bit 3 always 0
    stuck = _words(4000) | np.uint64(1)
    assert "bit 0" in uniformity_problem(stuck, 64, "odd")


def test_sign_extended_small_values_fail_through_the_gray_code():
    """Half negative, half positive fixed-point values: every bit is balanced, but neighbouring high bits agree."""
    values = np.random.default_rng(1).uniform(-4, 4, 4000)
    words = (np.rint(values * 2**16).astype(np.int64)).view(np.uint64)
    problem = uniformity_problem(words, 64, "small")
    assert problem is not None and "Gray-code" in problem


def test_freshness_catches_a_value_that_repeats_over_the_seeds():
    fresh = np.stack([_words(50, seed) for seed in range(SEEDS)])
    assert freshness_problem(fresh, 64, "fresh") is None
    repeated = fresh.copy()
    repeated[:, 7] = 12345
    assert "element 7" in freshness_problem(repeated, 64, "repeated")
    one_bit = fresh & np.uint64(1)
    one_bit[:, 3] = 1
    assert freshness_problem(one_bit, 1, "bit") is not None


def test_same_law_compares_two_samples():
    assert same_law_problem(_words(3000, 1), _words(3000, 2), 64, "two prg") is None
    assert same_law_problem(_words(3000, 1) >> np.uint64(1), _words(3000, 2), 64, "top bit cleared") is not None


def test_bit_tolerance_is_hoeffdings():
    n = 10_000
    tol = bit_tolerance(n)
    assert np.isclose(2 * np.exp(-2 * n * tol**2), ALPHA)


def test_a_structure_that_depends_on_the_secret_is_reported():
    def run(opens):
        s = mpsim.Session(parties=2, seed=0)
        x = s.input(np.arange(4.0))
        with record(s) as t:
            for _ in range(opens):
                s.reveal(x + x)
        return t

    problems = independence_problems({"a": [run(1), run(1)], "b": [run(2), run(2)]})
    assert problems and "structure" in problems[0]


def test_an_unmasked_opening_is_reported():
    """A 'protocol' that opens x + 0 (no mask): its opened value repeats over the seeds, and is small."""
    def run(seed, secret):
        s = mpsim.Session(parties=2, seed=seed)
        t_in = s.input(np.full(64, secret))
        with record(s) as t:
            s.reveal(t_in)
        t.add_input(t_in)
        return t

    runs = {secret: [run(seed, secret) for seed in range(SEEDS)] for secret in (0.5, -3.0)}
    problems = independence_problems(runs)
    assert any("same in all" in p for p in problems)
    assert any("frequency" in p for p in problems)


def test_a_result_share_that_depends_on_the_secret_is_reported():
    """A party holding its result in the clear (the other share zero) passes every message test but not the
    result-share test."""
    def run(seed, secret):
        s = mpsim.Session(parties=2, seed=seed)
        t = Transcript(2, 64)
        value = s.ring.encode(np.full(64, secret), s.frac_bits)
        t.add_output(mpsim.SharedTensor(s, np.stack([value, np.zeros_like(value)]), (64,), s.frac_bits))
        return t

    problems = independence_problems({secret: [run(seed, secret) for seed in range(SEEDS)] for secret in (0.5, -3.0)})
    assert any("result share" in p for p in problems)
