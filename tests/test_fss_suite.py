"""The FSS suite (``Session(parties=2, scheme="fss")``): the additive scheme with DCF comparisons.

Costs, transcripts and mutations of every FSS cell run in tests/test_costs.py, test_transcripts.py and
test_mutation.py with the other schemes; here: exact results at the ring's edges on real shares, that every
comparison-built protocol gets the one-round comparison, and that a decode step runs with it.
"""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
import protocols
from protocols.registry import CELLS, of

BACKENDS = ("share", "ideal")


def session(backend="share", K=64, seed=2, **kw):
    return mpsim.Session(parties=2, scheme="fss", ring_bits=K, backend=backend, seed=seed, **kw)


def test_the_suite_is_two_party_and_overlays_the_additive_scheme():
    with pytest.raises(ValueError, match="two-party"):
        mpsim.Session(parties=3, scheme="fss")
    assert set(of("fss")) == set(of("additive"))  # every additive protocol runs in the suite
    assert ("fss", "msb") in CELLS and ("fss", "beaver_mul") not in CELLS  # products stay Beaver
    s = session()
    x = s.input(np.array([1.5, -2.0]))
    np.testing.assert_array_equal(s.reveal(x * x), [2.25, 4.0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [32, 64])
def test_msb_is_exact_at_the_ring_edges(backend, K):
    s = session(backend, K)
    rng = np.random.default_rng(K)
    top = 2 ** (K - 1)
    ring_values = np.concatenate([
        np.array([0, 1, -1, top - 1, -top, -top + 1, 2, -2], dtype=np.int64),
        rng.integers(-top, top, 2000, dtype=np.int64),
    ])
    x = s.input(ring_values, frac_bits=0)
    bits = s.reveal(protocols.b2a_bit(protocols.msb(x)))
    np.testing.assert_array_equal(bits.astype(np.int64), (ring_values < 0).astype(np.int64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_comparison_built_protocols_are_exact_and_take_one_round_per_comparison(backend):
    s = session(backend)
    rng = np.random.default_rng(7)
    a = np.round(rng.uniform(-6, 6, (4, 33)) * 4) / 4
    b = a.copy()
    b[:, ::3] = np.round(rng.uniform(-6, 6, (4, 11)) * 4) / 4
    x, y = s.input(a), s.input(b, owner=1)
    bit = lambda t: s.reveal(protocols.b2a_bit(t)).astype(bool)  # noqa: E731
    np.testing.assert_array_equal(bit(protocols.lt(x, y)), a < b)
    np.testing.assert_array_equal(bit(protocols.ge(x, y)), a >= b)
    np.testing.assert_array_equal(s.reveal(protocols.relu(x)), np.maximum(a, 0))
    np.testing.assert_array_equal(s.reveal(protocols.maximum(x, y)), np.maximum(a, b))
    mark = s.mark()
    np.testing.assert_array_equal(s.reveal(protocols.max(x, axis=-1)), a.max(axis=-1))
    assert s.cost(since=mark).rounds == 6 * 2 + 1  # 6 levels of (comparison, selection), then the reveal
    values, onehot = protocols.topk(x, 3)
    np.testing.assert_array_equal(np.sort(s.reveal(values), axis=-1), np.sort(a, axis=-1)[:, -3:])


def test_one_comparison_costs_one_round_and_eight_bytes_and_a_key_per_party():
    s = session("count")
    x = s.placeholder((1000,))
    mark = s.mark()
    protocols.ltz(x)
    c = s.cost(since=mark)
    key_bits = 128 + 63 * 131 + 1
    assert c.rounds == 1 and c.sent_bits == (64 * 1000,) * 2
    assert c.offline_received_bits == ((key_bits + 1) * 1000, key_bits * 1000)


def test_a_decode_step_runs_in_the_suite_with_fewer_rounds():
    from mpcache.workload import measure

    beaver = measure("mpcache-proxy", 512, "mpcache")
    fss = measure("mpcache-proxy", 512, "mpcache", scheme="fss")
    assert fss.rounds < beaver.rounds / 2
    assert max(fss.sent_bytes) < max(beaver.sent_bytes)


@pytest.mark.parametrize("K", [32, 64])
def test_exp_spline_against_its_twin_and_the_true_function(K):
    """The FSS exp (protocols/fss/spline.py) twice: within one unit (its product's truncation) of its
    plaintext twin on real shares, and the twin within its derived bound of e^x on [-16, 0] (0 below):
    SPLINE_ERROR + (1/2 + 1/2 max u + 1) units, max u the widest piece (a rounded slope times u)."""
    from protocols.fss.spline import SPLINE_ERROR, exp_pieces, twin_exp

    s = session("share", K, seed=4)
    f = s.frac_bits
    v = np.concatenate([np.linspace(-16, 0, 4001), np.linspace(-20, -16.01, 50)])
    got = s.reveal(protocols.exp(s.input(v)))
    twin = twin_exp(v, f)
    assert np.abs(got - twin).max() <= 2.0**-f
    left, _, _ = exp_pieces()
    widest = np.diff(np.concatenate([left, [0.0]])).max()
    bound = SPLINE_ERROR + (0.5 + 0.5 * widest + 1) * 2.0**-f
    inside = v >= -16
    assert np.abs(twin[inside] - np.exp(v[inside])).max() <= bound
    assert np.all(twin[~inside] == 0)


def test_the_suite_meets_the_softmax_round_target():
    s = session("count")
    x = s.placeholder((32, 512))
    mark = s.mark()
    protocols.softmax(x)
    assert s.cost(since=mark).rounds <= 30
