"""Top-k: three methods against numpy, one-hot alignment, ties, batching, and the randomized cost's law."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import mpsim
import protocols as P

topk_module = sys.modules["protocols.topk"]
F = 16


def _grid(rng, shape, bound=5.0):
    return np.rint(rng.uniform(-bound, bound, shape) * 2**F) / 2**F


@pytest.mark.parametrize("method", ["max", "sort", "shuffle"])
@pytest.mark.parametrize("backend,parties", [("share", 2), ("share", 3), ("ideal", 2)])
def test_values_onehots_and_indices_match_numpy(method, backend, parties):
    rng = np.random.default_rng(parties)
    xv = _grid(rng, (4, 13))
    xv[1, :6] = 0.5  # ties
    s = mpsim.Session(parties=parties, seed=5, backend=backend)
    values, onehot, index = P.topk(s.input(xv), 5, method=method, sorted=True, return_index=True)
    got_v, got_oh, got_i = s.reveal(values), s.reveal(onehot), s.reveal(index)
    expected = -np.sort(-xv, axis=1)[:, :5]
    np.testing.assert_array_equal(got_v, expected)  # exact: selection moves ring elements unchanged
    np.testing.assert_array_equal(got_oh, np.eye(13, dtype=np.int64)[got_i])
    np.testing.assert_array_equal(np.take_along_axis(xv, got_i, axis=1), got_v)
    assert all(len(set(row)) == 5 for row in got_i.tolist())  # distinct positions even among ties


def test_unsorted_output_is_the_same_set():
    rng = np.random.default_rng(1)
    xv = _grid(rng, (3, 40))
    s = mpsim.Session(parties=2, seed=2)
    values, onehot = P.topk(s.input(xv), 7, method="shuffle")
    got = s.reveal(values)
    np.testing.assert_array_equal(np.sort(got, axis=1), np.sort(xv, axis=1)[:, -7:])
    np.testing.assert_array_equal(np.einsum("rkn,rn->rk", s.reveal(onehot), xv), got)  # aligned one-hots


@pytest.mark.parametrize("method", ["max", "sort", "shuffle"])
def test_every_method_breaks_ties_by_lower_index(method):
    s = mpsim.Session(parties=2, seed=1, backend="share")
    values, onehot, index = P.topk(s.input(np.full((2, 6), 1.25)), 3, method=method, return_index=True)
    np.testing.assert_array_equal(s.reveal(index), [[0, 1, 2], [0, 1, 2]])


def test_axis_and_leading_batch_dimensions():
    rng = np.random.default_rng(3)
    xv = _grid(rng, (2, 9, 3))
    s = mpsim.Session(parties=2, seed=4)
    values, onehot, index = P.topk(s.input(xv), 4, axis=1, method="sort", return_index=True)
    assert values.shape == (2, 3, 4) and onehot.shape == (2, 3, 4, 9)
    expected = -np.sort(-np.moveaxis(xv, 1, -1), axis=-1)[..., :4]
    np.testing.assert_array_equal(s.reveal(values), expected)
    xv4 = _grid(np.random.default_rng(4), (2, 3, 5, 4))
    values = P.topk(s.input(xv4), 2, axis=0, method="max")[0]  # other axes keep their order
    assert values.shape == (3, 5, 4, 2)
    np.testing.assert_array_equal(s.reveal(values), -np.sort(-np.moveaxis(xv4, 0, -1), axis=-1)[..., :2])


def test_bad_arguments():
    s = mpsim.Session(parties=2, seed=0, backend="count")
    x = s.placeholder((2, 8))
    with pytest.raises(ValueError, match="k must be"):
        P.topk(x, 9)
    with pytest.raises(ValueError, match="k must be"):
        P.topk(x, 0)
    with pytest.raises(ValueError, match="method"):
        P.topk(x, 2, method="heap")


@pytest.mark.parametrize("method", ["max", "sort"])
def test_cost_estimates_of_deterministic_methods_are_exact(method):
    s = mpsim.Session(parties=2, backend="count")
    mark = s.mark()
    P.topk(s.placeholder((3, 20)), 4, method=method)
    c = s.cost(since=mark)
    rounds, nbytes = topk_module.estimate(method, 3, 20, 4)
    assert (c.rounds, c.sent[0]) == (rounds, nbytes)


def test_auto_picks_the_cheapest_estimate_and_meets_the_target():
    assert topk_module.choose_method(32, 512, 50) == "shuffle"
    s = mpsim.Session(parties=2, seed=0, backend="count")
    mark = s.mark()
    P.topk(s.placeholder((32, 512)), 50)
    c = s.cost(since=mark)
    assert "topk_shuffle" in s.ledger.messages[-1].scope
    assert c.rounds <= 400 and c.sent[0] <= 3e6  # issue target for 32 x 512, k = 50, N = 2


def _shuffle_cost(backend, seed, xv):
    s = mpsim.Session(parties=2, seed=seed, backend=backend)
    x = s.input(xv) if backend != "count" else s.placeholder(xv.shape)
    mark = s.mark()
    P.topk(x, 6, method="shuffle")
    c = s.cost(since=mark)
    return c.rounds, c.sent[0]


def test_share_and_ideal_costs_are_identical_for_the_same_seed_and_data():
    xv = _grid(np.random.default_rng(0), (3, 30))
    for seed in range(3):
        assert _shuffle_cost("share", seed, xv) == _shuffle_cost("ideal", seed, xv)


def test_count_draws_the_cost_from_the_same_law_and_the_data_does_not_move_it():
    """Means over seeds agree within 4 standard errors: count vs share, and tied vs random data."""
    rng = np.random.default_rng(1)
    random_rows, tied_rows = _grid(rng, (3, 30)), np.zeros((3, 30))
    seeds = range(40)
    samples = {
        "share": [_shuffle_cost("ideal", s, random_rows)[1] for s in seeds],  # ideal == share, faster
        "count": [_shuffle_cost("count", s, random_rows)[1] for s in seeds],
        "tied": [_shuffle_cost("ideal", s, tied_rows)[1] for s in seeds],
    }
    for a, b in (("share", "count"), ("share", "tied")):
        x, y = np.array(samples[a]), np.array(samples[b])
        se = np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        assert abs(x.mean() - y.mean()) < 4 * se + 1e-9, (a, b, x.mean(), y.mean(), se)


def test_shuffle_permutes_rows_exactly_and_reshares():
    s = mpsim.Session(parties=3, seed=6)
    xv = _grid(np.random.default_rng(2), (2, 10, 2))
    t = s.input(xv)
    out = P.shuffle(t)
    got = s.reveal(out)
    for r in range(2):
        assert sorted(map(tuple, got[r])) == sorted(map(tuple, xv[r]))  # same rows, pairs kept together
    assert not np.array_equal(got, xv)
    assert not np.array_equal(out.shares[2], t.shares[2])  # fresh shares for the non-permuting party
