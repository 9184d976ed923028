"""Tests for the numpy-like surface of ``SharedTensor``: every operation is compared with numpy on the plaintext.

Tolerances (in units of the result's last place, ULP = 2^-f):

* Inputs are drawn on the 2^-f grid, so encoding is exact (in general it adds <= 2^-(f+1) per input, see
  test_ring.py). Local operations (views, sums, + and -, products with public integers) are then exact.
* A fixed-point product (shared * shared, shared * public real, @) is one exact ring product followed by one
  truncation by f, which returns floor(p) or floor(p) + 1 ULP (local and dealer truncation; the ideal backend
  returns floor(p)), so the result is within 1 ULP of the exact product of the encoded operands.
* mean = trunc_f(trunc_g(sum) * enc(2^g/n)), g = ceil(log2 n): see test_mean_within_derived_tolerance.

Sessions use K = 64 (f = 16, the default) and K = 32 (f = 8). K = 32 sessions use dealer truncation even for
two parties: local (SecureML) truncation fails with probability ~2^(l+1-K) per element (session.py), about
2^-13 at K = 32, f = 8 for the magnitudes here, which would make exact value checks seed-dependent.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

import mpsim
from mpsim import CountBackendError, Cost, SharedTensor, Unrevealed

BACKENDS = ("share", "ideal", "count")
PARTIES = (2, 3)
RINGS = {64: 16, 32: 8}
CONFIGS = [(b, n, k) for b in BACKENDS for n in PARTIES for k in RINGS]


def make_session(backend, parties, ring_bits, seed=1):
    trunc = "dealer" if ring_bits == 32 else "auto"
    return mpsim.Session(parties=parties, seed=seed, backend=backend, ring_bits=ring_bits,
                         frac_bits=RINGS[ring_bits], trunc=trunc)


class Env:
    """One session plus helpers: grid-valued random data, checked reveals, and a zero-cost guard."""

    def __init__(self, backend, parties, ring_bits):
        self.backend, self.parties, self.K = backend, parties, ring_bits
        self.f = RINGS[ring_bits]
        self.ulp = 2.0**-self.f
        self.s = make_session(backend, parties, ring_bits)
        self.rng = np.random.default_rng(1234)

    @property
    def count(self) -> bool:
        return self.backend == "count"

    def grid(self, shape, bound=2.0):
        """Uniform reals in [-bound, bound] on the 2^-f grid (so encoding is exact)."""
        return np.rint(self.rng.uniform(-bound, bound, size=shape) * 2.0**self.f) / 2.0**self.f

    def ints(self, shape, bound):
        return self.rng.integers(-bound, bound, size=shape, endpoint=True, dtype=np.int64)

    def shared(self, shape, bound=2.0, owner=0):
        a = self.grid(shape, bound)
        return self.s.input(a, owner=owner), a

    def check(self, t, expected, ulps=0):
        """Shape always; values (exactly, or within ``ulps`` ULP of t's scale) unless the backend is count."""
        expected = np.asarray(expected)
        assert isinstance(t, SharedTensor) and t.session is self.s
        assert t.shape == expected.shape, f"shape {t.shape} != numpy's {expected.shape}"
        assert t.ndim == expected.ndim and t.size == expected.size
        got = self.s.reveal(t)
        if self.count:
            assert isinstance(got, Unrevealed) and got.shape == expected.shape
            return
        # numpy-like: a 0-d result may come back as a numpy scalar
        assert isinstance(got, (np.ndarray, np.generic)) and np.shape(got) == expected.shape
        if t.frac == 0:
            assert np.asarray(got).dtype == np.int64
            np.testing.assert_array_equal(got, expected)
            return
        assert np.asarray(got).dtype == np.float64
        if np.all(np.asarray(ulps) == 0):
            np.testing.assert_array_equal(got, expected)
        else:
            err = np.abs(got - expected)
            tol = ulps * 2.0**-t.frac
            assert np.all(err <= tol), f"max error {err.max()} > {np.max(tol)} ({ulps} ULP at f={t.frac})"

    @contextmanager
    def free(self):
        """Everything inside must record nothing: all Cost counters zero and the ledger unchanged."""
        n = self.parties
        mark = self.s.mark()
        length = len(self.s.ledger)
        yield
        assert self.s.cost(since=mark) == Cost(0, 0, (0,) * n, 0, (0,) * n)
        assert len(self.s.ledger) == length


def _config_id(c):
    return f"{c[0]}-N{c[1]}-K{c[2]}"


@pytest.fixture(params=CONFIGS, ids=[_config_id(c) for c in CONFIGS])
def env(request):
    return Env(*request.param)


def run_cases(cases):
    """Run named checks and report every failing one together (light-weight subtests: many small cases per
    session keep the suite fast, and one failure does not hide the others)."""
    failures = []
    for name, fn in cases:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - collected and re-raised below as one assertion
            failures.append(f"[{name}] {type(err).__name__}: {err}")
    assert not failures, f"{len(failures)} failing case(s):\n" + "\n".join(failures)


# ----------------------------------------------------------------------------------------------------------
# basic properties
# ----------------------------------------------------------------------------------------------------------


def test_shape_ndim_size_len_iter(env):
    for shape in [(5,), (2, 3), (2, 3, 4), (0, 3), (1, 1, 1, 2)]:
        x, a = env.shared(shape)
        assert x.shape == shape and x.ndim == len(shape) and x.size == a.size and len(x) == shape[0]
        assert x.frac == env.f
        rows = list(x)
        assert len(rows) == shape[0] and all(r.shape == shape[1:] for r in rows)
        assert "SharedTensor" in repr(x) and str(shape) in repr(x)
    env.check(x, a)


def test_zero_d_tensor_properties_and_len_raises(env):
    x, _ = env.shared((2, 3))
    with env.free():
        t = x.sum()
    assert t.shape == () and t.ndim == 0 and t.size == 1
    with pytest.raises(TypeError):
        len(t)


# ----------------------------------------------------------------------------------------------------------
# local views: indexing, reshaping, transposes, sums (same expression on the tensor and on numpy)
# ----------------------------------------------------------------------------------------------------------

_MASK0 = np.array([True, False, True, True])
_MASK_FULL = np.random.default_rng(9).random((4, 5, 6)) > 0.5  # a public mask, independent of the data

VIEWS = {
    # integers and slices
    "int": lambda a: a[1],
    "negative int": lambda a: a[-1],
    "two ints": lambda a: a[1, -2],
    "slice": lambda a: a[1:3],
    "slice step": lambda a: a[::2, 1:5:3],
    "negative step": lambda a: a[::-1],
    "negative steps": lambda a: a[3:0:-2, :, ::-3],
    "ellipsis": lambda a: a[..., 2],
    "ellipsis slice": lambda a: a[1, ..., 1:],
    "none": lambda a: a[None],
    "none middle": lambda a: a[:, None, 2],
    "ellipsis none": lambda a: a[1, ..., None],
    # public advanced indices
    "bool axis 0": lambda a: a[_MASK0],
    "bool full": lambda a: a[_MASK_FULL],
    "bool then slice": lambda a: a[_MASK0, 1:3],
    "int array": lambda a: a[np.array([3, 0, -1, 0])],
    "int array 2d": lambda a: a[np.array([[0, 1], [2, 3]])],
    "list": lambda a: a[[2, 2, 1]],
    "int arrays mixed": lambda a: a[np.array([0, 2]), :, np.array([1, 5])],
    "int arrays broadcast": lambda a: a[np.array([1, 3]), np.array([[0], [4]])],
    "int then list": lambda a: a[1, [0, 2], ...],
    # reshapes and transposes
    "reshape -1": lambda a: a.reshape(-1),
    "reshape ints": lambda a: a.reshape(2, -1),
    "reshape tuple": lambda a: a.reshape((5, -1, 2)),
    "flatten": lambda a: a.flatten(),
    "T": lambda a: a.T,
    "transpose": lambda a: a.transpose(),
    "transpose axes": lambda a: a.transpose(1, 0, 2),
    "transpose tuple": lambda a: a.transpose((2, 0, 1)),
    "swapaxes": lambda a: a.swapaxes(0, 2),
    "swapaxes negative": lambda a: a.swapaxes(-1, 1),
    "chain": lambda a: a[::-1, 1:].T.reshape(6, -1)[2:],
    # sums (local: each party sums its shares)
    "sum": lambda a: a.sum(axis=None, keepdims=True),
    "sum 0": lambda a: a.sum(axis=0),
    "sum -1": lambda a: a.sum(axis=-1),
    "sum 1 keepdims": lambda a: a.sum(axis=1, keepdims=True),
    "sum tuple": lambda a: a.sum(axis=(0, 2)),
    "sum tuple negative keepdims": lambda a: a.sum(axis=(-1, 0), keepdims=True),
    "sum empty tuple": lambda a: a.sum(axis=()),
}


def test_local_views_match_numpy_exactly_and_cost_nothing(env):
    x, a = env.shared((4, 5, 6))

    def case(fn):
        def run():
            with env.free():
                y = fn(x)
            # Exact: grid values, no truncation; sums of <= 120 grid values are exact in the ring and in float64.
            env.check(y, fn(a))
        return run

    run_cases((name, case(fn)) for name, fn in VIEWS.items())


def test_views_of_integer_tensors_stay_integer(env):
    a = env.ints((3, 4), 1000)
    x = env.s.input(a, frac_bits=0)
    with env.free():
        y = x[::-1, 1:].T.sum(axis=0)
    assert y.frac == 0
    env.check(y, a[::-1, 1:].T.sum(axis=0))


def test_sum_of_negative_values_wraps_correctly(env):
    # Every share of a negative value is a large ring element; the ring sum must still decode exactly.
    a = -np.abs(env.grid((64,))) - 1.0
    x = env.s.input(a)
    env.check(x.sum(keepdims=True), a.sum(keepdims=True))
    env.check(x.reshape(8, 8).sum(axis=0), a.reshape(8, 8).sum(axis=0))


# ----------------------------------------------------------------------------------------------------------
# mean
# ----------------------------------------------------------------------------------------------------------


# Reductions to a 0-d tensor (axis None or all axes without keepdims) are in test_zero_d_tensors.
MEAN_AXES = [(None, True), ((2, 1, 0), True)] + [(ax, kd) for ax in (0, 1, -1, (0, 2)) for kd in (False, True)]


def test_mean_within_derived_tolerance(env):
    x, a = env.shared((3, 4, 2))

    def case(axis, keep):
        def run():
            m = x.mean(axis=axis, keepdims=keep)
            total = a.sum(axis=axis, keepdims=keep)
            n = a.size // total.size
            # mean = trunc_f(trunc_g(sum) * c~) with g = ceil(log2 n), c = 2^g / n in (1, 2], c~ its encoding:
            # the first truncation is off by <= 1 ULP, scaled by c~ <= 2; c~ is off by e_c <= 2^-(f+1), scaled
            # by |sum| / 2^g; the last truncation adds <= 1 ULP. In ULPs:
            g = max(1, (n - 1).bit_length())
            c = 2.0**g / n
            e_c = abs(np.rint(c * 2.0**env.f) / 2.0**env.f - c)
            ulps = 1.0 + c + np.abs(total) / 2.0**g * e_c * 2.0**env.f
            env.check(m, a.mean(axis=axis, keepdims=keep), ulps=ulps)
        return run

    run_cases((f"axis={ax} keepdims={kd}", case(ax, kd)) for ax, kd in MEAN_AXES)


# ----------------------------------------------------------------------------------------------------------
# concatenate and stack
# ----------------------------------------------------------------------------------------------------------


def test_concatenate_and_stack_match_numpy(env):
    x, a = env.shared((2, 3))
    y, b = env.shared((2, 3), owner=env.parties - 1)
    z, c = env.shared((4, 3))
    with env.free():
        outs = [
            (mpsim.concatenate([x, z]), np.concatenate([a, c])),
            (mpsim.concatenate([x, y, x], axis=1), np.concatenate([a, b, a], axis=1)),
            (mpsim.concatenate((x, y), axis=-1), np.concatenate((a, b), axis=-1)),
            (mpsim.concatenate([z]), c),
            (mpsim.stack([x, y]), np.stack([a, b])),
            (mpsim.stack([x, y, x], axis=1), np.stack([a, b, a], axis=1)),
            (mpsim.stack((x, y), axis=-1), np.stack((a, b), axis=-1)),
        ]
    for t, expected in outs:
        env.check(t, expected)


def test_concatenate_and_stack_mixed_scales_promote_to_fixed_point(env):
    x, a = env.shared((2, 3))
    ai = env.ints((2, 3), 100)
    xi = env.s.input(ai, frac_bits=0)
    with env.free():
        cat = mpsim.concatenate([xi, x])
        st = mpsim.stack([x, xi], axis=-1)
    assert cat.frac == env.f and st.frac == env.f
    env.check(cat, np.concatenate([ai, a]))
    env.check(st, np.stack([a, ai], axis=-1))


def test_concatenate_and_stack_shape_errors(env):
    x, _ = env.shared((2, 3))
    y, _ = env.shared((2, 4))
    n = len(env.s.ledger)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        mpsim.concatenate([x, y])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        mpsim.stack([x, y])
    with pytest.raises(ValueError):
        mpsim.concatenate([])
    with pytest.raises(TypeError):
        mpsim.stack([x, np.ones((2, 3))])
    assert len(env.s.ledger) == n


# ----------------------------------------------------------------------------------------------------------
# elementwise arithmetic with broadcasting
# ----------------------------------------------------------------------------------------------------------

# Operand kinds for x of shape (3, 4). "shared" operands are built with session.input.
OPERANDS = {
    "shared same shape": ("shared", (3, 4)),
    "shared row": ("shared", (4,)),
    "shared column": ("shared", (3, 1)),
    "shared more dims": ("shared", (2, 3, 4)),
    "shared more dims both broadcast": ("shared", (2, 1, 4)),
    "python int": ("int", 3),
    "python negative int": ("int", -2),
    "python float": ("float", 0.75),
    "numpy int row": ("int", np.array([1, -2, 3, 0])),
    "numpy float column": ("float", np.array([[0.5], [-1.25], [2.0]])),
    "numpy float more dims": ("float", np.full((2, 3, 4), -1.5) + np.arange(4) / 4),
    "numpy int more dims": ("int", np.arange(24).reshape(2, 3, 4) - 12),
    "numpy float 0-d": ("float", np.array(1.5)),
    "list of floats": ("float", [0.5, 0.25, -0.75, 1.0]),
}


def _operand(env, kind, spec):
    if kind == "shared":
        return env.shared(spec, owner=env.parties - 1)
    return spec, np.asarray(spec)


def test_add_sub_mul_broadcast_like_numpy(env):
    x, a = env.shared((3, 4))
    run_cases((name, lambda kind=kind, spec=spec: _check_add_sub_mul(env, x, a, kind, spec))
              for name, (kind, spec) in OPERANDS.items())


def _check_add_sub_mul(env, x, a, kind, spec):
    y, b = _operand(env, kind, spec)
    with env.free():
        add, sub = x + y, x - y
        radd = y + x  # shared + shared, or the right-hand operator for public operands
        rsub = y - x
    env.check(add, a + b)  # exact: public values are on the grid, ring addition is exact
    env.check(sub, a - b)
    env.check(radd, b + a)
    env.check(rsub, b - a)
    if kind == "int":
        with env.free():  # products with public integers are local and exact
            prod, rprod = x * y, y * x
        env.check(prod, a * b)
        env.check(rprod, b * a)
    else:
        # one truncation: <= 1 ULP from the exact product of grid values
        env.check(x * y, a * b, ulps=1)
        env.check(y * x, b * a, ulps=1)


def test_unary_minus_and_right_hand_operators(env):
    x, a = env.shared((2, 3))
    w = np.array([[1.5, -0.5, 0.25], [2.0, 0.0, -1.0]])
    with env.free():
        neg = -x
        r1 = 3 - x
        r2 = w - x
        r3 = w + x
        r4 = 2 + x
        r5 = np.array([2, -1, 0]) * x
        r6 = 4 * x
    for t, expected in [(neg, -a), (r1, 3 - a), (r2, w - a), (r3, w + a), (r4, 2 + a), (r5, np.array([2, -1, 0]) * a),
                        (r6, 4 * a)]:
        env.check(t, expected)
    env.check(2.5 * x, 2.5 * a, ulps=1)
    env.check(w * x, w * a, ulps=1)
    env.check(np.float64(-0.75) * x, -0.75 * a, ulps=1)


def test_python_scalar_public_reals(env):
    """Scalar public reals (encoded as 0-d ring arrays) in +, -, * and mean."""
    x, a = env.shared((2, 2))
    env.check(x + 0.5, a + 0.5)
    env.check(x - 0.25, a - 0.25)
    env.check(x * 2.5, a * 2.5, ulps=1)
    env.check(x.mean(axis=1), a.mean(axis=1), ulps=1)  # n = 2: 1/n is exact, one truncation


# ----------------------------------------------------------------------------------------------------------
# matrix products
# ----------------------------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((4,), (4, 3)),
    ((3, 4), (4,)),
    ((3, 4), (4, 2)),
    ((2, 3, 4), (2, 4, 2)),
    ((2, 3, 4), (4, 2)),
    ((3, 4), (2, 4, 2)),
    ((1, 3, 4), (2, 4, 5)),
    ((4,), (2, 4, 3)),
    ((2, 1, 2, 3), (3, 3, 2)),
]


def _mm_id(s):
    return "@".join("x".join(map(str, t)) for t in s)


def test_matmul_shared_shared(env):
    def case(sx, sy):
        def run():
            # |entries| <= 1, k <= 4: the product's one truncation gives <= 1 ULP from the exact grid result.
            x, a = env.shared(sx, bound=1.0)
            y, b = env.shared(sy, bound=1.0, owner=env.parties - 1)
            env.check(x @ y, a @ b, ulps=1)
        return run

    run_cases((_mm_id(shapes), case(*shapes)) for shapes in MATMUL_SHAPES)


def test_matmul_with_public_operands(env):
    run_cases((_mm_id(shapes), lambda shapes=shapes: _check_public_matmul(env, *shapes)) for shapes in MATMUL_SHAPES)


def _check_public_matmul(env, sx, sy):
    x, a = env.shared(sx, bound=1.0)
    w_left = env.grid(sx, 1.0)  # public operand on the left of a shared y
    y, b = env.shared(sy, bound=1.0)
    w_right = env.grid(sy, 1.0)
    # Public reals: one truncation, <= 1 ULP.
    env.check(x @ w_right, a @ w_right, ulps=1)
    env.check(w_left @ y, w_left @ b, ulps=1)
    # Public integers: a local exact ring product, free.
    wi_left = env.ints(sx, 3)
    wi_right = env.ints(sy, 3)
    with env.free():
        p1 = x @ wi_right
        p2 = wi_left @ y
    env.check(p1, a @ wi_right)
    env.check(p2, wi_left @ b)


def test_matmul_with_list_operands(env):
    x, a = env.shared((2, 3))
    env.check(x @ [[1, 0], [0, 2], [-1, 1]], a @ np.array([[1, 0], [0, 2], [-1, 1]]))
    env.check([[0.5, 1.0]] @ x, np.array([[0.5, 1.0]]) @ a, ulps=1)


# ----------------------------------------------------------------------------------------------------------
# integer-encoded tensors and mixed scales
# ----------------------------------------------------------------------------------------------------------


def test_integer_tensor_ops_are_exact(env):
    # Magnitudes keep every product below 2^(K-1): |values|, |multipliers| <= 2^(K/2 - 4), k = 3.
    bound = 1 << (env.K // 2 - 4)
    ai, bi = env.ints((3, 3), bound), env.ints((3, 3), bound)
    xi = env.s.input(ai, frac_bits=0)
    yi = env.s.input(bi, owner=env.parties - 1, frac_bits=0)
    assert xi.frac == 0 and yi.frac == 0
    pub = env.ints((3,), bound)
    with env.free():
        local = [
            (xi * 7, ai * 7), (-3 * xi, -3 * ai), (xi * pub, ai * pub), (pub * xi, pub * ai),
            (xi * np.int64(bound), ai * bound), (xi + 5, ai + 5), (xi - pub, ai - pub), (100 - xi, 100 - ai),
            (xi @ pub, ai @ pub), (pub @ xi, pub @ ai), (xi + yi, ai + bi), (xi - yi, ai - bi), (-xi, -ai),
        ]
    for t, expected in local:
        assert t.frac == 0
        env.check(t, expected)
    # Shared integer products: a ring protocol with no truncation, exact.
    for t, expected in [(xi * yi, ai * bi), (xi * xi, ai * ai), (xi @ yi, ai @ bi)]:
        assert t.frac == 0
        env.check(t, expected)


def test_integer_tensor_extremes_round_trip(env):
    K = env.K
    ai = np.array([-(1 << (K - 1)), -1, 0, 1, (1 << (K - 1)) - 1], dtype=np.int64)
    env.check(env.s.input(ai, frac_bits=0), ai)


def test_mixed_scale_integer_and_fixed_point(env):
    x, a = env.shared((2, 3))
    ai = env.ints((2, 3), 50)
    xi = env.s.input(ai, frac_bits=0)
    with env.free():  # aligning scales multiplies the integer tensor by 2^f: local
        s1, s2, s3 = xi + x, x - xi, xi - x
    for t, expected in [(s1, ai + a), (s2, a - ai), (s3, ai - a)]:
        assert t.frac == env.f
        env.check(t, expected)
    # Integer times fixed point: truncation by min(0, f) = 0, so the product is exact.
    p = xi * x
    assert p.frac == env.f
    env.check(p, ai * a)
    env.check(x * xi, a * ai)
    env.check(xi @ x.T, ai @ a.T)


# ----------------------------------------------------------------------------------------------------------
# costs
# ----------------------------------------------------------------------------------------------------------


def test_local_ops_cost_nothing_and_interactive_ones_do(env):
    n = env.parties
    x, a = env.shared((3, 4))
    y, b = env.shared((3, 4), owner=n - 1)
    xi = env.s.input(env.ints((3, 4), 9), frac_bits=0)
    with env.free():
        t = (x[1:] + y[:2]).T.reshape(-1) - np.ones(8)
        t = mpsim.concatenate([t, -t]) * 3
        u = mpsim.stack([x, y, xi]).sum(axis=(0, 1), keepdims=True) + np.ones((2, 1, 4))
        v = (np.arange(3) @ x, x @ np.ones((4, 2), dtype=np.int64).sum(axis=1), x * np.arange(4))
        del t, u, v
    mark = env.s.mark()
    x * y
    c = env.s.cost(since=mark)
    # One Beaver round: every party sends its shares of e and f (2 * 12 elements of K bits) to N - 1 others.
    assert c.rounds >= 1 and c.sent_bits[0] >= 2 * 12 * env.K * (n - 1)
    assert c.offline_bits >= 12 * env.K


# ----------------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------------


def test_tensors_of_two_sessions_cannot_be_mixed(env):
    x, _ = env.shared((2, 2))
    other = make_session(env.backend, env.parties, env.K, seed=2)
    y = other.input(np.ones((2, 2)))
    n1, n2 = len(env.s.ledger), len(other.ledger)
    ops = [lambda: x + y, lambda: y + x, lambda: x - y, lambda: x * y, lambda: y * x, lambda: x @ y,
           lambda: mpsim.concatenate([x, y]), lambda: mpsim.stack([y, x])]
    for op in ops:
        with pytest.raises(ValueError, match="different sessions"):
            op()
    assert len(env.s.ledger) == n1 and len(other.ledger) == n2


@pytest.mark.parametrize("op", ["+", "-", "*"])
def test_mismatched_shapes_raise_naming_both(env, op):
    x, _ = env.shared((3, 4))
    y, _ = env.shared((5,))
    apply = {"+": lambda p, q: p + q, "-": lambda p, q: p - q, "*": lambda p, q: p * q}[op]
    n = len(env.s.ledger)
    for other in (y, np.ones(5), np.ones(5, dtype=np.int64), np.ones((2, 3, 5))):
        with pytest.raises(ValueError) as err:
            apply(x, other)
        msg = str(err.value)
        assert "(3, 4)" in msg and str(other.shape) in msg, msg
    assert len(env.s.ledger) == n  # a rejected operation records nothing


def test_misaligned_matmul_raises(env):
    x, _ = env.shared((3, 4))
    n = len(env.s.ledger)
    cases = [
        lambda: x @ env.s.input(np.ones((3, 2))),
        lambda: x @ env.s.input(np.ones(3)),
        lambda: env.s.input(np.ones(4)) @ x,
        lambda: env.s.input(np.ones((2, 3, 4))) @ env.s.input(np.ones((3, 4, 2))),
        lambda: x @ np.ones((3, 2)),
        lambda: x @ np.ones((3, 2), dtype=np.int64),
        lambda: np.ones((2, 4)) @ x,
        lambda: np.ones(5) @ x,
    ]
    for case in cases:
        with pytest.raises(ValueError):
            case()
    assert len(env.s.ledger) == n


def test_python_protocol_misuse_raises(env):
    x, _ = env.shared((2, 3))
    with pytest.raises(TypeError):
        bool(x)
    with pytest.raises(TypeError):
        if x:  # noqa: SIM102 - the implicit truth test is the point
            pass
    with pytest.raises(TypeError):
        np.asarray(x)
    with pytest.raises(TypeError):
        np.array(x)
    with pytest.raises(TypeError):
        x[x]
    idx = env.s.input(np.array([0, 1]), frac_bits=0)
    with pytest.raises(TypeError):
        x[idx]
    with pytest.raises(TypeError):
        x @ 3  # a scalar is not a matmul operand
    with pytest.raises(TypeError):
        x + "a"


def test_mean_of_integer_tensor_raises(env):
    xi = env.s.input(np.arange(6).reshape(2, 3), frac_bits=0)
    for axis in (None, 0, (0, 1)):
        with pytest.raises(ValueError, match="integer"):
            xi.mean(axis=axis)


# ----------------------------------------------------------------------------------------------------------
# 0-d tensors (scalars), including their interactive operations
# ----------------------------------------------------------------------------------------------------------

ZERO_D = {
    "input python float": lambda e, x, a: (e.s.input(1.25), np.float64(1.25), 0),
    "input numpy 0-d": lambda e, x, a: (e.s.input(np.array(-0.5)), np.float64(-0.5), 0),
    "input int scalar": lambda e, x, a: (e.s.input(7, frac_bits=0), np.int64(7), 0),
    "sum": lambda e, x, a: (x.sum(), a.sum(), 0),
    "index": lambda e, x, a: (x[1], a[1], 0),
    "index plus public": lambda e, x, a: (x[1] + 1.0, a[1] + 1.0, 0),
    "index times int": lambda e, x, a: (x[1] * 3, a[1] * 3, 0),
    "index product": lambda e, x, a: (x[0] * x[1], a[0] * a[1], 1),
    "square": lambda e, x, a: (x[2] * x[2], a[2] * a[2], 1),
    "times public real": lambda e, x, a: (x[0] * 2.5, a[0] * 2.5, 1),
    "dot product": lambda e, x, a: (x @ x[::-1], a @ a[::-1], 1),
    "dot with public": lambda e, x, a: (x @ np.array([0.5, 1.0, -2.0]), a @ np.array([0.5, 1.0, -2.0]), 1),
    "mean": lambda e, x, a: (x.mean(), a.mean(), 1 + abs(a.sum()) * 2.0**e.f * abs(np.rint(2.0**e.f / 3) / 2.0**e.f - 1 / 3)),
}


def test_zero_d_tensors(env):
    x, a = env.shared((3,))

    def case(fn):
        def run():
            t, expected, ulps = fn(env, x, a)
            assert t.shape == ()
            env.check(t, expected, ulps=ulps)
        return run

    run_cases((name, case(fn)) for name, fn in ZERO_D.items())


# ----------------------------------------------------------------------------------------------------------
# the count backend
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parties", PARTIES)
@pytest.mark.parametrize("ring_bits", list(RINGS))
def test_count_backend_holds_no_values(parties, ring_bits):
    s = make_session("count", parties, ring_bits)
    x = s.input(np.ones((2, 3)))
    y = s.input(np.ones((3, 4)))
    z = (x @ y)[:, 1:] * x[:, :3]
    assert z.shape == (2, 3) and z.payload is None
    r = s.reveal(z)
    assert r.shape == (2, 3)
    with pytest.raises(CountBackendError):
        np.asarray(r)
    with pytest.raises(CountBackendError):
        r[0]
    with pytest.raises(CountBackendError):
        float(r)
    with pytest.raises(CountBackendError):
        list(r)
    with pytest.raises(CountBackendError):
        z.shares
    r1 = s.reveal(x, to=1)
    assert r1.shape == (2, 3)
    with pytest.raises(CountBackendError):
        np.asarray(r1)


def _small_computation(s):
    """A little of everything interactive (and some local ops); returns nothing: only the ledger matters."""
    f = np.full((2, 4), 0.5)  # an array, not a scalar: this test is about ledgers, not 0-d encoding
    x = s.input(np.linspace(-1, 1, 12).reshape(3, 4), owner=0)
    y = s.input(np.linspace(1, 2, 12).reshape(4, 3), owner=s.parties - 1)
    w = s.input(np.arange(4).reshape(1, 4), owner=1, frac_bits=0)
    with s.scope("block"):
        z = (x @ y)[:2]
        v = z[:, :1] * x[:2] + w
        u = (v * v) * f
        m = u.sum(axis=1, keepdims=True) * np.full((2, 1), 0.25)
    s.reveal(m)
    s.reveal(u @ y, to=1)
    s.reveal(x * w)


@pytest.mark.parametrize("parties", PARTIES)
@pytest.mark.parametrize("ring_bits", list(RINGS))
def test_ledger_is_identical_under_count_ideal_and_share(parties, ring_bits):
    ledgers = {}
    for backend in BACKENDS:
        s = make_session(backend, parties, ring_bits)
        _small_computation(s)
        ledgers[backend] = list(s.ledger.messages)
    assert ledgers["share"] and any(m.phase == "offline" for m in ledgers["share"])
    assert any(m.scope.startswith("block") for m in ledgers["share"])
    assert ledgers["count"] == ledgers["ideal"] == ledgers["share"]
