"""Fixed-point products and truncation: errors in units of 2^-f, derived, never guessed.

Error budget (f fractional bits, ULP = 2^-f):
* encoding a real rounds to nearest: |x~ - x| <= ULP/2;
* the ideal backend truncates exactly (floor): a product loses < 1 ULP;
* the share backend's truncation (SecureML local or dealer trunc_pr) returns floor or floor + 1, so it is
  within 1 ULP of the ideal backend's result (the MPC vs plaintext-of-the-same-arithmetic check);
* against the true real product: |x~ y~ - x y| <= (|x| + |y|) ULP/2 + ULP^2/4, plus the truncation.
"""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
import protocols

F = 16
ULP = 2.0**-F


def _pair(parties, trunc, seed=11):
    kw = dict(parties=parties, frac_bits=F, seed=seed, trunc=trunc)
    return mpsim.Session(backend="share", **kw), mpsim.Session(backend="ideal", **kw)


MODES = [(2, "local"), (2, "dealer"), (3, "dealer"), (4, "dealer")]


@pytest.mark.parametrize("parties,trunc", MODES)
def test_elementwise_product_error(parties, trunc):
    rng = np.random.default_rng(parties)
    xv, yv = rng.uniform(-100, 100, 4000), rng.uniform(-100, 100, 4000)
    xv[:4] = [0.0, -0.0, 2.0**-F, -(2.0**-F)]
    results = []
    for s in _pair(parties, trunc):
        results.append(s.reveal(s.input(xv, owner=0) * s.input(yv, owner=parties - 1)))
    share, ideal = results
    assert np.max(np.abs(share - ideal)) <= ULP  # MPC vs plaintext run of the same arithmetic
    bound = (np.abs(xv) + np.abs(yv)) * ULP / 2 + ULP**2 / 4 + ULP
    assert np.all(np.abs(ideal - xv * yv) <= bound)  # plaintext fixed point vs the true product


@pytest.mark.parametrize("parties,trunc", MODES)
def test_matmul_error_and_batching(parties, trunc):
    rng = np.random.default_rng(3)
    xv, wv = rng.uniform(-2, 2, (3, 5, 40)), rng.uniform(-2, 2, (40, 7))
    share, ideal = (s.reveal(s.input(xv) @ s.input(wv, owner=1)) for s in _pair(parties, trunc))
    assert share.shape == (3, 5, 7)
    assert np.max(np.abs(share - ideal)) <= ULP
    k = 40
    bound = k * (2 * 2 * ULP / 2 + ULP**2 / 4) + ULP  # sum of k encoded products, one truncation
    assert np.max(np.abs(ideal - xv @ wv)) <= bound


@pytest.mark.parametrize("parties,trunc", MODES)
def test_public_real_operands(parties, trunc):
    rng = np.random.default_rng(5)
    xv = rng.uniform(-50, 50, (6, 8))
    wv = rng.uniform(-1, 1, (8, 3))
    outs = []
    for s in _pair(parties, trunc):
        x = s.input(xv)
        outs.append((s.reveal(x * 0.3), s.reveal(x @ wv), s.reveal(wv.T @ x.T), s.reveal(x.mean(axis=1))))
    for share, ideal in zip(*outs):
        assert np.max(np.abs(share - ideal)) <= ULP
    ideal = outs[1]
    assert np.max(np.abs(ideal[0] - xv * 0.3)) <= (50 + 0.3) * ULP / 2 + ULP**2 / 4 + ULP
    assert np.max(np.abs(ideal[1] - xv @ wv)) <= 8 * ((50 + 1) * ULP / 2 + ULP**2 / 4) + ULP
    # mean: sum of 8 encoded values (8 * ULP/2), times encoded 1/8 (exact), one truncation
    assert np.max(np.abs(ideal[3] - xv.mean(axis=1))) <= 8 * ULP / 2 / 8 + 50 * 8 * ULP / 2 / 8 + ULP


@pytest.mark.parametrize("ring_bits,parties", [(64, 2), (64, 3), (32, 2), (32, 4)])
def test_trunc_pr_is_floor_or_floor_plus_one_up_to_its_bound(ring_bits, parties):
    """trunc_pr never fails on |x| < 2^(K-2), including the extremes of that range."""
    K, d = ring_bits, 8
    rng = np.random.default_rng(ring_bits + parties)
    lim = 1 << (K - 2)
    values = np.concatenate([
        rng.integers(-lim, lim, 5000, dtype=np.int64),
        np.array([-lim, -lim + 1, lim - 1, -1, 0, 1, 255, 256, -256, -257], dtype=np.int64),
    ])
    s = mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=0, seed=2, trunc="dealer")
    x = s.input(values, frac_bits=0)
    x.frac = d  # reinterpret the integers as a product at scale 2^d (a local relabelling)
    y = protocols.trunc_pr(x, d)
    y.frac = 0
    got = s.reveal(y)
    floor = values >> d
    assert np.all((got == floor) | (got == floor + 1))
    assert np.any(got == floor + 1) and np.any(got == floor)  # probabilistic rounding really happens


def test_trunc_local_failure_rate_matches_the_secureml_analysis():
    """For x >= 0 local truncation fails exactly when party 0's share is below x: probability x / 2^K."""
    K, d = 32, 8
    x_value = 1 << 28  # failure probability 2^28 / 2^32 = 1/16
    trials = 20000
    s = mpsim.Session(parties=2, ring_bits=K, frac_bits=0, seed=9, trunc="local")
    x = s.input(np.full(trials, x_value, dtype=np.int64), frac_bits=0)
    x.frac = d
    y = protocols.trunc_local(x, d)
    y.frac = 0
    got = s.reveal(y)
    ok = np.abs(got - (x_value >> d)) <= 1
    failures = trials - ok.sum()
    p = 1 / 16
    sigma = np.sqrt(trials * p * (1 - p))
    assert abs(failures - trials * p) < 6 * sigma
    assert np.all(np.abs(got[~ok] - (x_value >> d)) > 2 ** (K - d - 2))  # failures are large, not 1-ULP


def test_local_truncation_on_small_values_never_failed_in_many_trials():
    # |x| < 2^20 at scale 2^32 with K = 64: failure probability ~2^(21-64) per element.
    s = mpsim.Session(parties=2, seed=4, trunc="local")
    rng = np.random.default_rng(0)
    xv = rng.uniform(-16, 16, 200_000)
    got = s.reveal(s.input(xv) * s.input(np.full_like(xv, 1.5)))
    assert np.max(np.abs(got - xv * 1.5)) <= 17.5 * ULP / 2 + ULP**2 / 4 + 2 * ULP


def test_ring32_fixed_point_with_small_scale():
    s = mpsim.Session(parties=2, ring_bits=32, frac_bits=8, seed=1)
    xv = np.array([1.5, -2.25, 3.0])
    got = s.reveal(s.input(xv) * s.input(xv[::-1].copy()))
    ulp = 2.0**-8
    assert np.max(np.abs(got - xv * xv[::-1])) <= 6 * ulp / 2 + ulp**2 / 4 + 2 * ulp


@pytest.mark.parametrize("n", [768, 3000, 100_000])
def test_mean_of_long_rows_stays_within_a_few_ulps(n):
    """mean encodes 2^g / n in (1, 2], not 1 / n: the error stays O(ULP) for any n (see SharedTensor.mean)."""
    s = mpsim.Session(parties=2, seed=0, backend="ideal")
    got = s.reveal(s.input(np.ones(n)).mean())
    assert abs(got - 1.0) <= 3 * ULP + 2.0**-(F + 1)
