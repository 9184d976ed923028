"""Compiled ring arithmetic kernels: the only place mpsim does heavy number crunching on Z_{2^64}.

Every share in the simulator is a numpy ``uint64`` array and every operation on it is exact arithmetic
mod 2^64.  This module provides the few primitives the engine needs to do that arithmetic fast --
ring matrix products, the fused Beaver-triple combine, elementwise add/sub/mul and a counter-mode
pseudo-random generator -- as thin validating Python wrappers (public functions) around private numba
kernels (``_name``, ``cache=True``, never ``fastmath``) that write into preallocated outputs.  The
wrappers own all shape, dtype and layout decisions and fall back to plain numpy (slow but obviously
correct) whenever an input does not fit a kernel; they never change a result, only its speed.  The
elementwise, Beaver, PRG and transpose kernels have serial twins for arrays below a crossover measured on
this machine (``serial_below``): a parallel region that a small array cannot pay back costs microseconds on a
quiet machine and a millisecond beside a busy process.  Nothing here knows about parties, protocols or
fixed point: it is arithmetic only.
"""

from __future__ import annotations

import functools
import math
import os
import time
import types

import numpy as np
import numba as nb
from numba import prange

__all__ = [
    "ring_matmul",
    "beaver_combine",
    "ring_add",
    "ring_sub",
    "ring_mul",
    "random_uint64",
]

_MASK64 = (1 << 64) - 1

# Process settings (they must be in the environment before numba / numpy start their thread pools; this
# module cannot set them): GOMP_SPINCOUNT=10000 so numba's idle OpenMP workers stop spinning quickly, and
# OPENBLAS_THREAD_TIMEOUT=4 so OpenBLAS's idle workers do too -- by default they busy-wait ~0.1 s after
# every BLAS call, and a numba kernel started in that window runs at half speed on 2 cores.

# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------


def _serial_twin(kernel):
    """The kernel compiled without threads (``prange`` runs as ``range``), under its own cache entry: a
    parallel region costs every call a wake-up of the thread pool, which a small array cannot pay back, and
    on a machine where another process is busy that wake-up takes a millisecond."""
    py = kernel.py_func
    twin = types.FunctionType(py.__code__, py.__globals__, py.__name__ + "_serial", py.__defaults__,
                              py.__closure__)
    twin.__qualname__ = py.__qualname__ + "_serial"
    twin.__doc__ = py.__doc__
    return nb.njit(cache=True)(twin)


SERIAL_ENV = "MPSIM_SERIAL_BELOW"  # elements: below it every elementwise kernel runs serially (overrides)
_PROBE_SIZES = tuple(1 << e for e in range(8, 21, 2))  # 256 .. 1M elements, by factors of 4


def _measured_crossover(run_parallel, run_serial, sizes=_PROBE_SIZES, repeats: int = 7) -> int:
    """The smallest probe size from which the parallel kernel is at least 10% faster than the serial one (best
    of ``repeats`` each), by the rule of ``_crossover``."""
    faster = []
    for n in sizes:
        best = []
        for run in (run_parallel, run_serial):
            run(n)  # warm: compiled or loaded, pages touched
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                run(n)
                times.append(time.perf_counter() - t0)
            best.append(min(times))
        faster.append(best[0] < 0.9 * best[1])
    return _crossover(sizes, faster)


def _crossover(sizes, faster) -> int:
    """The first size at which the parallel kernel won (``faster``) and won again at the next probe (the
    largest probe alone suffices): two in a row, so one noisy probe neither makes nor breaks the choice;
    twice the largest when that never happens."""
    for i, n in enumerate(sizes):
        if faster[i] and (i + 1 == len(sizes) or faster[i + 1]):
            return n
    return sizes[-1] * 2


@functools.lru_cache(maxsize=None)
def serial_below(family: str) -> int:
    """Element count below which the ``family``'s kernel ("elementwise", "beaver", "prg", "transpose") runs
    serially: measured on this machine, once per process, as it runs (``_measured_crossover``), or
    ``MPSIM_SERIAL_BELOW`` from the environment for every family. With one numba thread: always serial."""
    if os.environ.get(SERIAL_ENV):
        return int(os.environ[SERIAL_ENV])
    if nb.config.NUMBA_NUM_THREADS <= 1:
        return 1 << 62
    return _measured_crossover(*_PROBES[family]())


def _check_u64(name: str, x) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint64 array, got {type(x).__name__}")
    if x.dtype != np.uint64:
        raise TypeError(f"{name} must have dtype uint64, got {x.dtype}")
    return x


def _as_u64_operand(name: str, y):
    """Array operand (uint64 only) or scalar operand (Python int / numpy integer, reduced mod 2^64)."""
    if isinstance(y, np.ndarray):
        if y.ndim == 0:
            return _check_u64(name, y)[()]  # np.uint64 scalar
        return _check_u64(name, y)
    if isinstance(y, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer or uint64 array, got bool")
    if isinstance(y, (int, np.integer)):
        return np.uint64(int(y) % (1 << 64))
    raise TypeError(f"{name} must be an integer or uint64 array, got {type(y).__name__}")


# ---------------------------------------------------------------------------------------------------
# ring matmul: numba tiled uint64 kernel
# ---------------------------------------------------------------------------------------------------

# Direct kernel tiling: a task is (batch, row tile of _TI rows, column tile of tj columns); within a task
# the inner dimension is walked in blocks of _TK so the B block (_TK x tj words, 256 KiB) stays in L2
# while each output row segment (tj words, 8 KiB) stays in L1.  tj shrinks for narrow problems so both
# threads get work.
_TI = 64
_TJ = 1024
_TK = 32


@nb.njit(parallel=True, cache=True)
def _matmul_u64(a, b, a_idx, b_idx, out, ti, tj, tk):  # pragma: no cover - compiled
    """out[t] = a[a_idx[t]] @ b[b_idx[t]] mod 2^64.  a (Ba, m, k), b (Bb, k, n), out (T, m, n), C order.

    Row-axpy form: out[i, j-tile] += sum_p a[i, p] * b[p, j-tile], four p at a time (four independent
    load streams of b, a quarter of the output loads/stores), vectorised over j by LLVM.
    """
    nbat = out.shape[0]
    m = out.shape[1]
    n = out.shape[2]
    k = a.shape[2]
    n_it = (m + ti - 1) // ti
    n_jt = (n + tj - 1) // tj
    for task in prange(nbat * n_it * n_jt):
        t = task // (n_it * n_jt)
        r = task - t * (n_it * n_jt)
        it = r // n_jt
        jt = r - it * n_jt
        i0 = it * ti
        i1 = min(i0 + ti, m)
        j0 = jt * tj
        j1 = min(j0 + tj, n)
        w = j1 - j0
        A = a[a_idx[t]]
        B = b[b_idx[t]]
        C = out[t]
        for i in range(i0, i1):
            for j in range(j0, j1):
                C[i, j] = 0
        for p0 in range(0, k, tk):
            p1 = min(p0 + tk, k)
            for i in range(i0, i1):
                c = C[i, j0:j1]
                p = p0
                while p + 4 <= p1:
                    a0 = A[i, p]
                    a1 = A[i, p + 1]
                    a2 = A[i, p + 2]
                    a3 = A[i, p + 3]
                    b0 = B[p, j0:j1]
                    b1 = B[p + 1, j0:j1]
                    b2 = B[p + 2, j0:j1]
                    b3 = B[p + 3, j0:j1]
                    for j in range(w):
                        c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
                    p += 4
                while p < p1:
                    a0 = A[i, p]
                    b0 = B[p, j0:j1]
                    for j in range(w):
                        c[j] += a0 * b0[j]
                    p += 1


@nb.njit(parallel=True, cache=True)
def _matmul_u64_bt(a, bt, a_idx, b_idx, out, ti, tj, tk):  # pragma: no cover - compiled
    """out[t] = a[a_idx[t]] @ bt[b_idx[t]].T mod 2^64.  a (Ba, m, k), bt (Bb, n, k), out (T, m, n).

    Dot-product form for a right operand stored transposed (b = W.T, q @ K.T) or very narrow (n < 8,
    where transposing b is free): both operands are read along k, 2 rows x 4 columns of out at a time
    as eight vectorised integer reductions over a k block of tk.
    """
    nbat = out.shape[0]
    m = out.shape[1]
    n = out.shape[2]
    k = a.shape[2]
    n_it = (m + ti - 1) // ti
    n_jt = (n + tj - 1) // tj
    zero = np.uint64(0)
    for task in prange(nbat * n_it * n_jt):
        t = task // (n_it * n_jt)
        r = task - t * (n_it * n_jt)
        it = r // n_jt
        jt = r - it * n_jt
        i0 = it * ti
        i1 = min(i0 + ti, m)
        j0 = jt * tj
        j1 = min(j0 + tj, n)
        A = a[a_idx[t]]
        BT = bt[b_idx[t]]
        C = out[t]
        for i in range(i0, i1):
            for j in range(j0, j1):
                C[i, j] = 0
        for p0 in range(0, k, tk):
            p1 = min(p0 + tk, k)
            kk = p1 - p0
            i = i0
            while i + 2 <= i1:
                x0 = A[i, p0:p1]
                x1 = A[i + 1, p0:p1]
                j = j0
                while j + 4 <= j1:
                    y0 = BT[j, p0:p1]
                    y1 = BT[j + 1, p0:p1]
                    y2 = BT[j + 2, p0:p1]
                    y3 = BT[j + 3, p0:p1]
                    s00 = zero
                    s01 = zero
                    s02 = zero
                    s03 = zero
                    s10 = zero
                    s11 = zero
                    s12 = zero
                    s13 = zero
                    for p in range(kk):
                        u0 = x0[p]
                        u1 = x1[p]
                        v0 = y0[p]
                        v1 = y1[p]
                        v2 = y2[p]
                        v3 = y3[p]
                        s00 += u0 * v0
                        s01 += u0 * v1
                        s02 += u0 * v2
                        s03 += u0 * v3
                        s10 += u1 * v0
                        s11 += u1 * v1
                        s12 += u1 * v2
                        s13 += u1 * v3
                    C[i, j] += s00
                    C[i, j + 1] += s01
                    C[i, j + 2] += s02
                    C[i, j + 3] += s03
                    C[i + 1, j] += s10
                    C[i + 1, j + 1] += s11
                    C[i + 1, j + 2] += s12
                    C[i + 1, j + 3] += s13
                    j += 4
                while j < j1:
                    y0 = BT[j, p0:p1]
                    s00 = zero
                    s10 = zero
                    for p in range(kk):
                        s00 += x0[p] * y0[p]
                        s10 += x1[p] * y0[p]
                    C[i, j] += s00
                    C[i + 1, j] += s10
                    j += 1
                i += 2
            if i < i1:
                x0 = A[i, p0:p1]
                j = j0
                while j + 4 <= j1:
                    y0 = BT[j, p0:p1]
                    y1 = BT[j + 1, p0:p1]
                    y2 = BT[j + 2, p0:p1]
                    y3 = BT[j + 3, p0:p1]
                    s00 = zero
                    s01 = zero
                    s02 = zero
                    s03 = zero
                    for p in range(kk):
                        u0 = x0[p]
                        s00 += u0 * y0[p]
                        s01 += u0 * y1[p]
                        s02 += u0 * y2[p]
                        s03 += u0 * y3[p]
                    C[i, j] += s00
                    C[i, j + 1] += s01
                    C[i, j + 2] += s02
                    C[i, j + 3] += s03
                    j += 4
                while j < j1:
                    y0 = BT[j, p0:p1]
                    s00 = zero
                    for p in range(kk):
                        s00 += x0[p] * y0[p]
                    C[i, j] += s00
                    j += 1


@nb.njit(parallel=True, cache=True)
def _transpose(x, out):  # pragma: no cover - compiled
    """out[t] = x[t].T for C-contiguous 3-D x (T, r, c) and out (T, c, r); 32 x 32 blocks, parallel."""
    nt = x.shape[0]
    r = x.shape[1]
    c = x.shape[2]
    blk = 32
    nbr = (r + blk - 1) // blk
    nbc = (c + blk - 1) // blk
    for task in prange(nt * nbr * nbc):
        t = task // (nbr * nbc)
        q = task - t * (nbr * nbc)
        r0 = (q // nbc) * blk
        c0 = (q % nbc) * blk
        X = x[t]
        O = out[t]
        for j in range(c0, min(c0 + blk, c)):
            for i in range(r0, min(r0 + blk, r)):
                O[j, i] = X[i, j]


def _transpose_any(x, out) -> None:
    """``_transpose``, serially for a small array (``serial_below("transpose")``)."""
    kernel = _transpose if x.size >= serial_below("transpose") else _SERIAL[_transpose]
    kernel(x, out)


def _direct_tiles(nbat: int, m: int, n: int) -> tuple[int, int, int]:
    """Tile sizes for _matmul_u64: narrow the column tile (to 256), then the row tile (to 8), then the
    column tile again (to 64) until there are >= 4 tasks per thread."""
    want = 4 * nb.get_num_threads()
    ti, tj = _TI, _TJ

    def tasks():
        return nbat * -(-m // ti) * -(-n // tj)

    while tj > 256 and tasks() < want:
        tj //= 2
    while ti > 8 and tasks() < want:
        ti //= 2
    while tj > 64 and tasks() < want:
        tj //= 2
    return ti, tj, _TK


def _dot_tiles(nbat: int, m: int, n: int, k: int) -> tuple[int, int, int]:
    """Tile sizes for _matmul_u64_bt.  Thin problems (m or n <= 16) stream whole rows (no k blocking);
    otherwise k is blocked by 1024 so a 64-row tile of a (512 KiB) stays in L2 across the columns.
    Tiles shrink until there are >= 4 tasks per thread."""
    want = 4 * nb.get_num_threads()
    tk = k if min(m, n) <= 16 else min(k, 1024)
    ti, tj = 64, 64
    while nbat * -(-m // ti) * -(-n // tj) < want and (ti > 8 or tj > 16):
        if ti > 8 and (ti >= tj or tj <= 16):
            ti //= 2
        else:
            tj //= 2
    return ti, tj, max(tk, 1)


# Direct-kernel choice: the dot form (_matmul_u64_bt) is 5-15% faster than the axpy form once b is
# stored transposed, and 3-5x faster for narrow n.  b is used as stored when it is a transposed view;
# otherwise it is transposed (one k x n copy, ~1.5 ns/element when it spills the caches) when that copy
# is small next to the product -- narrow n, m >= 512 rows sharing it, or m >= 64 and a cache-resident b
# (k*n <= 2^21 words).  Other row-major products (decode: 1..16 rows against a weight matrix) use the
# axpy form, which reads b once in its own layout.  Measured axpy vs transpose+dot, GMAC/s:
# 64x4096x4096 13.8 vs 10.5, 256x4096^2 14.6 vs 14.0, 512x4096^2 13.0 vs 14.8, 128x768^2 13.2 vs 14.6.
_BT_MAX_N = 16
_BT_MIN_M = 512
_BT_MIN_M_SMALL_B = 64
_BT_SMALL_B = 1 << 21


def _direct_matmul(a3, ia, ib, nbat, m, k, n, b3=None, bt3=None, form=None) -> np.ndarray:
    """(nbat, m, n) products by a direct kernel; b given as b3 (Bb, k, n) or transposed as bt3 (Bb, n, k).
    ``form`` ('dot' | 'axpy') overrides the choice (tests)."""
    if form is None:
        transpose_pays = m >= _BT_MIN_M or (m >= _BT_MIN_M_SMALL_B and k * n <= _BT_SMALL_B)
        form = "dot" if (bt3 is not None or n <= _BT_MAX_N or transpose_pays) else "axpy"
    out = np.empty((nbat, m, n), dtype=np.uint64)
    if form == "dot":
        if bt3 is None:
            bt3 = np.empty((b3.shape[0], n, k), dtype=np.uint64)
            _transpose_any(b3, bt3)
        _matmul_u64_bt(a3, bt3, ia, ib, out, *_dot_tiles(nbat, m, n, k))
    else:
        if b3 is None:
            b3 = np.empty((bt3.shape[0], k, n), dtype=np.uint64)
            _transpose_any(bt3, b3)
        _matmul_u64(a3, b3, ia, ib, out, *_direct_tiles(nbat, m, n))
    return out


# ---------------------------------------------------------------------------------------------------
# ring matmul: float64 DGEMM with balanced signed-digit limbs
# ---------------------------------------------------------------------------------------------------

# x = d0 + 2^22 d1 + 2^44 d2 (mod 2^64) with d0, d1 in [-2^21, 2^21) and d2 in [-2^19, 2^19).
# |d_i d_j| <= 2^42 for every pair, so a dot product of length kc has |sum| <= kc 2^42 <= 2^53 for
# kc <= 2048: every partial sum DGEMM forms is an integer of magnitude <= 2^53, hence exact in float64
# whatever the summation order (FMA or not).  Pairs whose weight 2^(s_i + s_j) >= 2^64 vanish mod 2^64,
# leaving (0,0) [2^0], (0,1), (1,0) [2^22], (0,2), (1,1), (2,0) [2^44]: 6 products.
_LIMB_KMAX = 2048


@nb.njit(parallel=True, cache=True)
def _split3(x, r0, r1, c0, c1, out):  # pragma: no cover - compiled
    """Balanced 22/22/20-bit signed digits of x[r0:r1, c0:c1] into out[0..2] (float64, exact)."""
    nr = r1 - r0
    nc = c1 - c0
    m22 = np.uint64(0x3FFFFF)
    m20 = np.uint64(0xFFFFF)
    h22 = np.uint64(1 << 21)
    h20 = np.uint64(1 << 19)
    s22 = np.uint64(22)
    one = np.uint64(1)
    for ii in prange(nr):
        row = x[r0 + ii]
        o0 = out[0, ii]
        o1 = out[1, ii]
        o2 = out[2, ii]
        for jj in range(nc):
            v = row[c0 + jj]
            d = v & m22
            v = v >> s22
            if d >= h22:
                o0[jj] = np.float64(np.int64(d)) - 4194304.0
                v += one
            else:
                o0[jj] = np.float64(np.int64(d))
            d = v & m22
            v = v >> s22
            if d >= h22:
                o1[jj] = np.float64(np.int64(d)) - 4194304.0
                v += one
            else:
                o1[jj] = np.float64(np.int64(d))
            d = v & m20
            if d >= h20:
                o2[jj] = np.float64(np.int64(d)) - 1048576.0
            else:
                o2[jj] = np.float64(np.int64(d))


@nb.njit(parallel=True, cache=True)
def _accum_limbs(q0, q1, q2, out, r0, c0, first):  # pragma: no cover - compiled
    """out[r0:r0+mb, c0:c0+nb] (+)= the limb products, reduced mod 2^64.

    q0 = [A0;A1;A2] @ B0 (3mb, nb), q1 = [A0;A1] @ B1 (2mb, nb), q2 = A0 @ B2 (mb, nb), row-stacked by
    digit; every entry is an integer with |v| <= 2^53, so float64 -> int64 is exact, and int64 -> uint64
    is the residue mod 2^64.
    """
    mb = q2.shape[0]
    nb_ = q2.shape[1]
    s22 = np.uint64(22)
    s44 = np.uint64(44)
    for i in prange(mb):
        o = out[r0 + i]
        r00 = q0[i]
        r10 = q0[mb + i]
        r20 = q0[2 * mb + i]
        r01 = q1[i]
        r11 = q1[mb + i]
        r02 = q2[i]
        for j in range(nb_):
            w0 = np.uint64(np.int64(r00[j]))
            w1 = np.uint64(np.int64(r10[j])) + np.uint64(np.int64(r01[j]))
            w2 = np.uint64(np.int64(r20[j])) + np.uint64(np.int64(r11[j])) + np.uint64(np.int64(r02[j]))
            v = w0 + (w1 << s22) + (w2 << s44)
            if first:
                o[c0 + j] = v
            else:
                o[c0 + j] += v


# Output blocking of the limb plan: the float64 work buffers per call are the B digits of one k-chunk
# and column block (3 x 2048 x _LIMB_NB), the A digits of one row block (3 x _LIMB_MB x 2048) and the six
# products (6 x _LIMB_MB x _LIMB_NB): ~250 MB at most, so first-touch page faults stay ~2% of a large
# product; the A digits are recomputed once per column block (n / _LIMB_NB times, cheap).
_LIMB_MB = 1024
_LIMB_NB = 2048


def _matmul_limbs_2d(a: np.ndarray, b: np.ndarray, out: np.ndarray, kmax: int = _LIMB_KMAX) -> None:
    """out = a @ b mod 2^64 via float64 DGEMMs.  a (m, k), b (k, n), out (m, n): C-contiguous uint64."""
    m, k = a.shape
    n = b.shape[1]
    if k == 0:
        out[...] = 0
        return
    kc = min(k, max(1, min(int(kmax), _LIMB_KMAX)))
    mb = min(m, _LIMB_MB)
    nb_ = min(n, _LIMB_NB)
    db_buf = np.empty(3 * kc * nb_, dtype=np.float64)
    da_buf = np.empty(3 * mb * kc, dtype=np.float64)
    q_buf = np.empty(6 * mb * nb_, dtype=np.float64)
    for p0 in range(0, k, kc):
        p1 = min(p0 + kc, k)
        w = p1 - p0
        for c0 in range(0, n, nb_):
            c1 = min(c0 + nb_, n)
            wn = c1 - c0
            dB = db_buf[: 3 * w * wn].reshape(3, w, wn)
            _split3(b, p0, p1, c0, c1, dB)
            for r0 in range(0, m, mb):
                r1 = min(r0 + mb, m)
                h = r1 - r0
                dA = da_buf[: 3 * h * w].reshape(3, h, w)
                _split3(a, r0, r1, p0, p1, dA)
                A = dA.reshape(3 * h, w)
                q0 = q_buf[: 3 * h * wn].reshape(3 * h, wn)
                q1 = q_buf[3 * h * wn: 5 * h * wn].reshape(2 * h, wn)
                q2 = q_buf[5 * h * wn: 6 * h * wn].reshape(h, wn)
                np.matmul(A, dB[0], out=q0)
                np.matmul(A[: 2 * h], dB[1], out=q1)
                np.matmul(A[:h], dB[2], out=q2)
                _accum_limbs(q0, q1, q2, out, r0, c0, p0 == 0)


# ---------------------------------------------------------------------------------------------------
# ring matmul: planner and public wrapper
# ---------------------------------------------------------------------------------------------------

# Crossover, measured on the project machine (2 vCPU Sapphire Rapids, AVX-512DQ; OpenBLAS DGEMM
# 150-190 GFLOP/s), interleaved runs, GMAC/s:
#
#   shape            direct   limbs   DGEMM/12
#   1x4096x4096      3-4      0.3     0.6        (decode: limbs pay 3 float copies of B per use)
#   8x4096x4096      9-10     2.1     2.2
#   512x768x768      15       10      11
#   1024^3           14.7     11.6    12.5
#   2048x4096x4096   14.2     12.4    14.6
#   4096^3           14.0     12.9    13.6
#
# The direct kernel runs at the vpmullq throughput limit (~2.5 MAC/cycle/core with the 256-bit vectors
# LLVM uses here), which on this machine is at or above DGEMM/12, so it wins at every shape measured:
# there is no crossover.  Without a vectorised 64-bit multiply (no AVX-512DQ: LLVM emulates it with
# three 32-bit multiplies) the direct kernel is several times slower while DGEMM is not, so on such
# hosts large products (min(m, n) >= _LIMB_MIN_MN and m*k*n >= _LIMB_MIN_WORK) go to the limb plan.
_LIMB_MIN_MN = 64
_LIMB_MIN_WORK = 1 << 27  # m * k * n; below this the limb plan's splitting overhead dominates


def _host_has_vector_mul64() -> bool:
    """True when numba compiles for a CPU with a vector 64-bit multiply (AVX-512DQ vpmullq)."""
    feats = nb.config.CPU_FEATURES
    if not feats:
        import llvmlite.binding as llb

        feats = llb.get_host_cpu_features().flatten()
    return "+avx512dq" in feats.split(",")


_VECTOR_MUL64 = _host_has_vector_mul64()


def _plan_matmul(m: int, k: int, n: int, batch: int = 1, vector_mul64: bool | None = None) -> str:
    """'direct' (numba uint64 kernel) or 'limbs' (float64 DGEMM limb split) for ``batch`` (m,k)@(k,n)
    products; see the measured crossover table above.  ``vector_mul64`` overrides host detection."""
    if vector_mul64 is None:
        vector_mul64 = _VECTOR_MUL64
    if vector_mul64 or min(m, n) < _LIMB_MIN_MN or m * k * n < _LIMB_MIN_WORK:
        return "direct"
    return "limbs"


def _batch_plan(a: np.ndarray, b: np.ndarray):
    """Broadcast the leading dims of a (..., m, k) and b (..., k, n) without copying operands.

    Returns (nbat, a3, ia, b3, bt3, ib): a3 is a as a C-contiguous (Ba, m, k) stack, ia/ib map output
    batch t to a3[ia[t]] and b's matrix ib[t]; b comes back either as b3 (Bb, k, n) C-contiguous with
    bt3 = None, or -- when b is stored transposed (b = W.T) -- as bt3 (Bb, n, k) C-contiguous, a view,
    with b3 = None.
    """
    bs = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    nbat = int(math.prod(bs)) if bs else 1
    a3 = np.ascontiguousarray(a.reshape((-1,) + a.shape[-2:]))
    bv = b.reshape((-1,) + b.shape[-2:])
    bt3 = np.swapaxes(bv, 1, 2)
    if bt3.flags.c_contiguous and not bv.flags.c_contiguous:
        b3 = None
    else:
        b3, bt3 = np.ascontiguousarray(bv), None
    ia = np.broadcast_to(np.arange(a3.shape[0], dtype=np.int64).reshape(a.shape[:-2]), bs).ravel()
    ib = np.broadcast_to(np.arange(bv.shape[0], dtype=np.int64).reshape(b.shape[:-2]), bs).ravel()
    # fresh writeable copies: a read-only index array would be a different numba type (another compile)
    return nbat, a3, np.array(ia, dtype=np.int64), b3, bt3, np.array(ib, dtype=np.int64)


def ring_matmul(a: np.ndarray, b: np.ndarray, *, _method: str | None = None,
                _kmax: int = _LIMB_KMAX) -> np.ndarray:
    """Matrix product ``a @ b`` mod 2^64 of uint64 arrays, with numpy matmul semantics for >= 2-D operands.

    ``a`` has shape (..., m, k) and ``b`` (..., k, n); leading (batch) dimensions broadcast as in
    ``np.matmul``.  1-D operands are rejected with ValueError (the caller promotes them).  Returns a new
    C-contiguous uint64 array equal to ``np.matmul(a, b)`` (numpy's integer matmul is exact mod 2^64 but
    has no fast path: ~0.15 GMAC/s).

    Method, chosen per product by shape and host (``_plan_matmul``, crossover table above it):

    * ``direct`` -- numba kernels doing uint64 multiply-adds (exact by construction), parallel over
      (batch, row tile, column tile): a dot-product form when b is stored transposed (used as is), is
      narrow (n <= 16) or is shared by enough rows (then transposed once), else a row-axpy form that
      reads a row-major b in place (decode shapes).  Reaches 3-4 GMAC/s at 1x4096x4096 (bandwidth
      bound), 9-10 at 8x4096x4096 and ~14-16 GMAC/s from 512x768x768 up to 4096^3 (~1.0-1.2x DGEMM/12)
      on the project machine, where it is chosen for every shape.
    * ``limbs`` -- float64 DGEMM on signed digits, chosen for large products (min(m, n) >= 64 and
      m*k*n >= 2^27) on hosts without a vector 64-bit multiply.  Each operand is split as
      x = d0 + 2^22 d1 + 2^44 d2 (mod 2^64) with balanced digits |d0|, |d1| <= 2^21, |d2| <= 2^19.
      Only the 6 digit pairs with weight < 2^64 are formed -- (0,0), (0,1), (1,0), (0,2), (1,1),
      (2,0) -- as 3 DGEMMs on row-stacked digits.  Each product term is bounded by 2^42, so with the
      inner dimension chunked to kc <= 2048 every partial sum is an integer of magnitude <= 2^53 and
      therefore exact in float64 in any summation order; the chunks are converted to int64, reduced
      mod 2^64 and accumulated in uint64.  Cost: 12 m k n flops per ring product, i.e. at best
      DGEMM-GFLOP/s / 12 ring GMAC/s (measured 0.83-0.92x of that here).

    ``_method`` ('direct' | 'limbs') and ``_kmax`` (limb chunk length, <= 2048) are private test hooks.
    """
    a = _check_u64("a", a)
    b = _check_u64("b", b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError("ring_matmul needs operands with ndim >= 2 (promote 1-D operands first)")
    m, k = a.shape[-2:]
    k2, n = b.shape[-2:]
    if k != k2:
        raise ValueError(f"ring_matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    try:
        bs = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"ring_matmul: batch dimensions do not broadcast: {a.shape} @ {b.shape}") from None
    out_shape = tuple(bs) + (m, n)
    if _method not in (None, "direct", "limbs"):
        raise ValueError(f"unknown _method {_method!r}")
    if m == 0 or n == 0 or int(math.prod(bs)) == 0:
        return np.zeros(out_shape, dtype=np.uint64)
    if k == 0:
        return np.zeros(out_shape, dtype=np.uint64)

    # A batched a against one shared matrix b is a single tall (batch*m, k) @ (k, n) product.
    if a.ndim > 2 and all(d == 1 for d in b.shape[:-2]):
        r = ring_matmul(a.reshape(-1, k), b.reshape(k, n), _method=_method, _kmax=_kmax)
        return r.reshape(out_shape)

    nbat, a3, ia, b3, bt3, ib = _batch_plan(a, b)
    method = _method or _plan_matmul(m, k, n, nbat)
    if method == "direct":
        out = _direct_matmul(a3, ia, ib, nbat, m, k, n, b3, bt3)
    else:
        if b3 is None:
            b3 = np.empty((bt3.shape[0], k, n), dtype=np.uint64)
            _transpose_any(bt3, b3)
        out = np.empty((nbat, m, n), dtype=np.uint64)
        for t in range(nbat):
            _matmul_limbs_2d(a3[ia[t]], b3[ib[t]], out[t], _kmax)
    return out.reshape(out_shape)


# ---------------------------------------------------------------------------------------------------
# Beaver combine
# ---------------------------------------------------------------------------------------------------


@nb.njit(parallel=True, cache=True)
def _beaver(c, a, b, e, f, out, c_is_out):  # pragma: no cover - compiled
    """out[p] = c[p] + e*b[p] + f*a[p] (+ e*f on p == 0).  c, a, b, out (R, N); e, f (N,).

    Blocked over N (parallel), parties inside, so e and f are read from cache R times but from memory
    once.  With ``c_is_out`` the c operand is read through ``out`` (in place, still vectorised).
    """
    R = out.shape[0]
    N = out.shape[1]
    blk = 4096
    nblk = (N + blk - 1) // blk
    for t in prange(nblk):
        j0 = t * blk
        j1 = min(j0 + blk, N)
        for p in range(R):
            ap = a[p]
            bp = b[p]
            op = out[p]
            if c_is_out:
                if p == 0:
                    for j in range(j0, j1):
                        ej = e[j]
                        fj = f[j]
                        op[j] = op[j] + ej * bp[j] + fj * ap[j] + ej * fj
                else:
                    for j in range(j0, j1):
                        op[j] = op[j] + e[j] * bp[j] + f[j] * ap[j]
            else:
                cp = c[p]
                if p == 0:
                    for j in range(j0, j1):
                        ej = e[j]
                        fj = f[j]
                        op[j] = cp[j] + ej * bp[j] + fj * ap[j] + ej * fj
                else:
                    for j in range(j0, j1):
                        op[j] = cp[j] + e[j] * bp[j] + f[j] * ap[j]


def beaver_combine(c: np.ndarray, a: np.ndarray, b: np.ndarray, e: np.ndarray, f: np.ndarray,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise Beaver combine for additive shares stacked over parties.

    ``c``, ``a``, ``b`` have shape (R, *s) (one row per party), ``e``, ``f`` shape ``s`` (the public
    opened values e = x - a, f = y - b).  Returns ``z`` with ``z[p] = c[p] + e*b[p] + f*a[p]`` for every
    party p, and row 0 additionally ``+ e*f`` (mod 2^64), so that sum_p z[p] = x*y.  ``z`` is a new
    C-contiguous uint64 array, or ``out`` when given (it may alias ``c``, ``a`` or ``b``; reusing a
    buffer avoids the first-touch page faults of a fresh large allocation).  One fused parallel numba
    pass when all shapes match exactly and the arrays are C-contiguous; otherwise numpy with
    broadcasting over the party axis and ``s`` (same result).  Inputs are not modified (unless aliased by
    ``out``).
    """
    c, a, b, e, f = (_check_u64(nm, v) for nm, v in zip("cabef", (c, a, b, e, f)))
    if c.ndim < 1:
        raise ValueError("beaver_combine: c must have a leading party axis")
    try:
        shape = np.broadcast_shapes(c.shape, a.shape, b.shape, (1,) + e.shape, (1,) + f.shape)
    except ValueError:
        raise ValueError("beaver_combine: shapes do not broadcast: "
                         f"c{c.shape} a{a.shape} b{b.shape} e{e.shape} f{f.shape}") from None
    if len(shape) != c.ndim:
        raise ValueError("beaver_combine: e and f must not have more dimensions than a party row")
    if out is not None:
        _check_u64("out", out)
        if out.shape != shape:
            raise ValueError(f"beaver_combine: out has shape {out.shape}, expected {shape}")
    s = c.shape[1:]
    fast = (
        a.shape == c.shape
        and b.shape == c.shape
        and e.shape == s
        and f.shape == s
        and all(v.flags.c_contiguous for v in (c, a, b, e, f))
        and (out is None or out.flags.c_contiguous)
    )
    c_is_out = False
    if fast and out is not None:
        # exact aliasing of c, a or b is fine (element j is read before it is written, in the same
        # iteration); any other overlap with out takes the numpy path, which buffers.
        c_is_out = _same_view(c, out)
        fast = not any(np.may_share_memory(v, out) and not _same_view(v, out) for v in (c, a, b)) \
            and not np.may_share_memory(e, out) and not np.may_share_memory(f, out)
    if fast:
        R = c.shape[0]
        N = int(math.prod(s)) if s else 1
        z = np.empty(c.shape, dtype=np.uint64) if out is None else out
        if R and N:
            kernel = _beaver if R * N >= serial_below("beaver") else _SERIAL[_beaver]
            kernel(c.reshape(R, N), a.reshape(R, N), b.reshape(R, N), e.reshape(N), f.reshape(N),
                    z.reshape(R, N), c_is_out)
        return z
    # numpy fallback (broadcasting); uint64 throughout, wraps mod 2^64.  Every input is read into
    # temporaries before out is written, so any overlap with out is harmless.
    ef = e * f
    z = np.broadcast_to(c + e * b + f * a, shape)
    if out is None:
        out = np.array(z, dtype=np.uint64, order="C")
    else:
        np.copyto(out, z)
    if shape[0]:
        out[0] += ef
    return out


# ---------------------------------------------------------------------------------------------------
# elementwise add / sub / mul
# ---------------------------------------------------------------------------------------------------

_EW_BLK = 16384  # elements per parallel task (128 KiB per operand)


# One explicit kernel per op (closures from a factory would share one cache entry).  ``mode`` says which
# operands are the output itself, so the loop never reads and writes "two" arrays that are really one:
# LLVM's runtime alias check would then send the whole loop down its scalar path.
#   0: out = x op y     1: out = out op y (x is out)     2: out = x op out (y is out)
#   3: out = out op out (x is y is out)     4: out = x op s     5: out = out op s     (s = y[0], a scalar)


@nb.njit(parallel=True, cache=True)
def _ew_add(x, y, out, mode):  # pragma: no cover - compiled
    N = out.shape[0]
    nblk = (N + _EW_BLK - 1) // _EW_BLK
    for t in prange(nblk):
        j0 = t * _EW_BLK
        j1 = min(j0 + _EW_BLK, N)
        if mode == 0:
            for j in range(j0, j1):
                out[j] = x[j] + y[j]
        elif mode == 1:
            for j in range(j0, j1):
                out[j] = out[j] + y[j]
        elif mode == 2:
            for j in range(j0, j1):
                out[j] = x[j] + out[j]
        elif mode == 3:
            for j in range(j0, j1):
                out[j] = out[j] + out[j]
        elif mode == 4:
            s = y[0]
            for j in range(j0, j1):
                out[j] = x[j] + s
        else:
            s = y[0]
            for j in range(j0, j1):
                out[j] = out[j] + s


@nb.njit(parallel=True, cache=True)
def _ew_sub(x, y, out, mode):  # pragma: no cover - compiled
    N = out.shape[0]
    nblk = (N + _EW_BLK - 1) // _EW_BLK
    for t in prange(nblk):
        j0 = t * _EW_BLK
        j1 = min(j0 + _EW_BLK, N)
        if mode == 0:
            for j in range(j0, j1):
                out[j] = x[j] - y[j]
        elif mode == 1:
            for j in range(j0, j1):
                out[j] = out[j] - y[j]
        elif mode == 2:
            for j in range(j0, j1):
                out[j] = x[j] - out[j]
        elif mode == 3:
            for j in range(j0, j1):
                out[j] = out[j] - out[j]
        elif mode == 4:
            s = y[0]
            for j in range(j0, j1):
                out[j] = x[j] - s
        else:
            s = y[0]
            for j in range(j0, j1):
                out[j] = out[j] - s


@nb.njit(parallel=True, cache=True)
def _ew_mul(x, y, out, mode):  # pragma: no cover - compiled
    N = out.shape[0]
    nblk = (N + _EW_BLK - 1) // _EW_BLK
    for t in prange(nblk):
        j0 = t * _EW_BLK
        j1 = min(j0 + _EW_BLK, N)
        if mode == 0:
            for j in range(j0, j1):
                out[j] = x[j] * y[j]
        elif mode == 1:
            for j in range(j0, j1):
                out[j] = out[j] * y[j]
        elif mode == 2:
            for j in range(j0, j1):
                out[j] = x[j] * out[j]
        elif mode == 3:
            for j in range(j0, j1):
                out[j] = out[j] * out[j]
        elif mode == 4:
            s = y[0]
            for j in range(j0, j1):
                out[j] = x[j] * s
        else:
            s = y[0]
            for j in range(j0, j1):
                out[j] = out[j] * s


def _same_view(u: np.ndarray, v: np.ndarray) -> bool:
    if u is v:
        return True
    # may_share_memory is a bounds check in C: most operand pairs leave here, before any pointer is read
    return (u.shape == v.shape and u.strides == v.strides and np.may_share_memory(u, v)
            and u.__array_interface__["data"][0] == v.__array_interface__["data"][0])


def _elementwise(kernel, npfunc, x, y, out):
    x = _check_u64("x", x)
    y = _as_u64_operand("y", y)
    y_is_scalar = not isinstance(y, np.ndarray)
    shape = x.shape if y_is_scalar or y.shape == x.shape else np.broadcast_shapes(x.shape, y.shape)
    if out is not None:
        _check_u64("out", out)
        if out.shape != shape:
            raise ValueError(f"out has shape {out.shape}, expected {shape}")
    fast = (
        x.shape == shape
        and x.flags.c_contiguous
        and (y_is_scalar or (y.shape == shape and y.flags.c_contiguous))
        and (out is None or out.flags.c_contiguous)
        and x.size > 0
    )
    mode = 4 if y_is_scalar else 0
    if fast and out is not None:
        x_is_out = _same_view(x, out)
        y_is_out = not y_is_scalar and _same_view(y, out)
        if x_is_out:
            mode = 5 if y_is_scalar else (3 if y_is_out else 1)
        elif y_is_out:
            mode = 2
        # a partial overlap with the output needs numpy's buffering
        fast = not ((not x_is_out and np.may_share_memory(x, out))
                    or (not y_is_scalar and not y_is_out and np.may_share_memory(y, out)))
    if fast:
        res = np.empty(shape, dtype=np.uint64) if out is None else out
        N = x.size
        yv = np.full(1, y, dtype=np.uint64) if y_is_scalar else y.reshape(N)
        if N < serial_below("elementwise"):
            kernel = _SERIAL[kernel]
        kernel(x.reshape(N), yv, res.reshape(N), mode)
        return res
    if out is None:
        return np.ascontiguousarray(npfunc(x, y), dtype=np.uint64)
    npfunc(x, y, out=out)
    return out


def ring_add(x: np.ndarray, y, out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise x + y mod 2^64 (numpy broadcasting).  ``y`` may be a uint64 array or an integer
    (reduced mod 2^64).  With ``out`` (may alias ``x`` or ``y``) the result is written there and returned.
    Parallel numba kernel for equal-shape C-contiguous operands or scalar ``y``; numpy otherwise."""
    return _elementwise(_ew_add, np.add, x, y, out)


def ring_sub(x: np.ndarray, y, out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise x - y mod 2^64; same conventions as :func:`ring_add`."""
    return _elementwise(_ew_sub, np.subtract, x, y, out)


def ring_mul(x: np.ndarray, y, out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise x * y mod 2^64; same conventions as :func:`ring_add`."""
    return _elementwise(_ew_mul, np.multiply, x, y, out)


# ---------------------------------------------------------------------------------------------------
# counter-mode PRG
# ---------------------------------------------------------------------------------------------------

_GOLDEN = 0x9E3779B97F4A7C15


@nb.njit(inline="always")
def _mix64(z):  # pragma: no cover - compiled
    # SplitMix64 finaliser (Stafford variant 13): a bijection on uint64 with full avalanche.
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(parallel=True, cache=True)
def _prg_fill(out, k1, k2, counter):  # pragma: no cover - compiled
    """out[i] = mix64(mix64((counter + i) * GOLDEN + k1) ^ k2), all mod 2^64."""
    N = out.shape[0]
    g = np.uint64(0x9E3779B97F4A7C15)
    blk = 16384
    nblk = (N + blk - 1) // blk
    for t in prange(nblk):
        j0 = t * blk
        j1 = min(j0 + blk, N)
        base = counter + np.uint64(j0)
        for j in range(j0, j1):
            x = (base + np.uint64(j - j0)) * g + k1
            out[j] = _mix64(_mix64(x) ^ k2)


def _mix64_py(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def random_uint64(shape, key: int, counter: int, out: np.ndarray | None = None) -> np.ndarray:
    """Fresh uint64 array of ``shape`` from a keyed counter-mode PRG.

    Element i (C order) is ``mix(mix((counter + i) * G + k1) ^ k2)`` where ``mix`` is the SplitMix64
    finaliser, G = 0x9E3779B97F4A7C15 and (k1, k2) are derived from ``key`` by the same mixer; all
    arithmetic is mod 2^64.  The output is a pure function of (key, counter + i): drawing n elements at
    counter c and then m at c + n gives exactly the n + m elements drawn at c in one call, and the caller
    advances its own counter by the number of elements drawn.  Different keys give unrelated streams.

    This is a *simulation* PRG: statistically good (two rounds of the SplitMix64 output function, whose
    one-round counter mode already passes BigCrush) and fast (~13 GB/s into a reused buffer, parallel),
    but NOT cryptographically secure -- do not use it to protect real data.
    ``key`` and ``counter`` are integers in [0, 2^64).  With ``out`` (C-contiguous uint64 of ``shape``) the
    stream is written there instead of a fresh array (no first-touch page faults on reuse).
    """
    key = int(key)
    counter = int(counter)
    if not (0 <= key <= _MASK64):
        raise ValueError("key must be in [0, 2^64)")
    if not (0 <= counter <= _MASK64):
        raise ValueError("counter must be in [0, 2^64)")
    if out is None:
        out = np.empty(shape, dtype=np.uint64)
    else:
        _check_u64("out", out)
        want = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
        if out.shape != want:
            raise ValueError(f"out has shape {out.shape}, expected {want}")
        if not out.flags.c_contiguous:
            raise ValueError("out must be C-contiguous")
    fill_stream(out, stream_keys(key), counter)
    return out


def stream_keys(key: int) -> tuple[np.uint64, np.uint64]:
    """The pair (k1, k2) that :func:`random_uint64` derives from ``key`` (in [0, 2^64)); a PRG that draws
    often derives it once and calls :func:`fill_stream`."""
    return (np.uint64(_mix64_py(key ^ 0x5851F42D4C957F2D)), np.uint64(_mix64_py((key + _GOLDEN) & _MASK64)))


def fill_stream(out: np.ndarray, keys: tuple, counter: int) -> None:
    """Write words counter .. counter + out.size - 1 of the stream of ``keys`` (:func:`stream_keys`) into
    ``out``, a C-contiguous uint64 array: :func:`random_uint64` without its argument checks, for callers
    that own the array they made (a per-call cost that thousands of small draws per decode step add up)."""
    if out.size:
        kernel = _prg_fill if out.size >= serial_below("prg") else _SERIAL[_prg_fill]
        kernel(out.reshape(-1), keys[0], keys[1], np.uint64(counter))


@nb.njit(inline="always")
def _draw_row(row, acc, base, j0, width, g, k1, k2, mask, combine):  # pragma: no cover - compiled
    """row[j0 + j] = stream word base + j (masked), folded into acc[j] by combine: 0 XOR, 1 add, 2 subtract."""
    for j in range(width):
        x = _mix64(_mix64((base + np.uint64(j)) * g + k1) ^ k2) & mask
        row[j0 + j] = x
        if combine == 0:
            acc[j] ^= x
        elif combine == 1:
            acc[j] += x
        else:
            acc[j] -= x


@nb.njit(parallel=True, cache=True)
def _triple_fill(a, b, c, k1, k2, counter, mask, boolean):  # pragma: no cover - compiled
    """Rows a[p], b[p] (R, n) and c[1:] from the stream at counter + (p, R + p, 2R + p - 1) n + j, masked;
    c[0] = (sum a)(sum b) - sum c[1:] (boolean: XORs and AND). Block-parallel over j; each inner loop runs
    along one contiguous row, so it vectorises."""
    R = a.shape[0]
    n = a.shape[1]
    g = np.uint64(0x9E3779B97F4A7C15)
    blk = 2048
    nblk = (n + blk - 1) // blk
    fold = 0 if boolean else 1
    unfold = 0 if boolean else 2
    for t in prange(nblk):
        j0 = t * blk
        width = min(j0 + blk, n) - j0
        sa = np.zeros(width, dtype=np.uint64)
        sb = np.zeros(width, dtype=np.uint64)
        for p in range(R):
            _draw_row(a[p], sa, counter + np.uint64(p * n + j0), j0, width, g, k1, k2, mask, fold)
            _draw_row(b[p], sb, counter + np.uint64((R + p) * n + j0), j0, width, g, k1, k2, mask, fold)
        if boolean:
            for j in range(width):
                sa[j] &= sb[j]
        else:
            for j in range(width):
                sa[j] *= sb[j]
        for p in range(1, R):
            _draw_row(c[p], sa, counter + np.uint64((2 * R + p - 1) * n + j0), j0, width, g, k1, k2, mask, unfold)
        row = c[0]
        for j in range(width):
            row[j0 + j] = sa[j] & mask


def triple_from_stream(rows: int, n: int, keys: tuple, counter: int, mask: int, boolean: bool):
    """An elementwise triple in share form over ``rows`` parties and ``n`` elements, in one pass from the
    stream of ``keys``: a and b (rows, n) uniform shares (words counter + p n + j and counter + (rows + p) n
    + j), c's rows 1.. from the next (rows - 1) n words and c's row 0 the correction making sum c = (sum a)
    (sum b) mod 2^64, every word masked by ``mask`` (XOR and AND when ``boolean``). Word for word what
    drawing a and b as shares, multiplying their values and sharing c with rows 1.. from the stream gives;
    it uses 3 rows - 1 words of the stream per element."""
    a = np.empty((rows, n), dtype=np.uint64)
    b = np.empty((rows, n), dtype=np.uint64)
    c = np.empty((rows, n), dtype=np.uint64)
    if n:
        kernel = _triple_fill if rows * n >= serial_below("prg") else _SERIAL[_triple_fill]
        kernel(a, b, c, keys[0], keys[1], np.uint64(counter), np.uint64(mask), bool(boolean))
    return a, b, c


# The kernels with a serial twin, and how the crossover of each family is probed.
_SERIAL = {k: _serial_twin(k) for k in (_ew_add, _ew_sub, _ew_mul, _beaver, _prg_fill, _transpose, _triple_fill)}


def _probe_elementwise():
    x = np.arange(_PROBE_SIZES[-1], dtype=np.uint64)
    out = np.empty_like(x)
    return ((lambda n: _ew_add(x[:n], x[:n], out[:n], 0)),
            (lambda n: _SERIAL[_ew_add](x[:n], x[:n], out[:n], 0)))


def _probe_beaver():
    arrays = {}

    def run(kernel, n):
        if n not in arrays:  # two parties' rows, C-contiguous as beaver_combine passes them
            arrays[n] = (np.arange(n, dtype=np.uint64).reshape(2, n // 2), np.arange(n // 2, dtype=np.uint64),
                         np.empty((2, n // 2), dtype=np.uint64))
        x, e, out = arrays[n]
        kernel(x, x, x, e, e, out, False)

    return (lambda n: run(_beaver, n)), (lambda n: run(_SERIAL[_beaver], n))


def _probe_prg():
    out = np.empty(_PROBE_SIZES[-1], dtype=np.uint64)
    k = np.uint64(1)
    return ((lambda n: _prg_fill(out[:n], k, k, k)), (lambda n: _SERIAL[_prg_fill](out[:n], k, k, k)))


def _probe_transpose():
    arrays = {}

    def run(kernel, n):
        if n not in arrays:  # a square (1, r, r), r^2 about n
            r = max(1, int(np.sqrt(n)))
            arrays[n] = (np.arange(r * r, dtype=np.uint64).reshape(1, r, r), np.empty((1, r, r), dtype=np.uint64))
        kernel(*arrays[n])

    return (lambda n: run(_transpose, n)), (lambda n: run(_SERIAL[_transpose], n))


_PROBES = {"elementwise": _probe_elementwise, "beaver": _probe_beaver, "prg": _probe_prg,
           "transpose": _probe_transpose}
