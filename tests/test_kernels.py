"""Tests for mpsim.kernels: every public kernel against an obviously correct slow reference.

References are numpy's own uint64 operations (exact mod 2^64, wrapping) and, where the wrapping itself is
under test, Python integers reduced with ``% 2**64``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mpsim import kernels as K

M64 = 1 << 64
ALL_ONES = np.uint64(M64 - 1)
TOP = np.uint64(1 << 63)


def rnd(rng, *shape):
    return rng.integers(0, M64, size=shape, dtype=np.uint64)


def worst_cases(rng, shape):
    """Inputs that stress carries and limb bounds: all ones, only the top bit, zero, high bits set,
    values just around the balanced-digit boundaries."""
    n = int(np.prod(shape))
    high = rnd(rng, n) | np.uint64(0xFFFF_FFF0_0000_0000)
    edge = np.array([(1 << 21), (1 << 21) - 1, (1 << 43) + (1 << 21), (1 << 63) + (1 << 43) + (1 << 21),
                     M64 - (1 << 21), M64 - (1 << 43)], dtype=np.uint64)
    return [
        np.full(shape, ALL_ONES),
        np.full(shape, TOP),
        np.zeros(shape, np.uint64),
        high.reshape(shape),
        np.resize(edge, n).reshape(shape),
    ]


def py_matmul(a, b):
    """Python-int matmul reduced mod 2^64 (2-D only), the slowest and most obvious reference."""
    A = [[int(v) for v in row] for row in a]
    B = [[int(v) for v in row] for row in b]
    return np.array([[sum(A[i][p] * B[p][j] for p in range(len(B))) % M64 for j in range(len(B[0]))]
                     for i in range(len(A))], dtype=np.uint64)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ---------------------------------------------------------------------------------------------- matmul

SHAPES_2D = [(1, 1, 1), (1, 7, 5), (3, 4, 5), (5, 130, 3), (9, 33, 300), (17, 257, 70), (70, 129, 300)]


@pytest.mark.parametrize("method", [None, "direct", "limbs"])
@pytest.mark.parametrize("mkn", SHAPES_2D)
def test_matmul_random_vs_numpy(rng, method, mkn):
    m, k, n = mkn
    a, b = rnd(rng, m, k), rnd(rng, k, n)
    z = K.ring_matmul(a, b, _method=method)
    assert z.dtype == np.uint64 and z.flags.c_contiguous and z.shape == (m, n)
    np.testing.assert_array_equal(z, a @ b)


@pytest.mark.parametrize("method", ["direct", "limbs"])
def test_matmul_python_int_reference(rng, method):
    a, b = rnd(rng, 4, 9), rnd(rng, 9, 3)
    a[0, :] = ALL_ONES
    b[:, 0] = TOP
    np.testing.assert_array_equal(K.ring_matmul(a, b, _method=method), py_matmul(a, b))


@pytest.mark.parametrize("method", ["direct", "limbs"])
def test_matmul_worst_case(rng, method):
    m, k, n = 6, 2048, 7  # a full-length limb chunk: every partial sum at its 2^53 bound
    for a in worst_cases(rng, (m, k)):
        for b in worst_cases(rng, (k, n)):
            np.testing.assert_array_equal(K.ring_matmul(a, b, _method=method), a @ b)


def test_limb_digits_extreme_bound():
    # x has the most negative balanced digits d0 = d1 = -2^21, d2 = -2^19: x*x terms hit |d_i d_j| = 2^42,
    # and over a full 2048-long chunk the partial sums reach exactly 2^53 (the float64 exactness limit).
    x = (1 << 21) + ((1 << 21) - 1) * (1 << 22) + ((1 << 19) - 1) * (1 << 44)
    y = ((1 << 21) - 1) * (1 + (1 << 22)) + ((1 << 19) - 1) * (1 << 44)  # the most positive digits
    for u, v in [(x, x), (x, y), (y, y), (x, M64 - x)]:
        a = np.full((3, 2048), u, np.uint64)
        b = np.full((2048, 2), v, np.uint64)
        np.testing.assert_array_equal(K.ring_matmul(a, b, _method="limbs"), a @ b)
        assert int(K.ring_matmul(a, b, _method="limbs")[0, 0]) == (2048 * u * v) % M64


def test_matmul_limbs_chunked_inner_dim(rng):
    # inner dim > 2048 forces 3 chunks (2048 + 2048 + 404) through the DGEMM path
    a, b = rnd(rng, 3, 4500), rnd(rng, 4500, 5)
    np.testing.assert_array_equal(K.ring_matmul(a, b, _method="limbs"), a @ b)
    a, b = np.full((3, 4500), ALL_ONES), np.full((4500, 5), ALL_ONES)
    np.testing.assert_array_equal(K.ring_matmul(a, b, _method="limbs"), a @ b)
    # a small private chunk length exercises many chunks and a ragged last one
    a, b = rnd(rng, 5, 103), rnd(rng, 103, 6)
    np.testing.assert_array_equal(K.ring_matmul(a, b, _method="limbs", _kmax=10), a @ b)


def test_matmul_planner():
    for vec in (True, False):  # decode and small shapes always take the direct kernel
        assert K._plan_matmul(1, 4096, 4096, vector_mul64=vec) == "direct"
        assert K._plan_matmul(8, 4096, 4096, vector_mul64=vec) == "direct"
        assert K._plan_matmul(3, 4, 5, vector_mul64=vec) == "direct"
    # large products: direct where the CPU multiplies 64-bit vectors, DGEMM limbs elsewhere
    assert K._plan_matmul(2048, 4096, 4096, vector_mul64=True) == "direct"
    assert K._plan_matmul(2048, 4096, 4096, vector_mul64=False) == "limbs"
    assert K._plan_matmul(1024, 1024, 1024) in ("direct", "limbs")


def test_matmul_through_planner_is_exact(rng, monkeypatch):
    # a shape that crosses into the limb plan when the host has no vector 64-bit multiply
    monkeypatch.setattr(K, "_VECTOR_MUL64", False)
    monkeypatch.setattr(K, "_LIMB_MIN_WORK", 1000)
    assert K._plan_matmul(70, 40, 90) == "limbs"
    a, b = rnd(rng, 2, 70, 40), rnd(rng, 40, 90)
    np.testing.assert_array_equal(K.ring_matmul(a, b), a @ b)
    monkeypatch.setattr(K, "_VECTOR_MUL64", True)
    np.testing.assert_array_equal(K.ring_matmul(a, b), a @ b)


@pytest.mark.parametrize("method", [None, "direct", "limbs"])
@pytest.mark.parametrize(
    "sa, sb",
    [
        ((2, 3, 4), (2, 4, 5)),  # plain batch
        ((4, 3, 10, 20), (3, 20, 7)),  # broadcast over the first dim
        ((4, 1, 6, 8), (1, 3, 8, 2)),  # broadcast both ways
        ((2, 5, 6), (6, 4)),  # shared 2-D right operand
        ((2, 5, 6), (1, 1, 6, 4)),  # shared right operand with extra unit dims
        ((5, 6), (3, 6, 4)),  # shared 2-D left operand
    ],
)
def test_matmul_batched_broadcast(rng, method, sa, sb):
    a, b = rnd(rng, *sa), rnd(rng, *sb)
    z = K.ring_matmul(a, b, _method=method)
    ref = np.matmul(a, b)
    assert z.shape == ref.shape and z.flags.c_contiguous
    np.testing.assert_array_equal(z, ref)


@pytest.mark.parametrize("method", [None, "direct", "limbs"])
def test_matmul_non_contiguous(rng, method):
    a = rnd(rng, 12, 40)[::2, 3:30]  # (6, 27) strided
    b = rnd(rng, 30, 27).T  # (27, 30) F-order
    np.testing.assert_array_equal(K.ring_matmul(a, b, _method=method), a @ b)
    a3 = rnd(rng, 3, 8, 10).transpose(0, 2, 1)  # (3, 10, 8)
    b3 = np.broadcast_to(rnd(rng, 8, 5), (3, 8, 5))  # zero-stride batch
    np.testing.assert_array_equal(K.ring_matmul(a3, b3, _method=method), a3 @ b3)


def test_matmul_inputs_untouched_and_edge_shapes(rng):
    a, b = rnd(rng, 4, 5), rnd(rng, 5, 6)
    a0, b0 = a.copy(), b.copy()
    K.ring_matmul(a, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    assert K.ring_matmul(np.zeros((3, 0), np.uint64), np.zeros((0, 4), np.uint64)).tolist() == [[0] * 4] * 3
    assert K.ring_matmul(np.zeros((0, 2), np.uint64), np.zeros((2, 4), np.uint64)).shape == (0, 4)
    assert K.ring_matmul(np.zeros((0, 3, 2), np.uint64), np.zeros((2, 4), np.uint64)).shape == (0, 3, 4)


def test_matmul_rejects_bad_input(rng):
    with pytest.raises(ValueError):
        K.ring_matmul(rnd(rng, 4), rnd(rng, 4, 3))
    with pytest.raises(ValueError):
        K.ring_matmul(rnd(rng, 3, 4), rnd(rng, 5, 3))
    with pytest.raises(ValueError):
        K.ring_matmul(rnd(rng, 2, 3, 4), rnd(rng, 3, 4, 3))
    with pytest.raises(TypeError):
        K.ring_matmul(rnd(rng, 3, 4).astype(np.int64), rnd(rng, 4, 3))
    with pytest.raises(TypeError):
        K.ring_matmul(rnd(rng, 3, 4), rnd(rng, 4, 3).astype(np.float64))


def test_limb_blocking_paths(rng, monkeypatch):
    # tiny row/column blocks exercise every (k-chunk, column block, row block) combination
    monkeypatch.setattr(K, "_LIMB_MB", 4)
    monkeypatch.setattr(K, "_LIMB_NB", 5)
    a, b = rnd(rng, 11, 37), rnd(rng, 37, 13)
    np.testing.assert_array_equal(K.ring_matmul(a, b, _method="limbs", _kmax=8), a @ b)
    a[:3] = ALL_ONES
    b[:, :2] = TOP
    np.testing.assert_array_equal(K.ring_matmul(a, b, _method="limbs", _kmax=16), a @ b)


def test_direct_tiling_paths(rng):
    # more tasks than columns per tile, ragged row/column/k tiles, k not a multiple of 4
    for m, k, n in [(130, 67, 1030), (1, 3, 2000), (65, 1, 129)]:
        a, b = rnd(rng, m, k), rnd(rng, k, n)
        np.testing.assert_array_equal(K.ring_matmul(a, b, _method="direct"), a @ b)


@pytest.mark.parametrize("form", ["dot", "axpy"])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("mkn", [(1, 1, 1), (1, 9, 7), (3, 5, 2), (7, 33, 9), (18, 2100, 19), (65, 70, 130),
                                 (2, 3, 300), (131, 1030, 3)])
def test_direct_kernel_forms(rng, form, transposed, mkn):
    """Both direct kernels, b given either way round, ragged row pairs / column quads / k blocks."""
    m, k, n = mkn
    a, b = rnd(rng, 2, m, k), rnd(rng, 3, k, n)
    a[0, 0, :] = ALL_ONES
    b[1, :, 0] = TOP
    ia = np.array([0, 1, 1, 0], np.int64)
    ib = np.array([2, 0, 1, 1], np.int64)
    if transposed:
        bt = np.ascontiguousarray(b.transpose(0, 2, 1))
        z = K._direct_matmul(a, ia, ib, 4, m, k, n, bt3=bt, form=form)
    else:
        z = K._direct_matmul(a, ia, ib, 4, m, k, n, b3=b, form=form)
    for t in range(4):
        np.testing.assert_array_equal(z[t], a[ia[t]] @ b[ib[t]])


def test_matmul_transposed_views(rng):
    # b = W.T and batched K.transpose(...) are consumed without a copy by the dot kernel; results exact
    w = rnd(rng, 300, 40)
    x = rnd(rng, 5, 40)
    np.testing.assert_array_equal(K.ring_matmul(x, w.T), x @ w.T)
    kk = rnd(rng, 3, 50, 16)
    q = rnd(rng, 3, 1, 16)
    np.testing.assert_array_equal(K.ring_matmul(q, kk.transpose(0, 2, 1)), q @ kk.transpose(0, 2, 1))
    np.testing.assert_array_equal(K.ring_matmul(q, kk.transpose(0, 2, 1), _method="limbs"),
                                  q @ kk.transpose(0, 2, 1))
    b3, bt3 = K._batch_plan(q, kk.transpose(0, 2, 1))[3:5]
    assert b3 is None and np.shares_memory(bt3, kk)  # b not materialised: bt3 is a view of kk


def test_dot_tiles_give_enough_tasks():
    cases = [(1, 64, 64, 64), (1, 1, 4096, 4096), (1, 4096, 1, 4096), (1, 4, 4, 4), (8, 16, 16, 16)]
    for nbat, m, n, k in cases:
        ti, tj, tk = K._dot_tiles(nbat, m, n, k)
        assert ti >= 1 and tj >= 1 and 1 <= tk <= max(k, 1)
        tasks = nbat * -(-m // ti) * -(-n // tj)
        assert tasks >= min(4 * K.nb.get_num_threads(), nbat * -(-m // 8) * -(-n // 16))


# ---------------------------------------------------------------------------------------------- beaver


def beaver_ref(c, a, b, e, f):
    """Python-int formula, party by party."""
    R = c.shape[0]
    z = np.empty(np.broadcast_shapes(c.shape, a.shape, b.shape, (1,) + e.shape, (1,) + f.shape), np.uint64)
    cb, ab, bb = (np.broadcast_to(v, z.shape) for v in (c, a, b))
    eb, fb = np.broadcast_to(e, z.shape[1:]), np.broadcast_to(f, z.shape[1:])
    for p in range(z.shape[0]):
        for idx in np.ndindex(*z.shape[1:]):
            v = int(cb[p][idx]) + int(eb[idx]) * int(bb[p][idx]) + int(fb[idx]) * int(ab[p][idx])
            if p == 0:
                v += int(eb[idx]) * int(fb[idx])
            z[(p,) + idx] = v % M64
    assert R == z.shape[0]
    return z


@pytest.mark.parametrize("R", [1, 2, 3])
@pytest.mark.parametrize("shape", [(7,), (4, 5), (2, 3, 4), ()])
def test_beaver_combine(rng, R, shape):
    c, a, b = rnd(rng, R, *shape), rnd(rng, R, *shape), rnd(rng, R, *shape)
    e, f = rnd(rng, *shape), rnd(rng, *shape)
    saved = [v.copy() for v in (c, a, b, e, f)]
    z = K.beaver_combine(c, a, b, e, f)
    np.testing.assert_array_equal(z, beaver_ref(c, a, b, e, f))
    for v, w in zip((c, a, b, e, f), saved):
        np.testing.assert_array_equal(v, w)


def test_beaver_combine_worst_case_and_large(rng):
    for R in (1, 2, 3):
        ones = np.full((R, 5), ALL_ONES)
        top = np.full(5, TOP)
        np.testing.assert_array_equal(K.beaver_combine(ones, ones, ones, top, np.full(5, ALL_ONES)),
                                      beaver_ref(ones, ones, ones, top, np.full(5, ALL_ONES)))
    # several parallel blocks and a ragged tail, against numpy's wrapping arithmetic
    R, n = 3, 3 * 4096 + 17
    c, a, b, e, f = rnd(rng, R, n), rnd(rng, R, n), rnd(rng, R, n), rnd(rng, n), rnd(rng, n)
    ref = c + e * b + f * a
    ref[0] += e * f
    np.testing.assert_array_equal(K.beaver_combine(c, a, b, e, f), ref)


def test_beaver_combine_is_multiplication(rng):
    # reconstructing z gives x*y when (a, b, c) is a triple and e, f are the opened differences
    R, n = 3, 50
    x, y = rnd(rng, n), rnd(rng, n)
    A, B = rnd(rng, n), rnd(rng, n)
    C = A * B
    a_sh = rnd(rng, R, n)
    a_sh[-1] = A - a_sh[:-1].sum(axis=0)
    b_sh = rnd(rng, R, n)
    b_sh[-1] = B - b_sh[:-1].sum(axis=0)
    c_sh = rnd(rng, R, n)
    c_sh[-1] = C - c_sh[:-1].sum(axis=0)
    z = K.beaver_combine(c_sh, a_sh, b_sh, x - A, y - B)
    np.testing.assert_array_equal(z.sum(axis=0), x * y)


def test_beaver_combine_fallback_broadcast_and_strided(rng):
    R = 2
    c, a, b = rnd(rng, R, 4, 6), rnd(rng, R, 4, 6), rnd(rng, R, 4, 6)
    e, f = rnd(rng, 4, 6), rnd(rng, 4, 6)
    # non-contiguous inputs
    cs, as_, bs = c[:, :, ::2], a[:, :, ::2], b[:, :, ::2]
    es, fs = e[:, ::2], f[:, ::2]
    np.testing.assert_array_equal(K.beaver_combine(cs, as_, bs, es, fs), beaver_ref(cs, as_, bs, es, fs))
    # broadcast e (public scalar-like row) and a shared a
    e1 = rnd(rng, 1, 6)
    a1 = rnd(rng, 1, 4, 6)
    np.testing.assert_array_equal(K.beaver_combine(c, a1, b, e1, f), beaver_ref(c, a1, b, e1, f))
    with pytest.raises(TypeError):
        K.beaver_combine(c.astype(np.int64), a, b, e, f)


def test_beaver_combine_out_and_aliasing(rng):
    R, n = 3, 9000
    c, a, b, e, f = rnd(rng, R, n), rnd(rng, R, n), rnd(rng, R, n), rnd(rng, n), rnd(rng, n)
    ref = beaver_ref(c[:, :50], a[:, :50], b[:, :50], e[:50], f[:50])
    out = np.empty((R, n), np.uint64)
    assert K.beaver_combine(c, a, b, e, f, out=out) is out
    np.testing.assert_array_equal(out[:, :50], ref)
    full = out.copy()
    for alias in ("c", "a", "b"):
        arrs = {"c": c.copy(), "a": a.copy(), "b": b.copy()}
        r = K.beaver_combine(arrs["c"], arrs["a"], arrs["b"], e, f, out=arrs[alias])
        assert r is arrs[alias]
        np.testing.assert_array_equal(r, full)
    # strided out takes the numpy path
    big = np.zeros((R, 2 * n), np.uint64)
    K.beaver_combine(c, a, b, e, f, out=big[:, ::2])
    np.testing.assert_array_equal(big[:, ::2], full)
    with pytest.raises(ValueError):
        K.beaver_combine(c, a, b, e, f, out=np.empty((R, n + 1), np.uint64))
    with pytest.raises(ValueError):
        K.beaver_combine(c, a, b, rnd(rng, 2, n), f)


def test_beaver_combine_partial_overlap(rng):
    # out and c are C-contiguous views of one buffer, shifted by one element: must match the copy-based
    # result (the fused kernel would read already-overwritten values).
    R, n = 2, 5000
    buf = rnd(rng, R * n + 1)
    a, b, e, f = rnd(rng, R, n), rnd(rng, R, n), rnd(rng, n), rnd(rng, n)
    c_view, out_view = buf[1:].reshape(R, n), buf[:-1].reshape(R, n)
    assert c_view.flags.c_contiguous and out_view.flags.c_contiguous
    ref = K.beaver_combine(c_view.copy(), a, b, e, f)
    got = K.beaver_combine(c_view, a, b, e, f, out=out_view)
    np.testing.assert_array_equal(got, ref)


# ---------------------------------------------------------------------------------------------- add/sub/mul

OPS = [(K.ring_add, lambda u, v: u + v), (K.ring_sub, lambda u, v: u - v), (K.ring_mul, lambda u, v: u * v)]


@pytest.mark.parametrize("fn, pyop", OPS)
def test_elementwise_random_and_worst_case(rng, fn, pyop):
    shape = (3, 17, 1000)  # several parallel blocks and a ragged tail
    x, y = rnd(rng, *shape), rnd(rng, *shape)
    z = fn(x, y)
    np.testing.assert_array_equal(z, pyop(x, y))
    assert z.dtype == np.uint64 and z.shape == shape
    for u in worst_cases(rng, (5, 7)):
        for v in worst_cases(rng, (5, 7)):
            ref = np.array([pyop(int(p), int(q)) % M64 for p, q in zip(u.ravel(), v.ravel())], np.uint64)
            np.testing.assert_array_equal(fn(u, v).ravel(), ref)


@pytest.mark.parametrize("fn, pyop", OPS)
def test_elementwise_scalar(rng, fn, pyop):
    x = rnd(rng, 40000)
    for s in (0, 1, 3, -1, -(1 << 63), (1 << 64) - 1, 1 << 63, np.uint64(12345)):
        ref = np.array([pyop(int(p), int(s) % M64) % M64 for p in x[:100]], np.uint64)
        z = fn(x, s)
        np.testing.assert_array_equal(z[:100], ref)
        np.testing.assert_array_equal(z, pyop(x, np.uint64(int(s) % M64)))
    # 0-d uint64 array acts as a scalar
    np.testing.assert_array_equal(fn(x, np.array(7, np.uint64)), pyop(x, np.uint64(7)))


@pytest.mark.parametrize("fn, pyop", OPS)
def test_elementwise_in_place_aliasing(rng, fn, pyop):
    x, y = rnd(rng, 5, 7000), rnd(rng, 5, 7000)
    x0, y0 = x.copy(), y.copy()
    r = fn(x, y, out=x)
    assert r is x
    np.testing.assert_array_equal(x, pyop(x0, y0))
    np.testing.assert_array_equal(y, y0)
    x = x0.copy()
    r = fn(x, y, out=y)
    assert r is y
    np.testing.assert_array_equal(y, pyop(x0, y0))
    x = x0.copy()
    fn(x, x, out=x)
    np.testing.assert_array_equal(x, pyop(x0, x0))
    x = x0.copy()
    fn(x, 5, out=x)
    np.testing.assert_array_equal(x, pyop(x0, np.uint64(5)))


@pytest.mark.parametrize("fn, pyop", OPS)
def test_elementwise_broadcast_and_strided(rng, fn, pyop):
    x, y = rnd(rng, 4, 6), rnd(rng, 6)
    np.testing.assert_array_equal(fn(x, y), pyop(x, y))
    np.testing.assert_array_equal(fn(y, x), pyop(y, x))
    xs, ys = rnd(rng, 8, 12)[::2, 1::2], rnd(rng, 12, 4).T[:, :6]
    np.testing.assert_array_equal(fn(xs, ys), pyop(xs, ys))
    out = np.zeros((8, 12), np.uint64)[::2, ::2]
    r = fn(xs, ys, out=out)
    assert r is out
    np.testing.assert_array_equal(out, pyop(xs, ys))
    x0 = x.copy()
    fn(x, y, out=x)  # in place with broadcasting y
    np.testing.assert_array_equal(x, pyop(x0, y))


def test_elementwise_rejects_bad_input(rng):
    x = rnd(rng, 4)
    with pytest.raises(TypeError):
        K.ring_add(x, x.astype(np.int64))
    with pytest.raises(TypeError):
        K.ring_add(x.astype(np.int64), x)
    with pytest.raises(TypeError):
        K.ring_mul(x, 1.5)
    with pytest.raises(ValueError):
        K.ring_add(x, x, out=np.empty(5, np.uint64))
    with pytest.raises(TypeError):
        K.ring_add(x, x, out=np.empty(4, np.int64))


def test_elementwise_empty():
    e = np.zeros((0, 3), np.uint64)
    assert K.ring_add(e, e).shape == (0, 3)
    assert K.ring_mul(e, 3).shape == (0, 3)


@pytest.mark.parametrize("fn, pyop", OPS)
def test_elementwise_partial_overlap_matches_numpy(rng, fn, pyop):
    base = rnd(rng, 20001)
    x0 = base.copy()
    fn(base[1:], base[:-1], out=base[:-1])  # out overlaps x shifted by one element
    ref = x0.copy()
    ref[:-1] = pyop(x0[1:], x0[:-1])
    np.testing.assert_array_equal(base, ref)
    base = x0.copy()
    fn(base[:-1], 3, out=base[1:])
    ref = x0.copy()
    ref[1:] = pyop(x0[:-1], np.uint64(3))
    np.testing.assert_array_equal(base, ref)


# ---------------------------------------------------------------------------------------------- PRG


def test_prg_deterministic_and_counter_offsets():
    k = 0xDEADBEEF
    a = K.random_uint64((10,), k, 5)
    np.testing.assert_array_equal(a, K.random_uint64((10,), k, 5))
    np.testing.assert_array_equal(a, K.random_uint64((15,), k, 0)[5:])
    big = K.random_uint64((3, 50000), k, 123)  # crosses parallel block boundaries
    assert big.shape == (3, 50000) and big.dtype == np.uint64
    np.testing.assert_array_equal(big.ravel()[70000:], K.random_uint64((80000,), k, 123 + 70000))
    # counter near the top of the range wraps mod 2^64
    top = K.random_uint64((4,), k, M64 - 2)
    np.testing.assert_array_equal(top[2:], K.random_uint64((2,), k, 0))


def prg_reference(n, key, counter):
    """The documented formula in Python ints: mix(mix((counter + i) * G + k1) ^ k2) mod 2^64."""
    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % M64
        return z ^ (z >> 31)
    G = 0x9E3779B97F4A7C15
    k1, k2 = mix(key ^ 0x5851F42D4C957F2D), mix((key + G) % M64)
    return np.array([mix(mix(((counter + i) * G + k1) % M64) ^ k2) for i in range(n)], np.uint64)


def test_prg_matches_reference_formula():
    for key, counter in [(0, 0), (1, 0), (M64 - 1, M64 - 3), (0xDEADBEEF, 123456789)]:
        np.testing.assert_array_equal(K.random_uint64((6,), key, counter), prg_reference(6, key, counter))


def test_prg_streams_differ():
    a = K.random_uint64((1000,), 1, 0)
    for other in (K.random_uint64((1000,), 2, 0), K.random_uint64((1000,), 0, 0),
                  K.random_uint64((1000,), 1, 1000), K.random_uint64((1000,), 1 << 63, 0)):
        assert np.count_nonzero(a == other) <= 1
    # neighbouring keys are not shifted copies of each other
    b = K.random_uint64((2000,), 2, 0)
    assert len(np.intersect1d(a, b)) == 0
    assert len(np.unique(K.random_uint64((100000,), 7, 0))) == 100000


def test_prg_bit_statistics():
    n = 1 << 18
    x = K.random_uint64((n,), 42, 0)
    bits = ((x[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.float64)
    means = bits.mean(axis=0)
    # each bit is Bernoulli(1/2): the mean of n draws has sigma = 1/(2 sqrt n); 6 sigma over 64 bits
    # has false-alarm probability ~1e-7.
    bound = 6 * 0.5 / math.sqrt(n)
    assert np.all(np.abs(means - 0.5) < bound), np.abs(means - 0.5).max()
    # consecutive outputs are uncorrelated bitwise: P(bit equal) = 1/2
    same = (((x[1:] ^ x[:-1])[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
    assert np.all(np.abs(same - 0.5) < 6 * 0.5 / math.sqrt(n - 1))
    # sequential counters and keys do not leak: key 0 counter 0 is not zero and looks random too
    y = K.random_uint64((n,), 0, 0)
    assert np.all(np.abs(((y[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(0) - 0.5)
                  < bound)


def test_prg_validates_arguments():
    with pytest.raises(ValueError):
        K.random_uint64((3,), -1, 0)
    with pytest.raises(ValueError):
        K.random_uint64((3,), 0, M64)
    assert K.random_uint64((0,), 1, 2).shape == (0,)
    assert K.random_uint64((), 1, 2).shape == ()


def test_prg_out(rng):
    buf = np.empty((3, 70000), np.uint64)
    r = K.random_uint64((3, 70000), 9, 11, out=buf)
    assert r is buf
    np.testing.assert_array_equal(buf, K.random_uint64((3, 70000), 9, 11))
    with pytest.raises(ValueError):
        K.random_uint64((3, 7), 9, 11, out=np.empty((3, 8), np.uint64))
    with pytest.raises(ValueError):
        K.random_uint64((3, 4), 9, 11, out=np.empty((3, 8), np.uint64)[:, ::2])
