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
    # every additive protocol runs in the suite, which adds its exact truncation
    assert set(of("fss")) == set(of("additive")) | {"trunc_exact"}
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
    values, onehot, index = protocols.argmax(x, axis=-1, return_index=True)
    np.testing.assert_array_equal(s.reveal(values), a.max(axis=-1))
    np.testing.assert_array_equal(s.reveal(index), a.argmax(axis=-1))
    np.testing.assert_array_equal(s.reveal(onehot), np.eye(33)[a.argmax(axis=-1)])
    # 6 gate levels, the last index product, the one-hot, its reveal
    assert s.cost(since=mark).rounds == 6 + 1 + 1 + 1
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


CURVES = ("exp", "silu", "gelu")


@pytest.mark.parametrize("K", [32, 64])
@pytest.mark.parametrize("name", CURVES)
def test_spline_gates_against_their_twins_and_the_true_functions(name, K):
    """exp, SiLU and GeLU (protocols/fss/spline.py) twice: within one unit (the truncation) of the plaintext
    twin on real shares, and the twin within ``pieces.bound`` (the chords' E, the coefficients' rounding, the
    floor) of the true function at every grid point of the curve's domain, and 0 below it / the line above."""
    from protocols.fss import pieces

    curve = getattr(pieces, name.upper())
    s = session("share", K, seed=4)
    f = s.frac_bits
    grid = np.arange(round(curve.lo * 2**f), round(curve.hi * 2**f) + 1) / 2**f
    twin = pieces.twin(curve, grid, f)
    assert np.abs(twin - curve.fn(grid)).max() <= pieces.bound(curve, f)
    # on real shares: every knot and its neighbours, random grid points, below the domain and above it
    knots = pieces.pieces(curve, pieces.grid_of(curve, f))[0]
    near = (knots.reshape(-1, 1) + np.array([-1, 0, 1]) * 2.0**-f).reshape(-1)
    rng = np.random.default_rng(K)
    below = np.linspace(curve.lo - 8, curve.lo - 2.0**-f, 64)
    above = np.linspace(curve.hi, curve.hi + 40, 64) if curve.above else np.zeros(0)
    v = np.concatenate([near, rng.choice(grid, 3000), below, above])
    got = s.reveal(getattr(protocols, name)(s.input(v)))
    twin = pieces.twin(curve, v, f)
    assert np.abs(got - twin).max() <= 2.0**-f
    assert np.all(twin[v < curve.lo] == 0)
    if curve.above:
        assert np.abs(twin[v > curve.hi] - v[v > curve.hi]).max() <= 2.0**-f  # the identity, floored


@pytest.mark.parametrize("K", [32, 64])
@pytest.mark.parametrize("name", ["reciprocal", "rsqrt"])
def test_reciprocal_and_rsqrt_against_their_twins_and_the_true_functions(name, K):
    """The normalised FSS reciprocal and rsqrt (protocols/fss/recip.py) over their whole domain [2^-f, 2^D):
    the protocol within its derived distance of the twin and the twin within its derived bound of the true
    function, both per element (they scale with 2^(f-1-pos), pos the leading bit of x's ring integer)."""
    from protocols.fss import pieces
    from protocols.fss.recip import twin_inverse
    from protocols.nonlinear.recip import _recip_weights, _rsqrt_weights

    s = session("share", K, seed=5)
    f, u = s.frac_bits, 2.0**-s.frac_bits
    D = protocols.NonlinearConfig().log2_max(K, f)
    rng = np.random.default_rng(K)
    v = np.concatenate([2.0 ** rng.uniform(-f, D, 3000), 2.0 ** np.arange(-f, D), np.arange(1, 300) * u])
    v = np.round(v * 2**f) / 2**f
    pos = np.array([int(a).bit_length() - 1 for a in np.round(v * 2**f).astype(np.int64)])
    got = s.reveal(getattr(protocols, name)(s.input(v)))
    if name == "reciprocal":
        curve, weights, true, scale, spline_extra, twin_extra, k = (
            pieces.RECIP, _recip_weights, 1 / v, 2.0 ** (f - 1 - pos), 5, 1, 6)
    else:
        curve, weights, true, scale, spline_extra, twin_extra, k = (
            pieces.RSQRT, _rsqrt_weights, v**-0.5, 2.0 ** ((f - 1 - pos) / 2), 3, 2, 4)
    twin = twin_inverse(v, f, D, curve, weights)
    assert np.all(np.abs(twin - true) <= scale * (pieces.bound(curve, f) + spline_extra * u) + twin_extra * u)
    assert np.all(np.abs(got - twin) <= (k * scale + 2) * u)
    if K == 64:  # what that means where a softmax's denominator lives: a few units
        assert np.abs(got - true)[v >= 1].max() <= 5 * u


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [32, 64])
def test_exact_truncation_is_the_floor_at_the_edges_of_its_domain(backend, K):
    """trunc_exact (protocols/fss/trunc.py) is floor(x / 2^d) for every x in [-2^(K-2), 2^(K-2)), including
    the ends, the powers of two around 0 and the shifts 1 and K - 2; K = 32's default truncation."""
    from protocols.fss.trunc import trunc_exact

    s = session(backend, K, seed=K)
    assert s.trunc == ("local" if K == 64 else "exact")
    rng = np.random.default_rng(K)
    lim = 2 ** (K - 2)
    edges = [0, 1, -1, lim - 1, -lim, -lim + 1, 2, -2, 2**10, -(2**10), 2**10 - 1, -(2**10) - 1]
    v = np.concatenate([rng.integers(-lim, lim, 4000), edges]).astype(np.int64)
    shared = s.input(v, frac_bits=0)
    x = shared._like(shared.payload, shared.shape, frac=K - 2)  # a scale label that allows every shift
    for d in (1, 3, 10, K - 2):
        y = trunc_exact(x, d)
        got = s.ring.to_signed(s.backend.open(y.payload)).astype(np.int64)
        np.testing.assert_array_equal(got, np.floor_divide(v, 2**d))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_dpf_one_hot_is_exact_and_its_keys_are_small(backend):
    """onehot_rotation in the suite (protocols/fss/onehot.py): every index of [0, n) gives its one-hot, in
    one round, with a DPF key per index instead of the dealer's K T-bit rotated one-hot."""
    s = session(backend)
    n = 300
    idx = np.arange(n).reshape(3, 100)
    index = s.input(idx, frac_bits=0)
    mark = s.mark()
    oh = protocols.onehot(index, n)
    c = s.cost(since=mark)
    np.testing.assert_array_equal(s.reveal(oh), (np.arange(n) == idx[..., None]).astype(float))
    key_bits = 128 + 9 * 130 + 64  # T = 512
    assert c.rounds == 1 and c.offline_received_bits == (key_bits * n,) * 2
    beaver = mpsim.Session(parties=2, backend="count")
    mark = beaver.mark()
    protocols.onehot(beaver.placeholder((3, 100), frac_bits=0), n)
    assert beaver.cost(since=mark).offline_bits > 10 * c.offline_bits


@pytest.mark.parametrize("backend", BACKENDS)
def test_gates_are_exact_where_they_should_be(backend):
    """relu, maximum, minimum and the max / min tournaments are exact (the one-knot gate with slope 1, no
    truncation), one round each and one per level; argmax and argmin give the first extreme's index."""
    s = session(backend)
    rng = np.random.default_rng(9)
    a = np.round(rng.uniform(-50, 50, (3, 37)) * 2**8) / 2**8
    b = np.round(rng.uniform(-50, 50, (3, 37)) * 2**8) / 2**8
    b[:, :5] = a[:, :5]  # ties
    x, y = s.input(a), s.input(b, owner=1)
    for fn, want in ((lambda: protocols.relu(x), np.maximum(a, 0)), (lambda: protocols.maximum(x, y), np.maximum(a, b)),
                     (lambda: protocols.minimum(x, 2.5), np.minimum(a, 2.5))):
        mark = s.mark()
        np.testing.assert_array_equal(s.reveal(fn()), want)
        assert s.cost(since=mark).rounds == 2  # the gate, then the reveal
    for fn, want in ((protocols.max, a.max(axis=-1)), (protocols.min, a.min(axis=-1))):
        mark = s.mark()
        np.testing.assert_array_equal(s.reveal(fn(x, axis=-1)), want)
        assert s.cost(since=mark).rounds == 6 + 1  # ceil(log2 37) levels, then the reveal
    for fn, pick in ((protocols.argmin, np.argmin), (protocols.argmax, np.argmax)):  # ties: the lower index
        _, onehot, index = fn(x, axis=0, return_index=True)
        np.testing.assert_array_equal(s.reveal(index), pick(a, axis=0))
        np.testing.assert_array_equal(s.reveal(onehot), (np.arange(3)[:, None] == pick(a, axis=0)).astype(float))


def test_the_suite_meets_the_softmax_round_target():
    s = session("count")
    x = s.placeholder((32, 512))
    mark = s.mark()
    protocols.softmax(x)
    assert s.cost(since=mark).rounds <= 30
