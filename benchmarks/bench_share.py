"""The share backend against the ideal backend, quiet and beside a busy process, measured in one run.

Run ``python benchmarks/bench_share.py`` (about 4 minutes on 2 cores), ``--quick`` (smoke run, small
shapes, well under a minute, targets not judged), ``--cases NAME,...`` for a subset (names below),
``--no-busy`` to skip the busy-neighbour timings, and ``python benchmarks/bench_share.py --profile CASE``
for the 25 functions with the most ``tottime`` (pstats) in one call of that case on the share backend.

Battery (``mpsim.Session(parties=2, backend=..., seed=3)``; inputs ``s.input(rng.normal(size=...))`` made
before timing, the same values for both backends; only the operation is timed):

  product         ``x * y``, two shared vectors of 10^7 (fixed-point product: Beaver and truncation)
  matmul-1        ``x @ y``, 1x4096 @ 4096x4096 (the weight scaled by 1/64 so values stay small)
  matmul-64       ``x @ y``, 64x4096 @ 4096x4096 (likewise)
  ltz             ``protocols.ltz(x)`` on 10^6
  softmax         ``protocols.softmax(x, axis=-1)`` on 32x4096
  topk            ``protocols.topk(x, 50)`` on 32x4096 (randomized method: cost varies call to call)
  decode-full     ``mpcache.decode.decode_step(run)``, smollm2 at 512 tokens, full attention
  decode-mpcache  the same with the MPCache policy

A decode run is prepared once per backend (``decode.prepare(s, get_model("smollm2"), 512, policy)``, not
timed); each timed call is one more decode step (the cache grows by a token per step). Each case: one
warm-up call per backend, then the median of a few repetitions, share and ideal alternating rep by rep
(``bench_kernels.interleaved``). Then the same case again at once, same sessions and inputs, while a
second process runs ``while True: pass`` (started before, killed after; one more warm-up call each), and
the share backend's busy/quiet slowdown is printed. The kernels' serial crossovers
(``mpsim.kernels.serial_below``) are those measured on the quiet machine at the first call; they are not
measured again under the neighbour.

Other sections:

  Python share    (measured when softmax / decode-full are selected) one more call of the case on the
                  share backend under ``cProfile`` (wall clock).  Every pstats entry is put in one class by
                  its key (filename, line, name):
                    * C: filename ``'~'`` (builtin functions and methods, numpy's C methods);
                    * numba kernel: the key is the ``py_func.__code__`` of a live numba ``Dispatcher``
                      (found with ``gc.get_objects()``): numba's C dispatcher reports a compiled call to
                      the profiler under its Python function's name, but no bytecode runs in it;
                    * numba machinery: a Python file inside the numba package (typing, compiling); Python;
                    * Python: everything else.
                  Python share = (Python + numba machinery tottime) / total tottime of all entries.
                  Two biases, both making the figure *higher* than the interpreter's true share: the
                  profiler's per-call overhead lands in the Python entries' tottime (the profiled call is
                  printed beside the unprofiled median), and C work reached without a C-function call that
                  cProfile sees (array operators such as ``a + b``, calls of ufunc objects such as
                  ``np.add``, numpy functions behind ``__array_function__`` stubs) is counted in the
                  tottime of the Python function that does it.  Printed as context, not judged:
                  1 - (C + numba seconds under the profile) / unprofiled median time, which removes most
                  of the first bias (not the second).
  beaver          ``mpsim.kernels.beaver_combine(c, a, b, e, f, out=c)``, c, a, b of shape (2, n), e, f of
                  (n,), uint64, n = 2^24, into c's own buffer as the share backend calls it (a fresh output
                  and a preallocated one printed as context), against ``np.copyto`` of the same number of bytes, counted as
                  bench_kernels.py counts them: 8 * (3Rn + 2n + Rn) bytes read + written (R = 2 rows).
  ring-matmul     ``mpsim.kernels.ring_matmul`` on uint64 arrays at 64x4096x4096 and 2048x4096x4096,
                  interleaved; G ring MAC/s = m*k*n / s / 1e9, and their ratio.
  count-memory    ``python -m mpsim.cli decode --model llama2-7b --seq 131072 --backend count --json`` in a
                  subprocess: its own peak RSS and wall time, both taken by a small intermediate Python
                  process that starts it and reads ``ru_maxrss`` of ``os.wait4`` on it (MB = 10^6 bytes).
                  Not from this process: Linux counts in a child's ``ru_maxrss`` the memory of the process
                  that forked it (the pre-exec high-water mark), which here would be this benchmark's.

Targets (PASS/FAIL printed; exit status 1 if one fails; ``--quick`` prints "(quick: not judged)", exits 0):
  * share / ideal <= 1.5 on every case of the battery (quiet machine);
  * smollm2 decode step on the share backend (full and mpcache) <= 1.0 s quiet, and busy/quiet <= 2.0;
  * Python share of the softmax and decode-full profiles <= 35%;
  * fused Beaver combine >= 0.8 x a copy of the same bytes;
  * 64-row ring matmul >= 60% of the 2048-row rate;
  * count backend peak memory at llama2-7b, 131072 tokens <= 150 MB.

Quick shapes: product 10^5, matmul 1x512 and 64x512 by 512x512, ltz 10^4, softmax 32x512, top-k 50 of
32x512, decode of the first 4 of smollm2's 30 layers at 64 tokens (preparing all 30 layers takes longer
than a smoke run may), beaver n = 2^18, ring matmul 64x512x512 vs 512x512x512, count run at --seq 4096.
The machines are shared and noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import os

# Must be set before numba starts its OpenMP threads and numpy loads OpenBLAS (see bench_kernels.py).
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba  # noqa: E402
from numba.core.dispatcher import Dispatcher  # noqa: E402

import mpsim  # noqa: E402
import protocols as P  # noqa: E402
from bench_kernels import beaver_bandwidth, environment, interleaved, rnd  # noqa: E402
from mpsim import kernels as K  # noqa: E402

BACKENDS = ("share", "ideal")
MB = 1e6

# (name, value, "<=" or ">=", need, ok)
RESULTS: list[tuple[str, float, str, float, bool]] = []
QUICK = False


def target(name: str, value: float, op: str, need: float, fmt: str = ".3f") -> None:
    ok = value <= need if op == "<=" else value >= need
    RESULTS.append((name, value, op, need, ok))
    verdict = "(quick: not judged)" if QUICK else ("PASS" if ok else "FAIL")
    print(f"  -> target {name}: {value:{fmt}} (need {op} {need}) {verdict}", flush=True)


@contextmanager
def busy_neighbour():
    """A second process keeping one core busy for the duration of the block."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        yield
    finally:
        spinner.kill()
        spinner.wait()


# ---------------------------------------------------------------- the battery


@dataclasses.dataclass
class Case:
    name: str
    label: str
    build: object  # build(session) -> zero-argument callable: the timed operation
    decode: bool = False


def _inputs(s, *shapes, scale=(1.0, 1.0)):
    rng = np.random.default_rng(1)  # same values on every backend
    return [s.input(rng.normal(size=shape) * sc) for shape, sc in zip(shapes, scale)]


def _decode_builder(policy: str, quick: bool):
    from mpcache import decode as D
    from mpcache.models import get_model

    model = get_model("smollm2")
    if quick:
        model = dataclasses.replace(model, layers=4)
    tokens = 64 if quick else 512

    def build(s):
        run = D.prepare(s, model, tokens, policy)
        return lambda: D.decode_step(run)

    where = "first 4 of 30 layers, " if quick else ""
    return build, f"smollm2 decode step ({where}{tokens} tokens, {policy})"


def make_cases(quick: bool) -> dict[str, Case]:
    n_mul, n_ltz, d, w = (10**5, 10**4, 512, 512) if quick else (10**7, 10**6, 4096, 4096)
    exp = lambda n: f"10^{len(str(n)) - 1}"  # noqa: E731

    def product(s):
        x, y = _inputs(s, n_mul, n_mul)
        return lambda: x * y

    def matmul(m):
        def build(s):
            x, y = _inputs(s, (m, d), (d, d), scale=(1.0, 1 / 64))
            return lambda: x @ y
        return build

    def ltz(s):
        (x,) = _inputs(s, n_ltz)
        return lambda: P.ltz(x)

    def softmax(s):
        (x,) = _inputs(s, (32, w))
        return lambda: P.softmax(x, axis=-1)

    def topk(s):
        (x,) = _inputs(s, (32, w))
        return lambda: P.topk(x, 50)

    cases = [
        Case("product", f"product {exp(n_mul)}", product),
        Case("matmul-1", f"matmul 1x{d} @ {d}x{d}", matmul(1)),
        Case("matmul-64", f"matmul 64x{d} @ {d}x{d}", matmul(64)),
        Case("ltz", f"comparison (ltz) {exp(n_ltz)}", ltz),
        Case("softmax", f"softmax 32x{w}", softmax),
        Case("topk", f"top-k 50 of 32x{w}", topk),
    ]
    for policy in ("full", "mpcache"):
        build, label = _decode_builder(policy, quick)
        cases.append(Case(f"decode-{policy}", label, build, decode=True))
    return {c.name: c for c in cases}


PROFILED = ("softmax", "decode-full")  # the cases whose Python share is measured (and judged)
SECTIONS = ("beaver", "ring-matmul", "count-memory")


def run_case(case: Case, quick: bool, busy: bool) -> dict:
    reps = (2 if quick else 3) if case.decode else (3 if quick else 5)
    print(f"\n{case.name}: {case.label}", flush=True)
    t0 = time.perf_counter()
    fns = {b: case.build(mpsim.Session(parties=2, backend=b, seed=3)) for b in BACKENDS}
    if case.decode:
        print(f"  (prepared on both backends in {time.perf_counter() - t0:.1f} s, not timed)")
    q = interleaved(fns, reps)
    res = {"case": case, "quiet": q}
    print(f"  quiet: ideal {q['ideal']:.3f} s  share {q['share']:.3f} s  share/ideal "
          f"{q['share'] / q['ideal']:.2f}  (median of {reps})", flush=True)
    target(f"share/ideal <= 1.5: {case.name}", q["share"] / q["ideal"], "<=", 1.5, ".2f")
    if case.decode:
        target(f"decode step on shares <= 1.0 s: {case.name}", q["share"], "<=", 1.0, ".3f")
    if busy:
        with busy_neighbour():
            bt = interleaved(fns, reps)
        res["busy"] = bt
        slow = bt["share"] / q["share"]
        print(f"  busy : ideal {bt['ideal']:.3f} s  share {bt['share']:.3f} s  share/ideal "
              f"{bt['share'] / bt['ideal']:.2f}; share busy/quiet {slow:.2f} "
              f"(ideal {bt['ideal'] / q['ideal']:.2f})", flush=True)
        if case.decode:
            target(f"decode busy/quiet <= 2.0: {case.name}", slow, "<=", 2.0, ".2f")
    if case.name in PROFILED:
        res["profile"] = python_share(fns["share"])
    del fns
    gc.collect()
    return res


# ---------------------------------------------------------------- the Python share


def _numba_keys() -> set:
    keys = set()
    for obj in gc.get_objects():
        if isinstance(obj, Dispatcher):
            code = getattr(getattr(obj, "py_func", None), "__code__", None)
            if code is not None:
                keys.add((code.co_filename, code.co_firstlineno, code.co_name))
    return keys


def profile_call(fn) -> tuple[pstats.Stats, float]:
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    fn()
    pr.disable()
    wall = time.perf_counter() - t0
    return pstats.Stats(pr), wall


def classify(stats: pstats.Stats) -> dict:
    """Seconds of tottime per class (see the module docstring)."""
    numba_keys = _numba_keys()
    numba_dir = str(Path(numba.__file__).resolve().parent)
    out = {"C": 0.0, "numba kernel": 0.0, "numba machinery": 0.0, "Python": 0.0}
    for key, (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        filename = key[0]
        if filename == "~":
            out["C"] += tt
        elif key in numba_keys:
            out["numba kernel"] += tt
        elif str(Path(filename).resolve()).startswith(numba_dir):
            out["numba machinery"] += tt
        else:
            out["Python"] += tt
    out["total"] = stats.total_tt
    return out


def python_share(fn) -> dict:
    stats, wall = profile_call(fn)
    c = classify(stats)
    c["wall"] = wall
    return c


def print_python_share(label: str, c: dict, unprofiled: float | None) -> float:
    tot = c["total"]
    share = (c["Python"] + c["numba machinery"]) / tot
    pct = {k: 100 * c[k] / tot for k in ("C", "numba kernel", "numba machinery", "Python")}
    print(f"{label}: profiled call {c['wall']:.3f} s" + (f" (unprofiled median {unprofiled:.3f} s)" if unprofiled else "")
          + f"; tottime {tot:.3f} s = C {pct['C']:.1f}% + numba kernels {pct['numba kernel']:.1f}% + "
          f"numba machinery {pct['numba machinery']:.1f}% + Python {pct['Python']:.1f}%")
    if unprofiled:
        est = max(0.0, 1.0 - (c["C"] + c["numba kernel"]) / unprofiled)
        print(f"  context: 1 - (C + numba) / unprofiled = {100 * est:.1f}% (profiler overhead mostly removed)")
    return share


# ---------------------------------------------------------------- kernels and the count backend


def bench_beaver(quick: bool) -> None:
    n = 1 << (18 if quick else 24)
    R = 2
    reps = 5 if quick else 7
    rng = np.random.default_rng(2)
    print(f"\n== fused Beaver combine vs a copy (n = 2^{n.bit_length() - 1}, (2, n) shares; GB/s = bytes read "
          "+ written / s)", flush=True)
    gbs = beaver_bandwidth(rng, R, n, reps)
    copy, in_c, fresh, pre = gbs["copy"], gbs["in_c"], gbs["fresh"], gbs["out"]
    print(f"numpy copy (np.copyto)               {copy:6.1f} GB/s")
    print(f"beaver_combine(out=c)                {in_c:6.1f} GB/s  ({in_c / copy:4.2f}x copy; as the backend calls it)")
    print(f"beaver_combine (fresh output)        {fresh:6.1f} GB/s  ({fresh / copy:4.2f}x copy; context)")
    print(f"beaver_combine(out=preallocated)     {pre:6.1f} GB/s  ({pre / copy:4.2f}x copy; context)")
    target("fused Beaver combine >= 0.8 x copy", in_c / copy, ">=", 0.8, ".3f")


def bench_ring_matmul(quick: bool) -> None:
    k = nn = 512 if quick else 4096
    big = 512 if quick else 2048
    reps = 3
    rng = np.random.default_rng(3)
    print(f"\n== ring matmul: 64 rows vs {big} rows (x{k}x{nn}, uint64; G ring MAC/s = m*k*n / s / 1e9)",
          flush=True)
    b = rnd(rng, k, nn)
    a64, abig = rnd(rng, 64, k), rnd(rng, big, k)
    t = interleaved({"64": lambda: K.ring_matmul(a64, b), "big": lambda: K.ring_matmul(abig, b)}, reps)
    g64 = 64 * k * nn / t["64"] / 1e9
    gbig = big * k * nn / t["big"] / 1e9
    print(f"64x{k}x{nn}: {g64:6.2f} G ring MAC/s ({K._plan_matmul(64, k, nn, 1)})")
    print(f"{big}x{k}x{nn}: {gbig:6.2f} G ring MAC/s ({K._plan_matmul(big, k, nn, 1)})")
    target(f"64-row ring matmul >= 0.6 x {big}-row rate", g64 / gbig, ">=", 0.6, ".3f")


# Runs in a small intermediate Python process: Linux keeps a child's pre-exec high-water mark in its
# ru_maxrss, i.e. the RSS of the process that forked it, so forking the command from this (large) process
# would report this process's memory.  The intermediate is ~10 MB, below what it measures.
_MEASURE = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
text = p.stdout.read()
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps({"wall": time.perf_counter() - t0, "status": os.waitstatus_to_exitcode(status),
                  "maxrss_kib": usage.ru_maxrss, "stdout": text.decode()}))
"""


def bench_count_memory(quick: bool) -> None:
    seq = 4096 if quick else 131072
    cmd = [sys.executable, "-m", "mpsim.cli", "decode", "--model", "llama2-7b", "--seq", str(seq),
           "--backend", "count", "--json"]
    print(f"\n== count backend: peak memory of `{' '.join(['python'] + cmd[1:])}`", flush=True)
    done = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], cwd=ROOT, stdout=subprocess.PIPE, check=True)
    m = json.loads(done.stdout)
    if m["status"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {m['status']}")
    report = json.loads(m["stdout"])  # the command's JSON parses
    peak = m["maxrss_kib"] * 1024 / MB  # Linux: ru_maxrss in KiB
    print(f"peak RSS {peak:.1f} MB, wall {m['wall']:.2f} s (JSON of {len(m['stdout']):,} characters, "
          f"schema {report.get('schema')})")
    target(f"count backend peak memory, llama2-7b at {seq} tokens (MB)", peak, "<=", 150, ".1f")


# ---------------------------------------------------------------- main


def profile_command(name: str, quick: bool) -> int:
    cases = make_cases(quick)
    if name not in cases:
        print(f"unknown case {name!r}; cases: {', '.join(cases)}", file=sys.stderr)
        return 2
    case = cases[name]
    reps = 1 if case.decode else 3
    print(f"{case.name}: {case.label}, share backend: one warm-up call, {reps} unprofiled, then one call "
          "under cProfile")
    fn = case.build(mpsim.Session(parties=2, backend="share", seed=3))
    unprofiled = interleaved({"share": fn}, reps)["share"]
    stats, wall = profile_call(fn)
    stats.sort_stats("tottime").print_stats(25)
    c = classify(stats)
    c["wall"] = wall
    share = print_python_share(case.label, c, unprofiled)
    print(f"Python share (Python + numba machinery tottime / total tottime): {100 * share:.1f}%")
    return 0


def main() -> int:
    global QUICK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repetitions; targets not judged")
    ap.add_argument("--cases", help="comma-separated subset: the battery's cases and " + ", ".join(SECTIONS))
    ap.add_argument("--no-busy", action="store_true", help="skip the busy-neighbour timings")
    ap.add_argument("--profile", metavar="CASE", help="print the top 25 functions by tottime of CASE (share)")
    args = ap.parse_args()
    QUICK = args.quick
    if args.profile:
        return profile_command(args.profile, args.quick)
    cases = make_cases(args.quick)
    names = list(cases) + list(SECTIONS)
    chosen = names if not args.cases else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(names)}")

    t0 = time.perf_counter()
    environment()
    print("\n== battery: share vs ideal backend, quiet" + ("" if args.no_busy else ", then beside a busy process")
          + (" (QUICK shapes)" if args.quick else ""))
    results = [run_case(cases[n], args.quick, not args.no_busy) for n in cases if n in chosen]

    if results:
        print("\n== battery table (seconds, medians)")
        print(f"{'case':16s} {'ideal':>8s} {'share':>8s} {'sh/id':>6s}" +
              ("" if args.no_busy else f" | {'busy id':>8s} {'busy sh':>8s} {'sh/id':>6s} {'sh busy/quiet':>13s}"))
        for r in results:
            q = r["quiet"]
            line = f"{r['case'].name:16s} {q['ideal']:8.3f} {q['share']:8.3f} {q['share'] / q['ideal']:6.2f}"
            if "busy" in r:
                b = r["busy"]
                line += (f" | {b['ideal']:8.3f} {b['share']:8.3f} {b['share'] / b['ideal']:6.2f} "
                         f"{b['share'] / q['share']:13.2f}")
            print(line)

    profiled = [r for r in results if "profile" in r]
    if profiled:
        print("\n== Python share of the time (share backend, one call under cProfile; method in the docstring)")
        for r in profiled:
            share = print_python_share(r["case"].label, r["profile"], r["quiet"]["share"])
            target(f"Python share <= 35%: {r['case'].name} (%)", 100 * share, "<=", 35, ".1f")
    del results, profiled
    gc.collect()

    if "beaver" in chosen:
        bench_beaver(args.quick)
    if "ring-matmul" in chosen:
        bench_ring_matmul(args.quick)
    if "count-memory" in chosen:
        bench_count_memory(args.quick)

    print("\n== summary" + (" (QUICK: small shapes, targets not judged)" if args.quick else ""))
    for name, value, op, need, ok in RESULTS:
        verdict = "----" if args.quick else ("PASS" if ok else "FAIL")
        print(f"{verdict}  {name}: {value:.3f} (need {op} {need})")
    failed = sum(not ok for *_, ok in RESULTS)
    print(f"{len(RESULTS)} targets, {failed} missed" + (" (quick: not judged)" if args.quick else "")
          + f"; total {time.perf_counter() - t0:.0f} s")
    return 0 if args.quick or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
