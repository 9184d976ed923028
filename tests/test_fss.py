"""Distributed point and comparison functions (``mpsim.fss``): correctness, key sizes, and what one key shows.

Correctness is checked exhaustively on 4-bit inputs and on random and edge inputs at n = K in {32, 64}.
Each party's share must come from its own seed and the shared correction words alone (replacing the other
party's seed changes nothing), and one party's key material must be uniform whatever alpha is: every bit of
it, over many keys, within the Hoeffding bound of the transcript tests (``mpsim.transcript``), and the
check must fail when the root seeds are not random.
"""
from __future__ import annotations

import numpy as np
import pytest

from mpsim import fss
from mpsim.transcript import uniformity_problem

KINDS = ("dpf", "dcf")


def reference(kind, alpha, beta, x, K):
    mask = np.uint64((1 << K) - 1) if K < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    hit = (x == alpha) if kind == "dpf" else (x < alpha)
    return np.where(hit, np.asarray(beta, dtype=np.uint64) & mask, np.uint64(0)).astype(np.uint64)


def reconstruct(keys, x):
    mask = np.uint64((1 << keys.K) - 1) if keys.K < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    return (fss.eval_party(keys, 0, x) + fss.eval_party(keys, 1, x)) & mask


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("K", [8, 64])
def test_every_4_bit_input_and_point(kind, K):
    rng = np.random.default_rng(1)
    alpha, x = (a.reshape(-1).astype(np.uint64) for a in np.meshgrid(np.arange(16), np.arange(16)))
    beta = rng.integers(0, 2**63, alpha.size, dtype=np.uint64)
    keys = fss.gen(kind, alpha, beta, 4, K, rng)
    np.testing.assert_array_equal(reconstruct(keys, x), reference(kind, alpha, beta, x, K))


@pytest.mark.parametrize("kind", KINDS)
def test_a_vector_payload_is_every_component_at_once(kind):
    """beta in (Z_2^K)^3: one tree walk gives the three shares, each the scalar function of its component."""
    rng = np.random.default_rng(5)
    alpha, x = (a.reshape(-1).astype(np.uint64) for a in np.meshgrid(np.arange(16), np.arange(16)))
    beta = rng.integers(0, 2**64, (alpha.size, 3), dtype=np.uint64)
    keys = fss.gen(kind, alpha, beta, 4, 64, rng)
    assert keys.d == 3 and keys.key_bits == (fss.dcf_key_bits if kind == "dcf" else fss.dpf_key_bits)(4, 64, d=3)
    got = reconstruct(keys, x)
    assert got.shape == (alpha.size, 3)
    for k in range(3):
        np.testing.assert_array_equal(got[:, k], reference(kind, alpha, beta[:, k], x, 64))
    points = np.stack([x, x[::-1]], axis=1)  # two points per key
    both = reconstruct(keys, points)
    assert both.shape == (alpha.size, 2, 3)
    np.testing.assert_array_equal(both[:, 1, 2], reference(kind, alpha, beta[:, 2], x[::-1], 64))
    with pytest.raises(ValueError, match="vector payload"):
        fss.gen(kind, alpha, beta[:5], 4, 64, rng)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("K", [32, 64])
def test_full_width_inputs_at_the_edges(kind, K):
    rng = np.random.default_rng(K)
    m, top = 6000, (1 << K) - 1
    alpha = rng.integers(0, top, m, dtype=np.uint64, endpoint=True)
    alpha[:6] = [0, 0, top, top, 1, top - 1]
    x = rng.integers(0, top, m, dtype=np.uint64, endpoint=True)
    x[:6] = [0, top, top, 0, 0, top]
    x[6:2000] = alpha[6:2000]  # on the point
    below = alpha[2000:4000] > 0
    x[2000:4000] = np.where(below, alpha[2000:4000] - np.uint64(1), alpha[2000:4000])  # just below
    beta = rng.integers(0, 2**64, m, dtype=np.uint64)
    keys = fss.gen(kind, alpha, beta, K, K, rng)
    np.testing.assert_array_equal(reconstruct(keys, x), reference(kind, alpha, beta, x, K))


def test_declared_key_sizes_are_the_aes_based_constructions():
    """lambda + n (lambda + 2) + K (DPF) and lambda + n (lambda + K + 2) + K (DCF), lambda = 128."""
    assert fss.dpf_key_bits(64, 64) == 128 + 64 * 130 + 64 == 8512
    assert fss.dcf_key_bits(64, 64) == 128 + 64 * 194 + 64 == 12608
    assert fss.dcf_key_bits(63, 1) == 128 + 63 * 131 + 1
    assert fss.dcf_key_bits(63, 64, d=2) == 128 + 63 * (128 + 2 * 64 + 2) + 2 * 64
    keys = fss.gen("dcf", np.arange(3), 1, 16, 32, np.random.default_rng(0))
    assert keys.key_bits == fss.dcf_key_bits(16, 32)


@pytest.mark.parametrize("kind", KINDS)
def test_a_party_computes_from_its_own_key_only(kind):
    rng = np.random.default_rng(3)
    alpha = rng.integers(0, 2**20, 500, dtype=np.uint64)
    x = rng.integers(0, 2**20, 500, dtype=np.uint64)
    keys = fss.gen(kind, alpha, 7, 20, 64, rng)
    for party in (0, 1):
        mine = fss.eval_party(keys, party, x)
        keys.seed[1 - party] = rng.integers(0, 2**64, keys.seed[1 - party].shape, dtype=np.uint64)
        np.testing.assert_array_equal(fss.eval_party(keys, party, x), mine)


def _key_problems(kind, alpha_value, party, rng, K=32, n=32, m=4000):
    """Uniformity problems of one party's key material over m keys for one alpha."""
    keys = fss.gen(kind, np.full(m, alpha_value, dtype=np.uint64), 5, n, K, rng)
    parts = [(keys.seed[party], 64, "seed"), (keys.scw, 64, "seed corrections"), (keys.tl, 1, "left bits"),
             (keys.tr, 1, "right bits"), (keys.last, K, "output correction")]
    if kind == "dcf":
        parts.append((keys.vcw, K, "value corrections"))
    return [p for words, width, label in parts
            if (p := uniformity_problem(np.asarray(words, dtype=np.uint64), width, f"{kind} {label}"))]


@pytest.mark.parametrize("kind", KINDS)
def test_one_key_is_uniform_whatever_alpha(kind):
    rng = np.random.default_rng(11)
    for alpha_value in (0, 1, 2**31, 2**32 - 1):
        for party in (0, 1):
            assert not _key_problems(kind, alpha_value, party, rng)


class _ZeroSeeds:
    """A broken dealer generator: every root seed is zero."""

    def integers(self, low, high, size, dtype):
        return np.zeros(size, dtype=dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_the_uniformity_check_bites_without_random_seeds(kind):
    assert _key_problems(kind, 2**31 + 5, 0, _ZeroSeeds())


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="kind"):
        fss.gen("dxf", [1], 1, 8, 32, rng)
    with pytest.raises(ValueError, match="input bits"):
        fss.gen("dcf", [1], 1, 0, 32, rng)
    with pytest.raises(ValueError, match="ring bits"):
        fss.gen("dcf", [1], 1, 8, 65, rng)
    with pytest.raises(ValueError, match="8-bit"):
        fss.gen("dcf", [256], 1, 8, 32, rng)
    keys = fss.gen("dpf", [3, 4], 1, 8, 32, rng)
    with pytest.raises(ValueError, match="parties 0 and 1"):
        fss.eval_party(keys, 2, [1, 2])
    with pytest.raises(ValueError, match="2 keys"):
        fss.eval_party(keys, 0, [1, 2, 3])
    with pytest.raises(ValueError, match="8-bit"):
        fss.eval_party(keys, 0, [1, 999])
