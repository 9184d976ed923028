"""A public float with a whole-number value multiplies like the integer (exact, no truncation); any other
real still costs the session's truncation."""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
from protocols.registry import REGISTRY

F = 16
# Reals on the 2^-16 grid (encoding is exact), so an exact product reveals exactly.
X = np.rint(np.linspace(-3, 3, 12) * 2**F) / 2**F
WHOLE = [2.0, 1.0, -3.0, 0.0, np.float64(4.0), np.full(12, -1.0), np.arange(12) - 6.0]


def _truncation_traces(session, mark: int, work_mark: int) -> list[str]:
    """Scopes of the messages and the local work recorded since the marks that belong to a truncation."""
    scopes = [m.scope for m in session.ledger.messages[mark:]] + [w.scope for w in session.ledger.work[work_mark:]]
    return [scope for scope in scopes if "trunc" in scope]


# N = 2 truncates locally (SecureML: no message, but a truncation's local work and its one-unit error); N = 3
# truncates with the dealer (one round).
@pytest.mark.parametrize("parties", [2, 3])
@pytest.mark.parametrize("factor", WHOLE, ids=lambda f: repr(np.asarray(f).tolist()))
def test_a_whole_number_float_multiplies_exactly_without_a_truncation(parties, factor):
    s = mpsim.Session(parties=parties, seed=5, backend="share")
    x = s.input(X)
    mark, work_mark = s.mark(), len(s.ledger.work)
    y = x * factor
    assert s.cost(since=mark) == mpsim.Cost(0, 0, (0,) * parties, 0, (0,) * parties)
    assert _truncation_traces(s, mark, work_mark) == []
    assert y.frac == x.frac == F
    np.testing.assert_array_equal(s.reveal(y), X * factor)
    np.testing.assert_array_equal(s.reveal(factor * x), X * factor)  # the reflected product too


@pytest.mark.parametrize("parties", [2, 3])
def test_a_fraction_still_costs_the_sessions_truncation(parties):
    s = mpsim.Session(parties=parties, seed=5, backend="share")
    x = s.input(X)
    mark, work_mark = s.mark(), len(s.ledger.work)
    y = x * 0.5
    truncation = REGISTRY["trunc_local" if s.trunc == "local" else "trunc_pr"]
    assert s.cost(since=mark) == truncation.declared(64, parties, n=X.size)
    assert _truncation_traces(s, mark, work_mark)
    # X / 2 sits on the 2^-17 grid; a truncation gives its floor or the floor plus one unit of 2^-16, so it is
    # less than one unit off
    assert np.max(np.abs(s.reveal(y) - X * 0.5)) <= 2.0**-F


def test_mixed_factors_and_an_integer_encoded_tensor_keep_their_meaning():
    s = mpsim.Session(parties=3, seed=5, backend="share")
    x = s.input(X)
    mark = s.mark()
    x * np.array([2.0, 0.5] * 6)  # one fraction among whole numbers: a real product, truncated
    assert s.cost(since=mark).rounds == 1
    i = s.input(np.arange(-3, 3), frac_bits=0)
    mark = s.mark()
    z = i * 2.0  # integer times real: a real at scale f, as in numpy, and no truncation either way
    assert s.cost(since=mark).rounds == 0 and z.frac == F
    np.testing.assert_array_equal(s.reveal(z), np.arange(-3, 3) * 2.0)
    half = 2.0**-F  # not whole: a real product (exact at scale 2f), truncated to its floor or one unit above
    assert np.max(np.abs(s.reveal(x * (1 + half)) - X * (1 + half))) <= 2.0**-F


def test_power_of_two_means_pay_one_truncation_and_other_counts_two():
    s = mpsim.Session(parties=3, seed=5, backend="share")
    x = s.input(X.reshape(3, 4))
    trunc_round = REGISTRY["trunc_pr"].declared(64, 3, n=3).rounds
    mark = s.mark()
    exact = x.mean(axis=1)  # n = 4: truncate by 2, then times 2^2 / 4 = 1.0 (exact)
    assert s.cost(since=mark).rounds == trunc_round
    # the one truncation: the floor of the exact mean or one unit of 2^-16 above it, so less than a unit off
    np.testing.assert_allclose(s.reveal(exact), X.reshape(3, 4).mean(axis=1), rtol=0, atol=2.0**-F)
    mark = s.mark()
    x[:, :3].mean(axis=1)  # n = 3: truncate by 2, then times 4 / 3 (one more truncation)
    assert s.cost(since=mark).rounds == 2 * trunc_round
