"""What one party sees of an input and of a product, whatever the secret (registry-wide: test_transcripts.py).

Each party's share of an input, and every N - 1 parties' shares summed (the owner's share included: the
coalition that misses one other party), must be uniform on the ring for two very different secrets (all
zeros, and a fixed large pattern), at K = 64 and K = 32. The frequency of every bit and of every bit of the
Gray code must be within Hoeffding's bound of 1/2 (``mpsim.transcript.uniformity_problem``, false alarm below
1e-12 per bit).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

import mpsim
from mpsim.testing import capture_openings
from mpsim.transcript import uniformity_problem

N_SAMPLES = 40_000
SECRETS = {"zeros": np.zeros(N_SAMPLES), "constant": np.full(N_SAMPLES, -1234.5678)}


@pytest.mark.parametrize("ring_bits", [64, 32])
@pytest.mark.parametrize("parties", [2, 3, 4])
@pytest.mark.parametrize("secret", SECRETS, ids=str)
@pytest.mark.parametrize("owner", [0, -1], ids=["owner-first", "owner-last"])
def test_every_coalition_of_n_minus_1_sees_uniform_input_shares(ring_bits, parties, secret, owner):
    s = mpsim.Session(parties=parties, ring_bits=ring_bits, seed=17)
    x = s.input(SECRETS[secret], owner=owner % parties)
    assert int(x.shares.max()) < 2**ring_bits
    for size in range(1, parties):
        for coalition in combinations(range(parties), size):
            joint = np.sum(x.shares[list(coalition)], axis=0, dtype=np.uint64) & s.ring.mask
            problem = uniformity_problem(joint, ring_bits, f"parties {coalition}")
            assert problem is None, problem
    # all N together reconstruct the secret: the check above is not vacuous
    assert uniformity_problem(np.sum(x.shares, axis=0, dtype=np.uint64) & s.ring.mask, ring_bits, "all") is not None


@pytest.mark.parametrize("ring_bits", [64, 32])
@pytest.mark.parametrize("secret", SECRETS, ids=str)
def test_opened_values_of_products_and_truncation_are_uniform(ring_bits, secret):
    s = mpsim.Session(parties=3, ring_bits=ring_bits, seed=23, trunc="dealer")
    calls = capture_openings(s)
    x = s.input(SECRETS[secret])
    x * x  # opens x - a, then trunc_pr opens x' + r
    opened = [value for values in calls for value in values]
    assert len(opened) == 2
    for value in opened:
        problem = uniformity_problem(value, ring_bits, "opened")
        assert problem is None, problem
