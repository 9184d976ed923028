"""Reusable masked operands: correctness, per-use vs one-off cost, fresh masks where the value changes."""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
import protocols
from mpsim.testing import capture_openings
from protocols.registry import REGISTRY

ULP = 2.0**-16


@pytest.mark.parametrize("parties", [2, 3])
def test_products_with_a_reused_operand_are_exact_at_ring_level(parties):
    rng = np.random.default_rng(0)
    xv, wv = rng.uniform(-3, 3, (4, 16)), rng.uniform(-3, 3, (16, 5))
    ring_results = []
    for backend in ("share", "ideal"):
        s = mpsim.Session(parties=parties, seed=1, backend=backend)
        x, w = s.input(xv), s.input(wv, owner=1)
        wm = s.reusable(w)
        z = protocols.matmul_reused(x, wm)  # ring level: scale 2f, exact
        z.frac = 0
        ring_results.append(s.reveal(z))
        np.testing.assert_allclose(s.reveal(x @ wm), xv @ wv, atol=16 * 6 * ULP / 2 + 2 * ULP)
    np.testing.assert_array_equal(ring_results[0], ring_results[1])


def test_per_use_cost_opens_only_the_left_operand_and_setup_is_separate():
    s = mpsim.Session(parties=2, seed=2, backend="count")
    w = s.input(np.zeros((64, 32)))
    with s.scope("setup"):
        wm = s.reusable(w)
    with s.scope("steps"):
        for _ in range(5):
            s.input(np.zeros((1, 64))) @ wm
    setup, steps = s.cost(scope="setup"), s.cost(scope="steps")
    assert setup.sent_bits == (64 * 64 * 32,) * 2 and setup.offline_bits == 0
    one_use = REGISTRY["matmul_reused"].declared(64, 2, nx=64, n=32)
    assert steps.sent_bits == (5 * one_use.sent_bits[0],) * 2
    assert steps.offline_bits == 5 * one_use.offline_bits
    plain = REGISTRY["beaver_matmul"].declared(64, 2, nx=64, ny=64 * 32, n=32)
    assert one_use.sent_bits[0] * 33 == plain.sent_bits[0]  # (64) vs (64 + 2048) elements opened


def test_every_use_gets_a_fresh_pad():
    s = mpsim.Session(parties=2, seed=3)
    x = s.input(np.ones((2, 8)))
    wm = s.reusable(s.input(np.ones((8, 3))))
    seen = capture_openings(s)
    x @ wm
    x @ wm
    e1, e2 = seen[0][0], seen[1][0]
    assert not np.array_equal(e1, e2)  # the same X is padded by two different A_t


def test_update_gives_fresh_masks_and_append_masks_only_new_rows():
    s = mpsim.Session(parties=2, seed=4)
    rng = np.random.default_rng(1)
    kv = rng.normal(size=(2, 6, 4))
    cache = s.reusable(s.input(kv))
    old_opened, old_mask = cache.opened.copy(), cache.dealer_mask.copy()
    new_rows = rng.normal(size=(2, 1, 4))
    mark = s.mark()
    updated = cache.update([3], s.input(new_rows), axis=1)
    assert s.cost(since=mark).sent_bits == (8 * 64,) * 2  # only the overwritten entries are opened
    assert not np.any(updated.dealer_mask[:, 3] == old_mask[:, 3])  # fresh mask for the new value
    np.testing.assert_array_equal(np.delete(updated.opened, 3, axis=1), np.delete(old_opened, 3, axis=1))
    expected = kv.copy()
    expected[:, 3:4] = new_rows
    np.testing.assert_allclose(s.reveal(updated.tensor), expected, atol=ULP)
    grown = updated.append(s.input(rng.normal(size=(2, 2, 4))), axis=1)
    assert grown.shape == (2, 8, 4)
    np.testing.assert_array_equal(grown.dealer_mask[:, :6], updated.dealer_mask)
    compact = grown.take([7, 0, 2], axis=1)  # masks move with their content
    np.testing.assert_array_equal(compact.opened, grown.opened[:, [7, 0, 2]])
    np.testing.assert_allclose(s.reveal(compact.tensor), s.reveal(grown.tensor)[:, [7, 0, 2]], atol=0)


def test_kv_cache_attention_products_with_transposed_operands():
    s = mpsim.Session(parties=2, seed=5)
    rng = np.random.default_rng(2)
    heads, seq, d = 3, 10, 4
    k, v, q = rng.normal(size=(heads, seq, d)), rng.normal(size=(heads, seq, d)), rng.normal(size=(heads, 1, d))
    kc, vc = s.reusable(s.input(k)), s.reusable(s.input(v))
    scores = s.input(q) @ kc.swapaxes(-1, -2)
    out = scores @ vc
    ref_scores = q @ k.swapaxes(-1, -2)
    np.testing.assert_allclose(s.reveal(scores), ref_scores, atol=d * 8 * ULP + 2 * ULP)
    np.testing.assert_allclose(s.reveal(out), ref_scores @ v, atol=seq * 20 * ULP + 4 * ULP * seq)
    assert kc.T.shape == (d, seq, heads)


def test_reused_operand_errors():
    s1, s2 = mpsim.Session(parties=2, seed=0), mpsim.Session(parties=2, seed=0)
    wm = s1.reusable(s1.input(np.ones((3, 2))))
    with pytest.raises(ValueError, match="different sessions"):
        s2.input(np.ones((1, 3))) @ wm
    with pytest.raises(ValueError, match="align"):
        s1.input(np.ones((1, 4))) @ wm
    with pytest.raises(TypeError):
        wm.take([0.5], axis=0)
    with pytest.raises(ValueError, match="shape"):
        wm.update([0], s1.input(np.ones((2, 2))), axis=0)


def test_views_of_a_masked_operand_keep_value_and_mask_together():
    s = mpsim.Session(parties=2, seed=8)
    w = np.arange(24.0).reshape(2, 6, 2)
    wm = s.reusable(s.input(w))
    view = wm[:, :4].reshape(2, 2, 4)  # e.g. a cache viewed as (heads, pages, page * d)
    np.testing.assert_array_equal(s.reveal(view.tensor), w[:, :4].reshape(2, 2, 4))
    np.testing.assert_array_equal(view.dealer_mask, wm.dealer_mask[:, :4].reshape(2, 2, 4))
    with pytest.raises(TypeError):
        wm[s.input(np.array([0]), frac_bits=0)]


def test_gather_rotated_picks_rows_and_opens_a_uniform_c():
    import mpsim
    import protocols as P

    W = np.random.default_rng(0).normal(size=(2, 11, 3))
    idx = np.array([[0, 3, 10, 7], [5, 5, 1, 9]])
    for backend in ("share", "ideal"):
        s = mpsim.Session(parties=3, backend=backend, seed=1)
        g = P.gather_rotated(s.reusable(s.input(W)), s.input(idx, frac_bits=0))
        # input encoding only: |error| <= 2^-f per element (f = frac bits); the gather itself is exact
        assert np.abs(P.reveal(g) - np.take_along_axis(W, idx[..., None], 1)).max() <= 2.0 ** -s.frac_bits
        with pytest.raises(ValueError):
            P.gather_rotated(s.reusable(s.input(W)), s.input(np.array([[0, 11, 1, 2]] * 2), frac_bits=0),
                             check_domain=True)
    # What the parties see, c = (r - i) mod 16, read off the channel: uniform whatever i. Counts of 4000
    # draws over 16 bins have mean 250 and sd ~15.3; the bounds are more than 4.9 sd away.
    from mpsim.testing import capture_openings

    for i in (0, 9):
        s = mpsim.Session(parties=2, backend="share", seed=7 + i)
        table = s.reusable(s.input(np.zeros((1, 16, 1))))
        seen = capture_openings(s)
        P.gather_rotated(table, s.input(np.full((1, 4000), i), frac_bits=0))
        c = np.concatenate([np.asarray(v).ravel() for call in seen for v in call]) % 16
        assert c.size == 4000
        counts = np.bincount(c.astype(np.int64), minlength=16)
        assert counts.min() > 175 and counts.max() < 325


def test_scatter_rotated_adds_rows_at_secret_positions():
    import mpsim
    import protocols as P

    x = np.random.default_rng(1).normal(size=(2, 4, 3))
    idx = np.array([[0, 3, 10, 3], [5, 5, 1, 9]])
    exp = np.zeros((2, 11, 3))
    for h in range(2):
        for t in range(4):
            exp[h, idx[h, t]] += x[h, t]
    for backend in ("share", "ideal"):
        s = mpsim.Session(parties=2, backend=backend, seed=1)
        out = P.scatter_rotated(s.input(x), s.input(idx, frac_bits=0), 11)
        # two encoded inputs summed at most: <= 2 * 2^-f
        assert np.abs(P.reveal(out) - exp).max() <= 2 * 2.0 ** -s.frac_bits
