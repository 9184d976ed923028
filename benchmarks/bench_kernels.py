"""Benchmark of mpsim.kernels against the machine's own yardsticks, measured in one run.

Run ``python benchmarks/bench_kernels.py`` (a few minutes) or ``--quick`` (smoke run, small shapes).
Every figure is the median of a few repetitions after a warm-up call; yardsticks (DGEMM, numpy uint64
matmul, numpy copy) are timed in the same run, interleaved with the kernel they judge, because the
machines are shared and noisy: only the ratios are meaningful.

Targets (PASS/FAIL printed):
  * ring matmul >= 0.7 x DGEMM-GFLOP/s / 12 at 2048x4096x4096 (a ring MAC costs 12 flops in the limb plan);
  * ring matmul >= 20 x numpy's uint64 matmul at 1024^3;
  * Beaver combine >= 0.7 x numpy copy bandwidth (bytes read + written, same byte count).
"""

from __future__ import annotations

import os

# Must be set before numba starts its OpenMP threads, or numba and OpenBLAS fight for the cores.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
# OpenBLAS worker threads busy-wait ~2^28 cycles (~0.1 s) after each BLAS call by default; a numba kernel
# launched in that window runs at half speed on 2 cores.  2^4 cycles: idle threads sleep at once.
# (Must be set before numpy loads OpenBLAS.  Override from the environment to see the effect.)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402

from mpsim import kernels as K  # noqa: E402

RESULTS: list[tuple[str, float, float, bool]] = []


def timeit(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def interleaved(fns: dict, reps: int) -> dict:
    """Median time of each callable, alternating them rep by rep so they see the same machine load."""
    for fn in fns.values():
        fn()
    ts = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def rnd(rng, *shape):
    return rng.integers(0, 1 << 64, size=shape, dtype=np.uint64)


def target(name: str, value: float, need: float) -> None:
    ok = value >= need
    RESULTS.append((name, value, need, ok))
    print(f"  -> target {name}: ratio {value:.3f} (need >= {need}) {'PASS' if ok else 'FAIL'}")


def environment() -> None:
    print(f"numpy {np.__version__}, numba {numba.__version__}, python {sys.version.split()[0]}")
    K.ring_add(np.zeros(1 << 16, np.uint64), 1)  # start numba's thread pool
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started"
    print(f"numba threading layer: {layer}, threads: {numba.get_num_threads()}, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            print(f"threadpool: {info.get('internal_api')} {info.get('version')} "
                  f"{info.get('architecture', '')} threads={info.get('num_threads')} ({info.get('prefix')})")
    except ImportError:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        print(f"BLAS: {cfg.get('name')} {cfg.get('version')} (threadpoolctl not installed: pool details unknown)")


def bench_matmul(quick: bool) -> None:
    rng = np.random.default_rng(1)
    print("\n== ring matmul (GMAC/s = m*k*n / s; DGEMM/12 = float64 GFLOP/s / 12 at the same shape)")
    shapes = [("decode", 1, 4096, 4096), ("decode", 8, 4096, 4096), ("medium", 512, 768, 768),
              ("large", 1024, 1024, 1024), ("large", 2048, 4096, 4096)]
    if quick:
        shapes = [("decode", 1, 1024, 1024), ("decode", 8, 1024, 1024), ("medium", 256, 384, 384),
                  ("large", 512, 1024, 1024)]
    for kind, m, k, n in shapes:
        a, b = rnd(rng, m, k), rnd(rng, k, n)
        af, bf = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        plan = K._plan_matmul(m, k, n, 1)
        big = m * k * n >= 1 << 33
        reps = 3 if big else (5 if quick else 7)
        fns = {
            "dgemm": lambda: af @ bf,
            "direct": lambda: K.ring_matmul(a, b, _method="direct"),
            "limbs": lambda: K.ring_matmul(a, b, _method="limbs"),
        }
        t = interleaved(fns, reps)
        gflops = 2 * m * k * n / t["dgemm"] / 1e9
        line = f"{kind:6s} {m:5d}x{k}x{n}: DGEMM {gflops:6.1f} GFLOP/s (/12 = {gflops / 12:5.2f})"
        for meth in ("direct", "limbs"):
            g = m * k * n / t[meth] / 1e9
            mark = "*" if meth == plan else " "
            line += f" | {meth}{mark} {g:6.2f} GMAC/s = {g / (gflops / 12):4.2f}x DGEMM/12"
        print(line)
        chosen = m * k * n / t[plan] / 1e9
        if (m, k, n) == (2048, 4096, 4096) or (quick and kind == "large"):
            target(f"ring matmul >= 0.7 x DGEMM/12 at {m}x{k}x{n}", chosen / (gflops / 12), 0.7)

    print("(decode rows: b is 128 MiB; here the limb runs between repetitions evict it from the L3, so these"
          "\n are DRAM-bound figures; the later sections re-use b from the L3 and read faster)")
    print("\n== ring matmul with a transposed right operand (b = W.T, a view: read in place by the dot kernel)")
    kk, nn = (1024, 1024) if quick else (4096, 4096)
    w = rnd(rng, nn, kk)
    for m in (1, 8):
        a = rnd(rng, m, kk)
        t = timeit(lambda: K.ring_matmul(a, w.T), 5)
        print(f"{m:5d}x{kk}x{nn} @ W.T: {m * kk * nn / t / 1e9:6.2f} GMAC/s")

    print("\n== ring matmul vs numpy's uint64 matmul (exact mod 2^64, no fast path)")
    shapes = [(1, 4096, 4096), (8, 4096, 4096), (512, 768, 768), (1024, 1024, 1024)]
    if quick:
        shapes = [(1, 1024, 1024), (512, 512, 512)]
    for m, k, n in shapes:
        a, b = rnd(rng, m, k), rnd(rng, k, n)
        slow = m * k * n >= 1 << 27
        t0 = time.perf_counter()
        ref = a @ b  # numpy timed once when slow (1024^3 takes ~6 s)
        t_np = time.perf_counter() - t0
        if not slow:
            t_np = timeit(lambda: a @ b, 3, warmup=0)
        z = K.ring_matmul(a, b)
        assert np.array_equal(z, ref), "ring_matmul disagrees with numpy"
        t_k = timeit(lambda: K.ring_matmul(a, b), 5)
        g_np, g_k = m * k * n / t_np / 1e9, m * k * n / t_k / 1e9
        print(f"{m:5d}x{k}x{n}: numpy uint64 {g_np:6.3f} GMAC/s, ring_matmul "
              f"({K._plan_matmul(m, k, n, 1)}) {g_k:6.2f} GMAC/s, speed-up {g_k / g_np:6.1f}x")
        if (m, k, n) == (1024, 1024, 1024) or (quick and (m, k, n) == (512, 512, 512)):
            target(f"ring matmul >= 20 x numpy uint64 matmul at {m}x{k}x{n}", g_k / g_np, 20)


def beaver_bandwidth(rng, R: int, N: int, reps: int, numpy_chain: bool = False) -> dict:
    """GB/s (bytes read + written / s) of ``beaver_combine`` on (R, N) shares, called into c's own buffer
    ("in_c", as the share backend calls it), into a preallocated buffer ("out") and into a fresh array
    ("fresh"), and of a numpy copy of the same byte count ("copy"), interleaved; with ``numpy_chain`` also
    the plain numpy expression c + e*b + f*a."""
    c, a, b = rnd(rng, R, N), rnd(rng, R, N), rnd(rng, R, N)
    e, f = rnd(rng, N), rnd(rng, N)
    out = np.empty((R, N), np.uint64)
    beaver_bytes = 8 * (3 * R * N + 2 * N + R * N)
    src = rnd(rng, beaver_bytes // 16)  # the copy moves the same number of bytes (read + write)
    dst = np.empty_like(src)
    calls = {
        "copy": lambda: np.copyto(dst, src),
        "in_c": lambda: K.beaver_combine(c, a, b, e, f, out=c),
        "out": lambda: K.beaver_combine(c, a, b, e, f, out=out),
        "fresh": lambda: K.beaver_combine(c, a, b, e, f),
    }
    if numpy_chain:
        calls["numpy_chain"] = lambda: c + e * b + f * a
    t = interleaved(calls, reps)
    return {name: (2 * src.nbytes if name == "copy" else beaver_bytes) / seconds / 1e9
            for name, seconds in t.items()}


def bench_elementwise(quick: bool) -> None:
    rng = np.random.default_rng(2)
    N = 1 << (20 if quick else 23)
    R = 3
    reps = 5 if quick else 11
    print(f"\n== elementwise (GB/s = bytes read + written / s; N = {N} elements per party, R = {R})")
    gbs = beaver_bandwidth(rng, R, N, reps, numpy_chain=True)
    copy_gbs, bo, bn, bnp = gbs["copy"], gbs["out"], gbs["fresh"], gbs["numpy_chain"]
    print(f"numpy copy (np.copyto)                 {copy_gbs:6.1f} GB/s")
    print(f"beaver_combine(out=preallocated)       {bo:6.1f} GB/s  ({bo / copy_gbs:4.2f}x copy)")
    print(f"beaver_combine(out=c), the backend's   {gbs['in_c']:6.1f} GB/s  ({gbs['in_c'] / copy_gbs:4.2f}x copy)")
    print(f"beaver_combine (fresh output array)    {bn:6.1f} GB/s  ({bn / copy_gbs:4.2f}x copy; "
          f"includes first-touch page faults)")
    print(f"numpy expression chain (no e*f row 0)  {bnp:6.1f} GB/s")
    target("Beaver combine >= 0.7 x copy bandwidth", bo / copy_gbs, 0.7)

    x, y = rnd(rng, R * N), rnd(rng, R * N)
    y2 = np.empty_like(y)
    t = interleaved({
        "add_inplace": lambda: K.ring_add(x, y, out=x),
        "mul_inplace": lambda: K.ring_mul(x, y, out=x),
        "numpy_add_inplace": lambda: np.add(x, y, out=x),
        "numpy_mul_alloc": lambda: x * y,
        "prg": lambda: K.random_uint64((R * N,), 7, 0),
        "prg_out": lambda: K.random_uint64((R * N,), 7, 0, out=y2),
        "prg_numpy": lambda: rng.integers(0, 1 << 64, size=R * N, dtype=np.uint64),
    }, max(3, reps // 2))
    nb3 = 3 * x.nbytes
    print(f"ring_add in place   {nb3 / t['add_inplace'] / 1e9:6.1f} GB/s | numpy add in place "
          f"{nb3 / t['numpy_add_inplace'] / 1e9:6.1f} GB/s")
    print(f"ring_mul in place   {nb3 / t['mul_inplace'] / 1e9:6.1f} GB/s | numpy x*y allocating "
          f"{nb3 / t['numpy_mul_alloc'] / 1e9:6.1f} GB/s")
    print(f"random_uint64 into out= {x.nbytes / t['prg_out'] / 1e9:6.1f} GB/s written | fresh array "
          f"{x.nbytes / t['prg'] / 1e9:6.1f} GB/s | numpy Generator {x.nbytes / t['prg_numpy'] / 1e9:6.1f} GB/s")


def bench_small_arrays(busy: bool) -> None:
    """Small arrays: the serial twins against the parallel kernels, and the crossover each family measured
    (mpsim.kernels.serial_below); with --busy, while a second process keeps one core busy (the shared-machine
    case of CI, where waking the thread pool costs about a millisecond)."""
    import subprocess

    from mpsim import kernels as K

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        K.serial_below.cache_clear()
        print("\n== small arrays" + (" (another process busy on one core)" if busy else "")
              + ": serial twin vs parallel kernel, and the measured crossover")
        out = np.empty(1 << 16, dtype=np.uint64)
        k = np.uint64(7)
        for n in (64, 1024, 16384, 65536):
            par = timeit(lambda: K._prg_fill(out[:n], k, k, k), 200)
            ser = timeit(lambda: K._SERIAL[K._prg_fill](out[:n], k, k, k), 200)
            print(f"prg fill of {n:6d} words: parallel {par * 1e6:8.1f} us, serial {ser * 1e6:8.1f} us "
                  f"({par / ser:6.1f}x)")
        for family in ("elementwise", "beaver", "prg", "transpose"):
            print(f"serial below {K.serial_below(family):>9,} elements: {family}")
    finally:
        if spinner is not None:
            spinner.kill()
        K.serial_below.cache_clear()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repetitions (smoke run)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    environment()
    bench_matmul(args.quick)
    bench_elementwise(args.quick)
    bench_small_arrays(busy=False)
    bench_small_arrays(busy=True)
    print("\n== summary" + (" (QUICK: small shapes, targets indicative only)" if args.quick else ""))
    for name, value, need, ok in RESULTS:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.3f} (need >= {need})")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0 if all(ok for *_, ok in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
