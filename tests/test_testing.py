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


def test_per_element_and_per_backend_bounds_owners_and_collected_outputs():
    up = 2.0**-16 * (GRID > 0)  # a reference one unit off where x > 0
    bound = (GRID > 0).astype(np.float64)  # ... and a bound of one unit exactly there, 0 elsewhere
    outputs = {}
    assert_protocol(lambda s, x, y: x * 2 + y, lambda x, y: x * 2 + y + up, [GRID, GRID[::-1]], ulps=bound,
                    owner=(0, -1), outputs=outputs)  # exact local ops: every error is the reference's
    assert set(outputs) == {(2, "share"), (2, "ideal"), (3, "share"), (3, "ideal")}
    np.testing.assert_array_equal(outputs[(3, "share")][0], GRID * 2 + GRID[::-1])
    with pytest.raises(AssertionError, match="exceeds its bound"):  # one unit off where the bound is 0
        assert_protocol(lambda s, x: x * 2, lambda x: x * 2 + 2.0**-16, [GRID], ulps=bound)
    # A bound per backend: the ideal backend floors exactly, the share backend may be one unit above.
    assert_protocol(lambda s, x: x * x, lambda x: np.floor(np.rint(x * 2**16) ** 2 / 2**16) / 2**16,
                    [GRID / 3],
                    ulps={"ideal": 0, "share": 1})
    with pytest.raises(AssertionError, match="exceeds its bound"):  # a backend left out must be exact
        assert_protocol(lambda s, x: x * 2, lambda x: x * 2 + up, [GRID], ulps={"share": 1})
    with pytest.raises(AssertionError, match="shape"):  # shapes are checked, on the count backend too
        assert_protocol(lambda s, x: x.reshape(1, 13), lambda x: x, [GRID], ulps=0)


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
        # one truncation of an exact ring product: off by at most one unit of 2^-f (any --mpc-configs ring)
        np.testing.assert_allclose(mpc_session.reveal(y), GRID**2, rtol=0, atol=2.0**-mpc_session.frac_bits)
