"""Statistical checks that what one party sees is independent of the secret.

Each party's share (and, for N = 3, any N - 1 shares together) and every opened Beaver/truncation mask
must look uniform whatever the secret. We compare the bit frequencies for two very different secrets
(all zeros vs. a fixed large pattern) with the uniform law: each bit's mean over n samples must be within 6
standard deviations (6 * sqrt(1/4n)) of 1/2, a false-alarm rate below 1e-8 per bit.
"""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
from mpsim.testing import capture_openings

N_SAMPLES = 40_000


def _bit_means(words: np.ndarray, bits: int = 64) -> np.ndarray:
    w = words.ravel()
    return np.array([np.mean((w >> np.uint64(i)) & np.uint64(1)) for i in range(bits)])


def _assert_uniform(words, bits=64):
    tol = 6 * np.sqrt(0.25 / words.size)
    assert np.all(np.abs(_bit_means(words, bits) - 0.5) < tol)


SECRETS = [np.zeros(N_SAMPLES), np.full(N_SAMPLES, 12345.678)]


@pytest.mark.parametrize("parties", [2, 3])
@pytest.mark.parametrize("secret", SECRETS, ids=["zeros", "constant"])
def test_each_party_share_is_uniform_whatever_the_secret(parties, secret):
    s = mpsim.Session(parties=parties, seed=17)
    x = s.input(secret, owner=0)
    for p in range(parties):
        _assert_uniform(x.shares[p])
    if parties == 3:  # any two shares jointly: their sum is uniform too
        _assert_uniform(x.shares[1] + x.shares[2])


@pytest.mark.parametrize("secret", SECRETS, ids=["zeros", "constant"])
def test_opened_values_of_products_and_truncation_are_uniform(secret):
    s = mpsim.Session(parties=3, seed=23, trunc="dealer")
    calls = capture_openings(s)
    x = s.input(secret)
    x * x  # opens x - a, then trunc_pr opens x' + r
    opened = [value for values in calls for value in values]
    assert len(opened) == 2
    for value in opened:
        _assert_uniform(value)


def test_ring32_shares_are_uniform_over_32_bits():
    s = mpsim.Session(parties=2, ring_bits=32, frac_bits=8, seed=5)
    x = s.input(np.full(N_SAMPLES, -3.5))
    assert int(x.shares.max()) < 2**32
    _assert_uniform(x.shares[1], bits=32)
