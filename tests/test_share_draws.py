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
