"""Comparisons, selection and reductions against numpy, with their exact costs.

Every protocol here is exact (no truncation anywhere: a comparison is an MSB, a selection multiplies by an
integer 0/1), so values are compared with ``==``, never with a tolerance.

Comparison domain. ``lt(x, y)`` is the MSB of the ring element x - y, so it is right exactly when
-2^(K-1) <= x - y < 2^(K-1) as ring integers, i.e. |x - y| < 2^(K-1-f) as reals (``ltz(x)`` alone is the
MSB and is right on the whole ring). Inputs are therefore drawn from [-L, L) with L = 2^(K-2-f), half that
bound, so every difference of two inputs is inside the domain; the edge values sit at +-L (on the largest
grid float64 can hold there: 2^-f for K = 32, 2^-6 for K = 64, where f = 16). The exact boundary is
tested on integer-encoded data (x - y = 2^(K-1) - 1 is right, 2^(K-1) wraps and is wrong, as documented).

Sessions: backends share and ideal (values and costs) and count (shapes and costs), N in {2, 3} (N = 4 in
the property tests), K = 64 with f = 16 and K = 32 with f = 8. Costs are checked against the registry's
declared formulas: a comparison costs one ``msb`` (or ``eqz``), a selection one ``select``, and the
composites (relu, abs, maximum, max over an axis, argmax) exactly the sum of their parts, and exactly their
own registry entry.

Several tests use the user-facing helper ``mpsim.testing.assert_protocol``: one call runs the share, ideal and
count backends for N = 2 and 3, checks values (exactly: ulps=0) and shapes, and that the three ledgers are
identical; the returned costs are then checked against the declarations. Those tests take the data from an
``Env`` on the count backend (its generator is seeded independently of the backend) and are parametrized by
the ring only.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mpsim
import protocols as P
from mpsim.testing import assert_cost, assert_protocol
from protocol_env import CONFIGS, RINGS, ProtocolEnv, config_id
from protocols.reduce import levels
from protocols.registry import REGISTRY

PROPERTY = settings(max_examples=20, deadline=None, database=None)


class Env(ProtocolEnv):
    """One session plus: inputs inside the comparison domain, checked reveals of bits and values, costs."""

    SEED, RNG_SEED = 5, 99

    def __init__(self, backend, parties, ring_bits, seed=None):
        super().__init__(backend, parties, ring_bits, seed=seed)
        self.ulp = 2.0**-self.f
        self.L = 2.0 ** (ring_bits - 2 - self.f)  # half the comparison domain 2^(K-1-f)
        self.step = max(self.ulp, self.L / 2**52)  # the finest grid float64 holds exactly up to L

    def edges(self) -> np.ndarray:
        top = self.L - self.step
        return np.array([0.0, -0.0, self.ulp, -self.ulp, 1.0, -1.0, 1.0 + self.ulp, 1.0 - self.ulp,
                         self.L / 2, -self.L / 2, top, -top, -self.L, top - self.step, -self.L + self.step])

    def randoms(self, n: int) -> np.ndarray:
        small = np.rint(self.rng.uniform(-4, 4, n) / self.ulp) * self.ulp
        big = self.rng.integers(-round(self.L / self.step), round(self.L / self.step), n) * self.step
        return np.where(self.rng.random(n) < 0.5, small, big)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every pair of edge values, random pairs, and equal pairs: 15^2 + 64 + 16 = 305 pairs."""
        e = self.edges()
        a = np.concatenate([np.repeat(e, e.size), self.randoms(64), (r := self.randoms(16))])
        b = np.concatenate([np.tile(e, e.size), self.randoms(64), r])
        assert np.all(np.abs(a - b) < 2 * self.L)  # inside the domain, by construction
        return a, b

    def bits(self, t, expected) -> None:
        """Comparison results are single bits at scale 0."""
        super().bits(t, expected, width=1, frac=0)


@pytest.fixture(params=CONFIGS, ids=[config_id(c) for c in CONFIGS])
def env(request):
    return Env(*request.param)


def _data(ring_bits: int) -> Env:
    """An Env for its input helpers only (edges, randoms, pairs): its data do not depend on the backend."""
    return Env("count", 2, ring_bits)


def _mpc(ring_bits: int) -> dict:
    """assert_protocol's session options for ring K, as ProtocolEnv's sessions (N = 2 and 3)."""
    return {"ring_bits": ring_bits, "frac_bits": RINGS[ring_bits], "seed": Env.SEED, "parties": (2, 3),
            "trunc": "dealer" if ring_bits == 32 else "auto"}


def _bit(t):
    """A comparison result: a boolean-shared single bit at scale 0 (what Env.bits checks)."""
    assert t.kind == "B" and t.width == 1 and t.frac == 0, (t.kind, t.width, t.frac)
    return t


def _at(t, frac):
    """An arithmetic result at scale ``frac`` (what Env.values checks with ``frac=``)."""
    assert t.kind == "A" and t.frac == frac, (t.kind, t.frac, frac)
    return t


def _declared(name, ring_bits, parties, **dims) -> mpsim.Cost:
    return REGISTRY[name].declared(ring_bits, parties, **dims)


def _check_costs(costs, ring_bits, want, entry=None, **dims):
    """Every (N, backend) cost equals want(N) and, when given, the public name's registry entry at ``dims``."""
    for (parties, backend), cost in costs.items():
        assert cost == want(parties), (parties, backend, cost)
        if entry is not None:
            assert cost == _declared(entry, ring_bits, parties, **dims), (entry, parties, backend)


# ----------------------------------------------------------------------------------------------------------
# comparisons
# ----------------------------------------------------------------------------------------------------------

COMPARISONS = {
    "lt": (P.lt, np.less, "msb"),
    "le": (P.le, np.less_equal, "msb"),
    "gt": (P.gt, np.greater, "msb"),
    "ge": (P.ge, np.greater_equal, "msb"),
    "eq": (P.eq, np.equal, "eqz"),
}


@pytest.mark.parametrize("ring_bits", sorted(RINGS))
@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparison_matches_numpy_with_shared_and_public_operands(name, ring_bits):
    proto, ref, core = COMPARISONS[name]
    a, b = _data(ring_bits).pairs()
    n = a.size
    # case -> (protocol call, numpy reference, inputs, their owners): x from party 0, y from the last party
    cases = {
        "shared, shared": (lambda s, x, y: proto(x, y), lambda x, y: ref(x, y), [a, b], (0, -1)),
        "shared, public array": (lambda s, x: proto(x, b), lambda x: ref(x, b), [a], 0),
        "public array, shared": (lambda s, y: proto(a, y), lambda y: ref(a, y), [b], -1),
        "shared, public scalar": (lambda s, x: proto(x, 1.0), lambda x: ref(x, 1.0), [a], 0),
        "public scalar, shared": (lambda s, y: proto(-1.0, y), lambda y: ref(-1.0, y), [b], -1),
    }
    for case, (fn, reference, inputs, owner) in cases.items():
        costs = assert_protocol(lambda s, *xs: _bit(fn(s, *xs)), reference, inputs, ulps=0, owner=owner,
                                **_mpc(ring_bits))
        _check_costs(costs, ring_bits, lambda N: _declared(core, ring_bits, N, n=n), entry=name, n=n)


def test_ltz_and_msb_match_numpy_and_cost_one_msb(env):
    a = np.concatenate([env.edges(), env.randoms(64)])
    x = env.s.input(a)
    out, cost = env.cost_of(lambda: P.ltz(x))
    assert cost == env.declared("msb", n=a.size)
    assert cost.rounds == 1 + int(np.log2(env.K))
    env.bits(out, a < 0)
    env.bits(P.msb(x), a < 0)


def test_eqz_matches_numpy_and_distinguishes_one_ulp(env):
    a = np.array([0.0, -0.0, env.ulp, -env.ulp, 1.0, -env.L, env.L - env.step, env.L / 2])
    x = env.s.input(a)
    out, cost = env.cost_of(lambda: P.eqz(x))
    assert cost == env.declared("eqz", n=a.size)
    env.bits(out, a == 0)


def test_negative_zero_is_zero(env):
    x = env.s.input(np.array([-0.0, 0.0]))
    env.bits(P.ltz(x), [False, False])
    env.bits(P.eqz(x), [True, True])
    env.bits(P.eq(x[0:1], x[1:2]), [True])
    env.bits(P.le(x[0:1], x[1:2]), [True])
    env.bits(P.lt(x, 0.0), [False, False])
    env.values(P.sign(x), [1, 1], frac=0)
    env.values(P.relu(x), [0.0, 0.0])
    env.values(P.abs_(x), [0.0, 0.0])


def test_comparisons_of_integer_tensors_at_the_exact_domain_boundary(env):
    """Integer-encoded (f = 0): lt is right while -2^(K-1) <= x - y < 2^(K-1), and wraps beyond."""
    h = 1 << (env.K - 2)
    a = np.array([h - 1, -h, h - 1, -h, 0, -1], dtype=np.int64)
    b = np.array([-h, h - 1, h - 1, -h, -1, 0], dtype=np.int64)  # x - y = 2^(K-1) - 1 and -(2^(K-1) - 1)
    x, y = env.s.input(a, frac_bits=0), env.s.input(b, frac_bits=0)
    env.bits(P.lt(x, y), a < b)
    env.bits(P.gt(x, y), a > b)
    env.bits(P.eq(x, y), a == b)
    # Out of the domain: x - y = 2^(K-1) is the ring's most negative element, so [x < y] comes out 1.
    x2, y2 = env.s.input(np.array([h]), frac_bits=0), env.s.input(np.array([-h]), frac_bits=0)
    env.bits(P.lt(x2, y2), [True])
    # ltz is the MSB, right on the whole ring
    ring_edges = np.array([-(1 << (env.K - 1)), (1 << (env.K - 1)) - 1, 0, -1, 1], dtype=np.int64)
    env.bits(P.ltz(env.s.input(ring_edges, frac_bits=0)), ring_edges < 0)


def test_comparisons_of_mixed_scales_and_broadcasting(env):
    i = env.s.input(np.array([[1], [2], [-3]]), frac_bits=0)
    v = np.array([1.5, 2.0, -3.0, 0.0])
    x = env.s.input(v)
    ia = np.array([[1], [2], [-3]])
    env.bits(P.lt(i, x), ia < v)  # integer vs fixed point: the integer is lifted to the fixed-point scale
    env.bits(P.eq(i, 2.0), ia == 2.0)
    env.bits(P.eq(i, 2.5), ia == 2.5)
    env.bits(P.ge(x, i), v >= ia)


def test_comparison_results_compose_as_booleans(env):
    a, b = env.pairs()
    x, y = env.s.input(a), env.s.input(b)
    env.bits(P.xor(P.lt(x, y), P.gt(x, y)), a != b)
    env.bits(P.not_(P.eq(x, y)), a != b)
    env.bits(P.and_(P.le(x, y), P.ge(x, y)), a == b)


# ----------------------------------------------------------------------------------------------------------
# sign, abs, relu, select, where, maximum, minimum
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ring_bits", sorted(RINGS))
def test_sign_abs_relu_match_numpy(ring_bits):
    data = _data(ring_bits)
    a = np.concatenate([data.edges(), data.randoms(32)])
    n, f, K = a.size, data.f, ring_bits
    msb_select = lambda N: _declared("msb", K, N, n=n) + _declared("bit_select", K, N, nb=n, ny=n, n=n)  # noqa: E731
    # documented: sign(0) = +1 (numpy gives 0)
    costs = assert_protocol(lambda s, x: _at(P.sign(x), 0), lambda x: np.where(x < 0, -1, 1), [a], ulps=0,
                            **_mpc(K))
    _check_costs(costs, K, lambda N: _declared("msb", K, N, n=n) + _declared("b2a_bit", K, N, n=n), "sign", n=n)
    costs = assert_protocol(lambda s, x: _at(P.abs_(x), f), np.abs, [a], ulps=0, **_mpc(K))
    _check_costs(costs, K, msb_select, "abs", n=n)
    costs = assert_protocol(lambda s, x: _at(P.relu(x), f), lambda x: np.maximum(x, 0.0), [a], ulps=0, **_mpc(K))
    _check_costs(costs, K, msb_select, "relu", n=n)
    ints = np.array([5, -5, 0, -(1 << (K - 2)), (1 << (K - 2)) - 1], dtype=np.int64)  # shared as integers
    assert_protocol(lambda s, x: _at(P.relu(x), 0), lambda x: np.maximum(x, 0), [ints], ulps=0, **_mpc(K))
    assert_protocol(lambda s, x: _at(P.abs_(x), 0), np.abs, [ints], ulps=0, **_mpc(K))


SELECT_SHAPES = [((3, 4), (3, 4)), ((3, 1), (3, 4)), ((4,), (3, 4)), ((3, 4), (4,)), ((), (3,)), ((2,), ())]


@pytest.mark.parametrize("b_shape,y_shape", SELECT_SHAPES)
def test_select_broadcasts_and_costs_one_round(env, b_shape, y_shape):
    bv = env.rng.integers(0, 2, b_shape)
    yv = env.randoms(int(np.prod(y_shape, dtype=np.int64))).reshape(y_shape)
    b, y = P.share_bits(env.s, bv, width=1), env.s.input(yv)
    out, cost = env.cost_of(lambda: P.select(b, y))
    n = int(np.prod(np.broadcast_shapes(b_shape, y_shape), dtype=np.int64))
    assert cost == env.declared("bit_select", nb=bv.size, ny=yv.size, n=n)
    assert cost.rounds == 1
    env.values(out, bv * yv, frac=env.f)


def test_select_uses_bit_zero_of_a_word_and_rejects_arithmetic_bits(env):
    b = P.share_bits(env.s, np.array([2, 3, 0, 1]))  # words: only bit 0 is the condition
    y = env.s.input(np.array([1.0, 2.0, 3.0, 4.0]))
    env.values(P.select(b, y), [0.0, 2.0, 0.0, 4.0])
    with pytest.raises(TypeError):
        P.select(y, y)


def test_where_with_boolean_and_arithmetic_conditions(env):
    a, b = env.pairs()
    x, y = env.s.input(a), env.s.input(b)
    n = a.size
    cond = P.lt(x, y)
    out, cost = env.cost_of(lambda: P.where(cond, x, y))
    assert cost == env.declared("bit_select", nb=n, ny=n, n=n)
    env.values(out, np.where(a < b, a, b))
    arith = P.b2a_bit(cond)
    out, cost = env.cost_of(lambda: P.where(arith, x, y))
    assert cost == env.declared("beaver_mul", nx=n, ny=n, n=n)  # integer 0/1 times fixed point: no truncation
    env.values(out, np.where(a < b, a, b), frac=env.f)
    # public branches on either side, and a scalar
    env.values(P.where(cond, x, b), np.where(a < b, a, b))
    env.values(P.where(cond, a, y), np.where(a < b, a, b))
    env.values(P.where(arith, 2.0, y), np.where(a < b, 2.0, b))
    env.values(P.where(arith, x, -1.0), np.where(a < b, a, -1.0))
    with pytest.raises(ValueError):
        P.where(x, x, y)  # a fixed-point "condition" is not a 0/1
    with pytest.raises(TypeError):
        P.where(cond, 1.0, 2.0)


def test_where_broadcasts_condition_over_rows(env):
    v = env.randoms(12).reshape(3, 4)
    c = np.array([[1], [0], [1]])
    x = env.s.input(v)
    cb = P.share_bits(env.s, c, width=1)
    ca = env.s.input(c, frac_bits=0)
    env.values(P.where(cb, x, -x), np.where(c == 1, v, -v))
    env.values(P.where(ca, x, 0.5), np.where(c == 1, v, 0.5))


@pytest.mark.parametrize("ring_bits", sorted(RINGS))
def test_maximum_minimum_match_numpy(ring_bits):
    data = _data(ring_bits)
    a, b = data.pairs()
    n, f, K = a.size, data.f, ring_bits
    for name, proto, ref in (("maximum", P.maximum, np.maximum), ("minimum", P.minimum, np.minimum)):
        costs = assert_protocol(lambda s, x, y: _at(proto(x, y), f), ref, [a, b], ulps=0, **_mpc(K))
        _check_costs(costs, K, lambda N: _declared("msb", K, N, n=n) + _declared("bit_select", K, N, nb=n, ny=n, n=n),
                     name, n=n)
        assert_protocol(lambda s, x: proto(x, b), lambda x: ref(x, b), [a], ulps=0, **_mpc(K))
        assert_protocol(lambda s, y: proto(a, y), lambda y: ref(a, y), [b], ulps=0, **_mpc(K))
        assert_protocol(lambda s, x: proto(x, 0.5), lambda x: ref(x, 0.5), [a], ulps=0, **_mpc(K))
        assert_protocol(lambda s, y: proto(0.5, y), lambda y: ref(0.5, y), [b], ulps=0, **_mpc(K))


# ----------------------------------------------------------------------------------------------------------
# reductions: max, min, argmax, argmin
# ----------------------------------------------------------------------------------------------------------


def _tournament_cost(ring_bits: int, parties: int, rows: int, n: int, with_index: bool) -> mpsim.Cost:
    """The declared cost of the tournament: per level, one msb and one select over the pairs."""
    total = mpsim.Cost(0, 0, (0,) * parties, 0, (0,) * parties)
    while n > 1:
        m = rows * (n // 2)
        total = total + _declared("msb", ring_bits, parties, n=m)
        total = total + (_declared("bit_select", ring_bits, parties, nb=m, ny=2 * m, n=2 * m) if with_index
                         else _declared("bit_select", ring_bits, parties, nb=m, ny=m, n=m))
        n -= n // 2
    return total


def _onehot_ref(index: np.ndarray, n: int, axis: int) -> np.ndarray:
    oh = (np.arange(n) == index[..., None]).astype(np.int64)
    return np.moveaxis(oh, -1, axis)


REDUCE_CASES = [((7,), 0), ((4, 5), -1), ((4, 5), 0), ((3, 1), -1), ((2, 3, 6), 1), ((2, 3, 6), -1),
                ((2, 3, 4), 0), ((2, 3, 4), -3), ((2, 3, 4, 5), 1)]


@pytest.mark.parametrize("ring_bits", sorted(RINGS))
@pytest.mark.parametrize("shape,axis", REDUCE_CASES, ids=[f"{s}-ax{a}" for s, a in REDUCE_CASES])
def test_reductions_match_numpy_with_ties_to_the_lowest_index(shape, axis, ring_bits):
    """Values, indices and one-hots along every kind of axis (the reduced axis moves back to its place in
    the one-hot; numpy's axis order is kept for values and indices: a leading axis of a 3-D tensor once
    came out transposed)."""
    data = _data(ring_bits)
    K, f = ring_bits, data.f
    # Small integers make ties frequent; grid reals on top check the fixed-point path.
    a = data.rng.integers(-2, 3, shape).astype(np.float64) * 0.5
    if a.size >= 6:
        a.reshape(-1)[:3] = data.L - data.step  # large ties
    n = shape[axis]
    rows = a.size // n
    T = 1 << max(0, (n - 1).bit_length())
    for largest, reduce_fn, arg_fn, ref, arg_ref in ((True, P.max, P.argmax, np.max, np.argmax),
                                                    (False, P.min, P.argmin, np.min, np.argmin)):
        name = "max" if largest else "min"
        costs = assert_protocol(lambda s, x: _at(reduce_fn(x, axis=axis), f), lambda x: ref(x, axis=axis), [a],
                                ulps=0, **_mpc(K))
        _check_costs(costs, K, lambda N: _tournament_cost(K, N, rows, n, with_index=False), name,
                     rows=rows, n=n, L=levels(n), T=T)
        assert all(c.rounds == levels(n) * (2 + int(np.log2(K))) for c in costs.values())

        def arg(s, x):
            values, oh, index = arg_fn(x, axis=axis, return_index=True)
            return _at(values, f), _at(oh, 0), _at(index, 0)

        def arg_reference(x):
            return ref(x, axis=axis), _onehot_ref(arg_ref(x, axis=axis), n, axis), arg_ref(x, axis=axis)

        costs = assert_protocol(arg, arg_reference, [a], ulps=0, **_mpc(K))
        _check_costs(costs, K, lambda N: _tournament_cost(K, N, rows, n, with_index=True)
                     + _declared("onehot_rotation", K, N, m=rows, T=T), "arg" + name, rows=rows, n=n, L=levels(n), T=T)


def test_hand_computed_costs_at_n2_k64():
    """The declarations against costs worked out by hand (mpsim.testing.assert_cost), N = 2, K = 64.

    Per element: msb sends K + 2 (2K - 2 - log2 K) = 304 bits and needs 3K - 2 - log2 K = 184 offline bits;
    eqz sends K + 2 (K - 1) = 190 and needs 2K - 1 = 127; a bit_select of one element sends 1 + K = 65 and
    needs 2K = 128 offline (of a (value, index) pair: 1 + 2K = 129 and 3K = 192).
    """
    v = np.linspace(-2, 2, 10)
    assert_cost(lambda s, x: P.ltz(x), [v], rounds=7, sent=10 * 304 / 8, offline=10 * 184 / 8)
    assert_cost(lambda s, x, y: P.eq(x, y), [v, v[::-1]], rounds=7, sent=10 * 190 / 8, offline=10 * 127 / 8)
    assert_cost(lambda s, x: P.relu(x), [v], rounds=8, sent=10 * (304 + 65) / 8, offline=10 * (184 + 128) / 8)
    rows = np.linspace(-2, 2, 32).reshape(4, 8)  # 4 rows of 8: 3 levels, 7 pairs per row
    assert_cost(lambda s, x: P.max(x), [rows], rounds=3 * 8, sent=28 * (304 + 65) / 8,
                offline=28 * (184 + 128) / 8)
    # argmax adds the index to the select and a rotation one-hot: 1 round, log2 8 = 3 bits per row online,
    # 8 K + 3 offline
    assert_cost(lambda s, x: P.argmax(x), [rows], rounds=3 * 8 + 1, sent=(28 * (304 + 129) + 4 * 3) / 8,
                offline=(28 * (184 + 192) + 4 * (8 * 64 + 3)) / 8)


def test_all_equal_rows_and_single_candidates(env):
    a = np.full((3, 5), 1.25)
    x = env.s.input(a)
    values, oh, index = P.argmax(x, return_index=True)
    env.values(values, np.full(3, 1.25))
    env.values(index, np.zeros(3, dtype=np.int64))
    env.values(oh, _onehot_ref(np.zeros(3, dtype=np.int64), 5, -1))
    values, oh, index = P.argmin(x[:, :1], return_index=True)  # one candidate: no comparison at all
    env.values(values, np.full(3, 1.25))
    env.values(oh, np.ones((3, 1), dtype=np.int64))
    with pytest.raises(ValueError):
        P.max(x[:, :0])


def test_reduction_rounds_do_not_grow_with_rows():
    s = mpsim.Session(parties=2, seed=0, backend="count")
    rounds = []
    for rows in (1, 8, 64):
        x = s.placeholder((rows, 100))
        mark = s.mark()
        P.argmax(x)
        rounds.append(s.cost(since=mark).rounds)
    assert rounds[0] == rounds[1] == rounds[2] == levels(100) * 8 + 1


# ----------------------------------------------------------------------------------------------------------
# property-based tests (hypothesis): small shapes, share backend
# ----------------------------------------------------------------------------------------------------------

_SMALL_INTS = st.integers(-(1 << 30), (1 << 30))


@PROPERTY
@given(data=st.data(), parties=st.sampled_from([2, 3, 4]), ring_bits=st.sampled_from([32, 64]))
def test_property_comparisons_on_integers(data, parties, ring_bits):
    h = 1 << (ring_bits - 2)  # |x - y| < 2^(K-1) for every pair of values in [-h, h)
    elems = st.one_of(st.integers(-h, h - 1), st.integers(-3, 3), st.sampled_from([-h, h - 1, 0]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))
    a = data.draw(hnp.arrays(np.int64, shape, elements=elems))
    b = data.draw(hnp.arrays(np.int64, shape, elements=elems))
    s = mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=0, seed=data.draw(st.integers(0, 2**32)))
    x, y = s.input(a, frac_bits=0), s.input(b, frac_bits=0, owner=parties - 1)
    for name, (proto, ref, _) in COMPARISONS.items():
        np.testing.assert_array_equal(P.reveal_bits(proto(x, y)), ref(a, b).astype(np.uint64), err_msg=name)
    np.testing.assert_array_equal(P.reveal_bits(P.ltz(x)), (a < 0).astype(np.uint64))


@PROPERTY
@given(data=st.data(), ring_bits=st.sampled_from([32, 64]))
def test_property_fixed_point_comparisons_with_public_operand(data, ring_bits):
    f = RINGS[ring_bits]
    grid = st.integers(-(1 << 20), 1 << 20).map(lambda k: k * 2.0**-f)
    a = data.draw(hnp.arrays(np.float64, data.draw(st.integers(1, 8)), elements=grid))
    c = data.draw(grid)
    s = mpsim.Session(parties=2, ring_bits=ring_bits, frac_bits=f, seed=data.draw(st.integers(0, 2**32)))
    x = s.input(a)
    for name, (proto, ref, _) in COMPARISONS.items():
        np.testing.assert_array_equal(P.reveal_bits(proto(x, c)), ref(a, c).astype(np.uint64), err_msg=name)
        np.testing.assert_array_equal(P.reveal_bits(proto(c, x)), ref(c, a).astype(np.uint64), err_msg=name)


@PROPERTY
@given(data=st.data(), parties=st.sampled_from([2, 3]))
def test_property_selection(data, parties):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))
    a = data.draw(hnp.arrays(np.int64, shape, elements=_SMALL_INTS))
    b = data.draw(hnp.arrays(np.int64, shape, elements=_SMALL_INTS))
    c = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))
    s = mpsim.Session(parties=parties, frac_bits=16, seed=data.draw(st.integers(0, 2**32)))
    x, y = s.input(a, frac_bits=0), s.input(b, frac_bits=0)
    cb, ca = P.share_bits(s, c, width=1), s.input(c, frac_bits=0)
    np.testing.assert_array_equal(s.reveal(P.where(cb, x, y)), np.where(c == 1, a, b))
    np.testing.assert_array_equal(s.reveal(P.where(ca, x, y)), np.where(c == 1, a, b))
    np.testing.assert_array_equal(s.reveal(P.select(cb, x)), c * a)
    np.testing.assert_array_equal(s.reveal(P.maximum(x, y)), np.maximum(a, b))
    np.testing.assert_array_equal(s.reveal(P.minimum(x, y)), np.minimum(a, b))
    np.testing.assert_array_equal(s.reveal(P.relu(x)), np.maximum(a, 0))
    np.testing.assert_array_equal(s.reveal(P.abs_(x)), np.abs(a))


@PROPERTY
@given(data=st.data(), parties=st.sampled_from([2, 3]))
def test_property_argmax_argmin_ties_go_to_the_lowest_index(data, parties):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=6))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = data.draw(hnp.arrays(np.int64, shape, elements=st.one_of(st.integers(-2, 2), _SMALL_INTS)))
    s = mpsim.Session(parties=parties, seed=data.draw(st.integers(0, 2**32)))
    x = s.input(a, frac_bits=0)
    for fn, ref, arg_ref in ((P.argmax, np.max, np.argmax), (P.argmin, np.min, np.argmin)):
        values, oh, index = fn(x, axis=axis, return_index=True)
        np.testing.assert_array_equal(s.reveal(values), ref(a, axis=axis))
        np.testing.assert_array_equal(s.reveal(index), arg_ref(a, axis=axis))
        np.testing.assert_array_equal(s.reveal(oh), _onehot_ref(arg_ref(a, axis=axis), shape[axis], axis))
