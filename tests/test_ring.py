"""Tests for mpsim.ring.Ring (constants, integers, fixed-point encoding) and the ring arithmetic it relies on.

Every ring result is compared for exact equality with a slow, obviously correct reference computed with
Python integers reduced mod 2^64 (and mod 2^32 for K = 32).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mpsim import kernels
from mpsim.ring import Ring

M64 = 1 << 64
RINGS = [(64, 16), (32, 8)]  # (K, f) pairs used throughout the project
# Words that stress carries, sign bits and the K = 32 boundary.
WORST = [0, 1, 2, 3, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, M64 - 2, M64 - 1]


def py(a) -> list:
    """A uint64 array as nested lists of Python ints (the reference's representation)."""
    return np.asarray(a, dtype=np.uint64).tolist()


def u64(values) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


# ----------------------------------------------------------------------------------------------------------
# construction and constants
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 8, 16, 31, 33, 63, 65, 128])
def test_unsupported_ring_width_raises(bits):
    with pytest.raises(ValueError, match="ring_bits"):
        Ring(bits)


@pytest.mark.parametrize("K", [32, 64])
def test_modulus_and_mask(K):
    ring = Ring(K)
    assert ring.modulus == 1 << K
    assert int(ring.mask) == (1 << K) - 1 and ring.mask.dtype == np.uint64


@pytest.mark.parametrize("K", [32, 64])
@pytest.mark.parametrize(
    "value",
    [0, 1, -1, 7, -7, (1 << 31) - 1, 1 << 31, -(1 << 31), (1 << 32) + 5, (1 << 63), -(1 << 63), M64 - 1, M64,
     M64 + 5, -M64 - 3, 3 * M64 + 12345, 1 << 100, -(1 << 100) + 9, np.int64(-2), np.uint64(M64 - 1)],
)
def test_const_reduces_any_integer(K, value):
    c = Ring(K).const(value)
    assert isinstance(c, np.uint64)
    assert int(c) == int(value) % (1 << K)


@pytest.mark.parametrize("K", [32, 64])
def test_reduce_rejects_non_uint64_and_reduces_in_place(K):
    ring = Ring(K)
    with pytest.raises(TypeError):
        ring.reduce(np.array([1, 2], dtype=np.int64))
    a = u64(WORST)
    out = ring.reduce(a)
    assert out is a
    assert py(a) == [w % (1 << K) for w in WORST]


# ----------------------------------------------------------------------------------------------------------
# integers: from_ints / to_signed
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [32, 64])
def test_from_ints_to_signed_round_trip_at_the_extremes(K):
    ring = Ring(K)
    lo, hi = -(1 << (K - 1)), (1 << (K - 1)) - 1
    values = np.array([lo, lo + 1, -2, -1, 0, 1, 2, hi - 1, hi], dtype=np.int64)
    enc = ring.from_ints(values)
    assert enc.dtype == np.uint64 and enc.shape == values.shape
    assert py(enc) == [int(v) % (1 << K) for v in values]
    back = ring.to_signed(enc)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, values)


@pytest.mark.parametrize("K", [32, 64])
def test_from_ints_random_round_trip_keeps_shape(K):
    rng = np.random.default_rng(3)
    values = rng.integers(-(1 << (K - 1)), (1 << (K - 1)) - 1, size=(3, 4, 5), endpoint=True, dtype=np.int64)
    enc = Ring(K).from_ints(values)
    assert enc.shape == (3, 4, 5)
    np.testing.assert_array_equal(Ring(K).to_signed(enc), values)


def test_from_ints_takes_unsigned_representatives_and_rejects_what_would_wrap():
    ring = Ring(64)
    values = [M64 - 1, -5, 1 << 63, 0]  # beyond int64, still ring representatives
    assert py(ring.from_ints(values)) == [v % M64 for v in values]
    for bad in ([M64 + 3, 1], 1 << 70, -(1 << 63) - 1):
        with pytest.raises(ValueError, match="integers must lie in"):
            ring.from_ints(bad)
    assert py(Ring(32).from_ints(np.array([2**32 - 1], dtype=np.uint64))) == [2**32 - 1]
    with pytest.raises(ValueError, match="integers must lie in"):
        Ring(32).from_ints(np.array([2**32], dtype=np.uint64))


@pytest.mark.parametrize("bad", [1 << 31, (1 << 31) + 1, -(1 << 31) - 1, 1 << 40, -(1 << 62)])
def test_from_ints_out_of_range_for_32_bit_ring_raises(bad):
    ring = Ring(32)
    with pytest.raises(ValueError, match=r"\[-2147483648, 2147483647\]"):
        ring.from_ints(np.array([0, bad], dtype=np.int64))


def test_from_ints_rejects_floats():
    with pytest.raises(TypeError):
        Ring(64).from_ints(np.array([1.5]))


@pytest.mark.parametrize("K", [32, 64])
def test_to_signed_of_every_worst_case_word(K):
    ring = Ring(K)
    words = [w % (1 << K) for w in WORST]
    got = ring.to_signed(u64(words))
    expected = [w - (1 << K) if w >= 1 << (K - 1) else w for w in words]
    assert got.tolist() == expected
    with pytest.raises(TypeError):
        ring.to_signed(np.array([1], dtype=np.int64))


# ----------------------------------------------------------------------------------------------------------
# fixed-point encoding
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("K,f", RINGS)
def test_real_range_is_the_documented_interval(K, f):
    lo, hi = Ring(K).real_range(f)
    # [-2^(K-1-f), 2^(K-1-f) - 2^-f] in exact arithmetic; compare with a tolerance of float rounding only.
    assert lo == -(2.0 ** (K - 1 - f))
    assert math.isclose(hi, 2.0 ** (K - 1 - f) - 2.0**-f, rel_tol=2**-52)


@pytest.mark.parametrize("K,f", RINGS)
def test_encode_decode_at_the_range_edges(K, f):
    """The endpoints real_range returns are representable: they encode without error and decode back exactly.

    lo encodes to -2^(K-1). hi encodes to the top of the ring, 2^(K-1) - 1, up to float64 resolution: for
    K = 64 that integer is not a float64 and the largest float64 below it is 2^63 - 2^10 (spacing 2^(K-54)).
    """
    ring = Ring(K)
    lo, hi = ring.real_range(f)
    enc = ring.encode(np.array([lo, hi]), f)
    assert py(enc)[0] == 1 << (K - 1)
    gap = ((1 << (K - 1)) - 1) - int(ring.to_signed(enc)[1])
    assert 0 <= gap < max(1, 2 ** (K - 54))
    np.testing.assert_array_equal(ring.decode(enc, f), [lo, hi])


def _float_edges(K, f):
    """(largest float that encodes, smallest float above it; smallest float that encodes, largest below it).

    In exact arithmetic x encodes iff -2^(K-1) <= rint(x 2^f) <= 2^(K-1) - 1 (rint: ties to even), i.e. iff
    x lies in [lo - 2^-(f+1), hi + 2^-(f+1)) with both tie points going to the even (in-range) side at the
    bottom and the out-of-range side at the top. The floats nearest those points depend on K: for K = 64
    the grid of float64 near 2^(63-f) is coarser than 2^-f.
    """
    top_out = 2.0 ** (K - 1 - f) - 2.0 ** -(f + 1)  # exact for K = 32; rounds to 2^(63-f) for K = 64
    top_in = np.nextafter(top_out, 0.0)
    bottom_in = -(2.0 ** (K - 1 - f)) - 2.0 ** -(f + 1)  # a tie rounding to -2^(K-1) (even) for K = 32
    bottom_out = np.nextafter(bottom_in, -np.inf)
    return top_in, top_out, bottom_in, bottom_out


@pytest.mark.parametrize("K,f", RINGS)
def test_encode_at_the_float64_edges_of_the_range(K, f):
    ring = Ring(K)
    top_in, top_out, bottom_in, bottom_out = _float_edges(K, f)
    x = np.array([top_in, bottom_in])
    enc = ring.encode(x, f)
    assert ring.to_signed(enc).tolist() == [int(v) for v in np.rint(x * 2.0**f)]
    assert py(enc)[1] == 1 << (K - 1)  # the most negative ring element
    np.testing.assert_array_equal(ring.decode(enc, f), np.rint(x * 2.0**f) / 2.0**f)
    for bad in (top_out, bottom_out):
        with pytest.raises(ValueError, match="outside the representable range"):
            ring.encode(np.array([bad]), f)


@pytest.mark.parametrize("K,f", RINGS)
def test_zero_negative_zero_and_tiny_values_encode_to_zero(K, f):
    ring = Ring(K)
    ulp = 2.0**-f
    # |x| <= 2^-(f+1) rounds to 0 (ties to even: 0.5 ulp -> 0); 1.5 ulp rounds to 2 ulp.
    x = np.array([0.0, -0.0, 1e-300, -1e-300, 5e-324, 0.25 * ulp, -0.25 * ulp, 0.5 * ulp, -0.5 * ulp])
    enc = ring.encode(x, f)
    assert py(enc) == [0] * len(x)
    dec = ring.decode(enc, f)
    assert np.all(dec == 0.0) and not np.any(np.signbit(dec))
    assert py(ring.encode(np.array([1.5 * ulp, -1.5 * ulp]), f)) == [2, (1 << K) - 2]


@pytest.mark.parametrize("K,f", RINGS + [(64, 0), (64, 62), (32, 0), (32, 30)])
def test_encode_decode_is_exact_rounding_onto_the_grid(K, f):
    """decode(encode(x)) == round(x 2^f) / 2^f exactly, so the encoding error is <= 2^-(f+1) per input."""
    ring = Ring(K)
    lo, hi = ring.real_range(f)
    rng = np.random.default_rng(K * 100 + f)
    span = min(hi, 2.0**20)
    x = np.concatenate([
        rng.uniform(-span, span, 500),
        rng.uniform(-1, 1, 200),
        rng.uniform(lo / 2, hi / 2, 100),
        (rng.integers(-1000, 1000, 50) + 0.5) * 2.0**-f,  # exact ties: round half to even
    ])
    dec = ring.decode(ring.encode(x, f), f)
    expected = np.rint(x * 2.0**f) / 2.0**f
    np.testing.assert_array_equal(dec, expected)
    assert np.all(np.abs(dec - x) <= 2.0 ** -(f + 1))


@pytest.mark.parametrize("K,f", RINGS)
def test_encode_keeps_shape_and_is_twos_complement(K, f):
    ring = Ring(K)
    x = np.array([[1.0, -1.0], [0.5, -(2.0**-f)]])
    enc = ring.encode(x, f)
    assert enc.shape == (2, 2) and enc.dtype == np.uint64
    assert py(enc) == [[1 << f, (1 << K) - (1 << f)], [1 << (f - 1), (1 << K) - 1]]


@pytest.mark.parametrize("K,f", RINGS)
def test_encode_of_a_scalar_returns_a_0d_ring_array(K, f):
    ring = Ring(K)
    enc = ring.encode(1.5, f)
    assert isinstance(enc, np.ndarray) and enc.dtype == np.uint64 and enc.shape == ()
    assert int(enc) == 3 << (f - 1)
    assert int(ring.encode(-1.5, f)) == (1 << K) - (3 << (f - 1))


@pytest.mark.parametrize("K,f", RINGS)
def test_nan_and_inf_raise_naming_the_range(K, f):
    ring = Ring(K)
    lo, hi = ring.real_range(f)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError) as err:
            ring.encode(np.array([1.0, bad]), f)
        msg = str(err.value)
        assert "NaN" in msg or "infinity" in msg
        assert str(lo) in msg and str(hi) in msg, f"message does not name the range [{lo}, {hi}]: {msg}"


@pytest.mark.parametrize("K,f", RINGS)
def test_out_of_range_raises_naming_the_range(K, f):
    ring = Ring(K)
    lo, hi = ring.real_range(f)
    _, top_out, _, bottom_out = _float_edges(K, f)
    bad_values = [top_out, bottom_out, 2.0 ** (K - 1 - f), 1e30, -1e30]
    for bad in bad_values:
        with pytest.raises(ValueError) as err:
            ring.encode(np.array([0.0, bad, 1.0]), f)
        msg = str(err.value)
        assert str(lo) in msg and str(hi) in msg, msg
        assert f"{K}-bit" in msg and f"{f} fractional" in msg


@pytest.mark.parametrize("K", [32, 64])
def test_frac_bits_out_of_range_raises(K):
    ring = Ring(K)
    for f in (-1, K - 1, K, 100):
        with pytest.raises(ValueError, match="frac_bits"):
            ring.encode(np.array([0.0]), f)
    # The extreme legal scales work.
    assert py(ring.encode(np.array([1.0]), K - 2)) == [1 << (K - 2)]
    assert py(ring.encode(np.array([3.0]), 0)) == [3]


@pytest.mark.parametrize("K", [32, 64])
def test_session_validates_ring_width_and_frac_bits(K):
    import mpsim

    for f in (-1, K - 1, K, K // 2):  # K // 2: products at scale 2^(2f) would not fit
        with pytest.raises(ValueError, match="frac_bits"):
            mpsim.Session(ring_bits=K, frac_bits=f, backend="count")
    assert mpsim.Session(ring_bits=K, frac_bits=(K - 2) // 2, backend="count").ring == Ring(K)
    assert mpsim.Session(ring_bits=K, backend="count").frac_bits == {64: 16, 32: 8}[K]
    with pytest.raises(ValueError, match="ring_bits"):
        mpsim.Session(ring_bits=K - 16, frac_bits=4, backend="count")


def test_decode_of_integer_scale_is_signed_integer_valued():
    ring = Ring(32)
    enc = u64([0, 5, (1 << 32) - 5, 1 << 31])
    np.testing.assert_array_equal(ring.decode(enc, 0), [0.0, 5.0, -5.0, -(2.0**31)])


# ----------------------------------------------------------------------------------------------------------
# ring arithmetic against Python-int references
# ----------------------------------------------------------------------------------------------------------


def _words(rng, n):
    return rng.integers(0, M64, size=n, dtype=np.uint64, endpoint=False)


def _ref_elementwise(op, xs, ys, mod):
    return [op(int(a), int(b)) % mod for a, b in zip(xs, ys)]


OPS = {
    "add": (kernels.ring_add, lambda a, b: a + b),
    "sub": (kernels.ring_sub, lambda a, b: a - b),
    "mul": (kernels.ring_mul, lambda a, b: a * b),
}


def _pairs():
    """All ordered pairs of worst-case words plus random words (flat uint64 arrays of equal length)."""
    rng = np.random.default_rng(11)
    pairs = list(itertools.product(WORST, WORST))
    x = u64([p[0] for p in pairs] + py(_words(rng, 300)))
    y = u64([p[1] for p in pairs] + py(_words(rng, 300)))
    return x, y


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("K", [32, 64])
def test_elementwise_ring_ops_match_python_ints(name, K):
    kernel, op = OPS[name]
    ring = Ring(K)
    x, y = _pairs()
    if K == 32:  # ring elements of Z_2^32 (the engine reduces every result, so inputs are reduced too)
        x, y = ring.reduce(x.copy()), ring.reduce(y.copy())
    got = ring.reduce(kernel(x, y))
    assert py(got) == _ref_elementwise(op, py(x), py(y), 1 << K)
    # Unreduced uint64 inputs give the same residue mod 2^K: reduction commutes with + - *.
    xr, yr = _pairs()
    assert py(ring.reduce(kernel(xr, yr))) == _ref_elementwise(op, py(xr), py(yr), 1 << K)


@pytest.mark.parametrize("name", sorted(OPS))
def test_elementwise_ring_ops_with_scalars_broadcasting_and_out(name):
    kernel, op = OPS[name]
    x, y = _pairs()
    for scalar in (0, 1, -1, 1 << 63, M64 - 1, M64 + 5, -(1 << 70), np.uint64(M64 - 1), np.int64(-3)):
        assert py(kernel(x, scalar)) == [op(int(a), int(scalar)) % M64 for a in py(x)]
    # Broadcasting (4, 1) with (5,), a non-contiguous operand, and an aliased out.
    rng = np.random.default_rng(5)
    a, b = _words(rng, 4).reshape(4, 1), _words(rng, 10)[::2]
    got = kernel(a, b)
    assert got.shape == (4, 5)
    assert py(got) == [[op(int(p), int(q)) % M64 for q in py(b)] for p in py(a[:, 0])]
    c = x.copy()
    res = kernel(c, y, out=c)
    assert res is c and py(c) == _ref_elementwise(op, py(x), py(y), M64)


def _ref_matmul(a, b, mod):
    """(..., m, k) @ (..., k, n) with numpy batch broadcasting, on Python ints."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.empty(batch + (m, n), dtype=object)
    for idx in np.ndindex(*batch):
        for i in range(m):
            for j in range(n):
                out[idx + (i, j)] = sum(int(a[idx + (i, p)]) * int(b[idx + (p, j)]) for p in range(k)) % mod
    return out.tolist()


MATMUL_SHAPES = [
    ((1, 1), (1, 1)),
    ((2, 3), (3, 4)),
    ((5, 1), (1, 3)),
    ((3, 7), (7, 2)),
    ((2, 2, 3), (2, 3, 4)),
    ((2, 2, 3), (3, 4)),
    ((3, 4), (2, 4, 2)),
    ((2, 1, 3, 2), (3, 2, 2)),
    ((4, 0), (0, 3)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("K", [32, 64])
def test_ring_matmul_matches_python_ints_on_random_words(sa, sb, K):
    rng = np.random.default_rng(hash((sa, sb)) % (1 << 32))
    a = _words(rng, int(np.prod(sa))).reshape(sa)
    b = _words(rng, int(np.prod(sb))).reshape(sb)
    got = kernels.ring_matmul(a, b)
    assert got.dtype == np.uint64 and got.shape == np.matmul(np.ones(sa), np.ones(sb)).shape
    assert py(Ring(K).reduce(got)) == _ref_matmul(a, b, 1 << K)


@pytest.mark.parametrize("word", [0, 1, 1 << 63, M64 - 1, (1 << 32) - 1, 1 << 31])
@pytest.mark.parametrize("K", [32, 64])
def test_ring_matmul_on_worst_case_words(word, K):
    # Constant matrices of one worst-case word (every product and carry at its extreme), and a mixture.
    a = np.full((3, 9), word, dtype=np.uint64)
    b = np.full((9, 4), M64 - 1, dtype=np.uint64)
    assert py(Ring(K).reduce(kernels.ring_matmul(a, b))) == _ref_matmul(a, b, 1 << K)
    mixed = u64(WORST[:9] * 2).reshape(2, 9)
    assert py(Ring(K).reduce(kernels.ring_matmul(mixed, a.T.copy()))) == _ref_matmul(mixed, a.T, 1 << K)


def test_ring_matmul_shape_errors():
    a = np.zeros((2, 3), dtype=np.uint64)
    with pytest.raises(ValueError):
        kernels.ring_matmul(a, np.zeros((4, 2), dtype=np.uint64))
    with pytest.raises(ValueError):
        kernels.ring_matmul(a, np.zeros(3, dtype=np.uint64))
    with pytest.raises(TypeError):
        kernels.ring_matmul(a.astype(np.int64), np.zeros((3, 2), dtype=np.uint64))
