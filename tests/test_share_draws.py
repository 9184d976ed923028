"""Correlated randomness drawn directly in share form (issue 16): how many PRG words each draw takes.

A dealer that seeds every party draws a purely random component as N seeded shares (its value is their sum)
and a derived one as N - 1 seeded shares plus one correction: a Beaver triple over n elements is (3N - 1) n
words, not the (3N + 2) n of drawing the values and splitting each into N fresh rows. The offline ledger
does not change (``tests/test_inventory.py`` prices it); these tests pin the draws and the shares' sums.
"""
from __future__ import annotations

import numpy as np
import pytest

from mpsim import Session


def _draws(session, fn):
    before = session.prg.counter
    out = fn()
    return session.prg.counter - before, out


@pytest.mark.parametrize("parties", [2, 3])
def test_split_draws_n_minus_one_rows_and_sums_to_the_values(parties):
    s = Session(parties=parties, seed=4)
    values = s.ring.reduce(np.arange(12, dtype=np.uint64).reshape(3, 4) * np.uint64(0x9E3779B97F4A7C15))
    for owner in range(parties):
        words, shares = _draws(s, lambda: s.backend.split(values, owner=owner))
        assert words == (parties - 1) * values.size
        assert np.array_equal(s.backend.open(shares), values)
        words, bits = _draws(s, lambda: s.backend.split_xor(values, owner=owner))
        assert words == (parties - 1) * values.size
        assert np.array_equal(s.backend.open_xor(bits), values)


@pytest.mark.parametrize("kind", ["A", "B", "bit"])
def test_random_shared_value_is_what_the_shares_make(kind):
    s = Session(parties=3, seed=5)
    words, (shares, value) = _draws(s, lambda: s.backend.random_shared((64,), kind))
    assert words == 3 * 64
    made = s.backend.open(shares) if kind == "A" else s.backend.open_xor(shares)
    assert np.array_equal(made, value)
    if kind == "bit":
        assert set(np.unique(shares)) <= {0, 1} and 0 < value.sum() < 64
    else:
        assert len(np.unique(value)) == 64  # 64 uniform words: a collision has probability ~2^-53


@pytest.mark.parametrize("parties", [2, 3])
def test_beaver_triples_take_3n_minus_1_words_per_element(parties):
    s = Session(parties=parties, seed=6)
    n = 50
    words, (a, b, c) = _draws(s, lambda: s.dealer.beaver_triple((n,), (n,)))
    assert words == (3 * parties - 1) * n
    ring = s.ring
    assert np.array_equal(s.backend.open(c), ring.reduce(s.backend.open(a) * s.backend.open(b)))
    m, k, w = 3, 4, 5
    words, (a, b, c) = _draws(s, lambda: s.dealer.matmul_triple((m, k), (k, w), (m, w)))
    assert words == parties * (m * k + k * w) + (parties - 1) * m * w
    from mpsim import kernels
    assert np.array_equal(s.backend.open(c), kernels.ring_matmul(s.backend.open(a), s.backend.open(b)))


def test_a_zero_d_draw_and_the_ideal_and_count_backends():
    s = Session(seed=7)
    shares, value = s.backend.random_shared(())
    assert shares.shape == (2,) and np.array_equal(s.backend.open(shares), value)
    ideal = Session(backend="ideal", seed=7)
    shares, value = ideal.backend.random_shared((2, 3))
    assert shares.shape == (1, 2, 3) and not shares.any() and not value.any()
    assert Session(backend="count").backend.random_shared((2, 3)) == (None, None)
    with pytest.raises(ValueError, match="kind"):
        s.backend.random_shared((2,), "C")


@pytest.mark.parametrize("parties", [2, 3])
@pytest.mark.parametrize("shapes", [((1, 4), (4, 6)), ((6, 4), (4, 1)), ((2, 3, 5), (2, 5, 3)), ((3, 2, 5), (5, 4))])
def test_the_matmul_combine_folds_e_f_into_party_0s_products(parties, shapes):
    """Party 0's E @ F rides on (A_0 + E) @ F or E @ (B_0 + F), whichever sum is smaller; either way the
    shares sum to the exact ring product, and the other parties' shares are untouched by the fold."""
    s = Session(parties=parties, seed=8)
    rng = np.random.default_rng(9)
    x, y = (rng.integers(-50, 50, size=shape) for shape in shapes)
    z = s.input(x, frac_bits=0) @ s.input(y, frac_bits=0)
    assert np.array_equal(s.reveal(z), x @ y)


def _composed_triple(session, shape, kind):
    """What the dealer's fused triple must equal: two share-form draws and a split of their product."""
    a_shares, a = session.dealer._random_shared(shape, kind)
    b_shares, b = session.dealer._random_shared(shape, kind)
    if kind == "A":
        return a_shares, b_shares, session.backend.split(session.ring.reduce(a * b))
    return a_shares, b_shares, session.backend.split_xor(a & b)


@pytest.mark.parametrize("parties,ring_bits", [(2, 64), (3, 64), (2, 32), (4, 32)])
@pytest.mark.parametrize("kind", ["A", "B"])
@pytest.mark.parametrize("shape", [(5, 7), (1,), (3000,)])
def test_the_fused_triple_is_the_composed_one_word_for_word(parties, ring_bits, kind, shape):
    """The mutation tests zero the composed draws (``_random_shared``), so the fused pass that the share
    backend takes otherwise must produce the very same shares, and leave the stream at the same place."""
    fused, composed = (Session(parties=parties, ring_bits=ring_bits, seed=11) for _ in range(2))
    fused.prg.uniform((3,))  # start off a round counter
    composed.prg.uniform((3,))
    got = fused.dealer.beaver_triple(shape, shape) if kind == "A" else fused.dealer.and_triple(shape, 1)
    want = _composed_triple(composed, shape, kind)
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.array_equal(g, w)
    assert fused.prg.counter == composed.prg.counter
    a, b, c = got
    if kind == "A":
        assert np.array_equal(fused.backend.open(c), fused.ring.reduce(fused.backend.open(a) * fused.backend.open(b)))
    else:
        assert np.array_equal(fused.backend.open_xor(c), fused.backend.open_xor(a) & fused.backend.open_xor(b))
