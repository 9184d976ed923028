"""The user-facing testing helpers (mpsim.testing), used here on the project's own protocols."""
from __future__ import annotations

import numpy as np
import pytest

import protocols as P
from mpsim.testing import assert_cost, assert_protocol

GRID = np.rint(np.linspace(-3, 3, 13) * 2**16) / 2**16  # on the 2^-16 grid: encoding is exact


def test_relu_and_max_match_numpy_exactly_and_ledgers_agree():
    costs = assert_protocol(lambda s, x: P.relu(x), lambda x: np.maximum(x, 0), [GRID], ulps=0)
    assert costs[(2, "share")] == costs[(2, "count")]
    assert_protocol(lambda s, x: P.max(x.reshape(1, 13)), lambda x: x.max(keepdims=True), [GRID], ulps=0)


def test_products_within_one_ulp_and_boolean_outputs():
    assert_protocol(lambda s, x, y: x * y, lambda x, y: x * y, [GRID, GRID[::-1]], ulps=1)
    assert_protocol(lambda s, x: P.lt(x, 0.5), lambda x: (x < 0.5).astype(np.uint64), [GRID], ulps=0)


def test_a_wrong_reference_or_a_backend_dependent_ledger_is_caught():
    with pytest.raises(AssertionError, match="max error"):
        assert_protocol(lambda s, x: x * 2, lambda x: x * 2 + 2**-15, [GRID], ulps=1)

    def leaky(s, x):  # costs depend on the backend: must be caught
        return x * x if s.backend.name == "share" else x + 1

    with pytest.raises(AssertionError):
        assert_protocol(leaky, lambda x: x * x, [GRID], ulps=1, parties=(2,))


def test_assert_cost_against_a_declaration():
    # MSB of n = 13 elements, N = 2, K = 64: 7 rounds, (64 + 2 * 120) bits per element per party.
    assert_cost(lambda s, x: P.msb(x), [GRID], rounds=7, sent=13 * 304 / 8, offline=13 * (64 + 120) / 8)
    with pytest.raises(AssertionError, match="rounds"):
        assert_cost(lambda s, x: P.msb(x), [GRID], rounds=6)


def test_mpc_session_fixture_runs_every_configuration(mpc_session):
    x = mpc_session.input(GRID)
    y = x * x
    assert y.shape == GRID.shape
    assert mpc_session.cost().rounds == 1 + (mpc_session.trunc == "dealer")  # square, then truncation
    if mpc_session.backend.has_data:
        np.testing.assert_allclose(mpc_session.reveal(y), GRID**2, atol=2**-16)
