"""Property tests (hypothesis) of the non-linear protocols on and near the edges of their documented domains,
for K in {32, 64} (f = 8 and 16, the session defaults), N in {2, 3, 4} and both truncation protocols.

Every property is tested twice:

(1) MPC against the plaintext twin of the same approximation (``protocols.nonlinear.Twin``, ``twin_*``): the
    share backend (real additive shares, real dealer correlations) must be within the twin's derived slack
    ``Twin.err`` of the twin, per element, in units of 2^-f of the output. The gap is taken inside the ring
    (``out - twin`` at scale 0, then revealed), so it is an exact integer even where reals exceed float64's
    53 bits (the ring edges at K = 64).
(2) The twin against the true function (numpy float64) within the approximation's documented error on its
    documented domain: the f = 16 statements at K = 64, and the derived bounds for any f
    (``reciprocal_bound``, ``rsqrt_bound``, ``layernorm_bound``, ``rmsnorm_bound``) at K = 32 and 64. These
    bounds are derived for share-backend runs too (each truncation off by less than one unit either way), so
    (1) also checks the MPC against the true function within them. The measured K = 32 accuracy of the
    other functions (docs/protocols.md's table) is checked in tests/test_nonlinear.py.

The slack of (1), derived from the probabilistic truncations, never tuned
------------------------------------------------------------------------
The twin runs the protocol's ring steps in int64 with floor truncation. The share backend's truncation
(``trunc_pr`` always, SecureML's local truncation except with its failure probability, see below) returns
floor(v / 2^s) or floor(v / 2^s) + 1 of *its own* input v: each truncation is off by at most one unit. So,
step by step (``Twin.trunc``, ``Twin.raw_mul``, ``Twin._input_error``):

* a truncation of an exactly known input is off by at most 1 ULP;
* a truncation of an input already off by e units (at the input's scale 2^-(F+s)) is off by at most
  e / 2^s + 2 ULPs: two inputs e apart have floors at most ceil(e / 2^s) <= e / 2^s + 1 apart, plus the + 1;
* a Beaver product is exact in the ring, so operands off by e_a, e_b give |a| e_b + |b| e_a + e_a e_b;
* local steps (sums, public integer multiples, relabelling a scale) add or scale the offsets exactly;
* comparisons and selections see exact values here (the input itself, x - rowmax, the thermometer of an
  exact input), so MPC and twin choose the same branch and the offsets are selected with the values;
* where rsqrt or reciprocal receive a value that is already off (the variance in the norms, the row sum in
  softmax) the MPC may pick another leading bit: the slack adds |slope| * input offset (mean value theorem
  on [x - e, x + e], slope taken at the lower end) + twice the documented bound (each run within it of the
  true function).

Chaining these over the truncations of an output element gives ``Twin.err``. Examples: SiLU truncates 5
elements per output (z^2, z^4, z^6 and the one truncation of both polynomials), slack <= 8 ULPs; GeLU 7,
slack <= 50 (the octic's z^8 carries the most); exp (limit) truncates t + 1 = 9 times, and every squaring
doubles the offset it inherits, so its slack grows like 2^t e^x (about 10^4 ULPs at f = 8, x = 1).

The derivation assumes that every truncated value v obeys its protocol's precondition and that no
comparison's difference wraps. The documented domains include both (they once did not; the regression tests
at the end of this file check each corrected domain and bound at its edges):

* ``trunc_pr``: |v| < 2^(K-2) for every truncated v (exact, never fails): the norms' domain, conditions
  (a)-(e) of layernorm's docstring (|x - mean| < 2^(K/2-1-f), |mean| < 2^(K-2-2f), ...);
* comparisons: msb(a - b) is right iff a - b does not wrap (|a - b| < 2^(K-1) ring units): GeLU's and SiLU's
  domains (the ring range minus a sliver at each end, where a threshold comparison wraps) and softmax's (the
  row's spread below 2^(K-1-f));
* every session runs with ``check_domain=True``, so each drawn input must also pass the protocols' own
  checks of the exact ring conditions: this tests that the documented (sufficient) conditions imply them;
* ``trunc="local"`` (N = 2 only): SecureML fails with probability about 2^(l + 1 - K) per element for
  |v| < 2^l. We use it only at K = 64, with inputs bounded so that every truncated value of the call has
  l + 1 - K <= -24 (some 10^4 local truncations per run of this file then fail with probability about 1e-3
  in total). The bounds per function are next to each test.
  At K = 32 local truncation is left out: already a product of magnitude 1 (v = 2^(2f) = 2^16) fails with
  probability 2^(16 + 1 - 32) = 2^-15, and reciprocal/rsqrt's normalising product always sits near
  2^(f + D) = 2^20 (2^-11): no input range of these functions makes the failure probability negligible.

``trunc`` is always passed explicitly (never "auto"). Sessions: one per example, share backend, a drawn seed,
shapes of at most 4 x 8 (32 points per MPC call); hypothesis is derandomized (deterministic in CI), without a
database or deadline.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mpsim
import protocols
from protocols.nonlinear import (
    RECIP_E0,
    RSQRT_E0,
    NonlinearConfig,
    Twin,
    _twin_row_mean,  # the twin of _row_mean: the variance the norms hand to rsqrt (domain filter only)
    layernorm_bound,
    reciprocal_bound,
    rmsnorm_bound,
    rsqrt_bound,
    twin_exp,
    twin_gelu,
    twin_layernorm,
    twin_reciprocal,
    twin_rmsnorm,
    twin_rsqrt,
    twin_silu,
    twin_softmax,
)
from protocols.nonlinear import _segment_bits  # the three comparisons of gelu and silu (domain-edge test only)

RINGS = {64: 16, 32: 8}  # K -> f, the session defaults
# (N, trunc) per ring: dealer truncation for every N; local only for N = 2 and only at K = 64 (see above).
MODES = {64: [(2, "dealer"), (3, "dealer"), (4, "dealer"), (2, "local")],
         32: [(2, "dealer"), (3, "dealer"), (4, "dealer")]}
DEFAULT = NonlinearConfig()
NEWTON = NonlinearConfig(recip_method="newton")
PUMA_EXP = DEFAULT.puma()  # Pade, s = 4, q = 3, clipped below -14: the exp of softmax(method="puma")
T = DEFAULT.exp_iters
EPS = 1e-5  # the norms' default eps

SETTINGS = dict(derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# One share-backend session per example. At these sizes the cost is per kernel call, not per element, so
# examples of up to 32 points cover more than many tiny ones in the same time.
MPC = settings(max_examples=25, **SETTINGS)
PLAIN = settings(max_examples=40, **SETTINGS)  # plaintext only: cheap, larger arrays

_ERF = np.vectorize(math.erf)


@pytest.fixture(autouse=True, scope="module")
def _serial_kernels():
    """Run this module's numba kernels on one thread (restored afterwards). Its arrays have at most a few
    hundred elements, where launching a parallel region costs more than the work, and far more when the
    other core is busy (measured under load, 10 examples per property: 9 s on one thread, 70 s on two). The
    kernels' results do not depend on the thread count (counter-mode PRG, elementwise ring arithmetic)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


# -- strategies ----------------------------------------------------------------------------------------------------
def ring_points(lo: int, hi: int, edges, log: bool = False):
    """Ring integers in [lo, hi]: on an edge, a few units or 2^j units beside one (clipped into [lo, hi]), or
    an interior point (log-uniform over the binades for positive ranges; otherwise uniform, or uniform in
    [-2^j, 2^j] for a uniform j, so that small magnitudes are drawn as often as large ones)."""
    edges = sorted({min(max(int(e), lo), hi) for e in edges})
    edge = st.sampled_from(edges)
    offset = st.one_of(st.integers(-3, 3),
                       st.builds(lambda j, sign: sign << j, st.integers(2, 62), st.sampled_from([-1, 1])))
    near = st.builds(lambda e, o: min(max(e + o, lo), hi), edge, offset)
    if log:
        interior = st.integers(lo.bit_length() - 1, hi.bit_length() - 1).flatmap(
            lambda j: st.integers(max(lo, 1 << j), min(hi, (2 << j) - 1)))
    else:
        width = max(abs(lo), abs(hi)).bit_length()
        magnitude = st.integers(0, width).flatmap(lambda j: st.integers(-(1 << j), 1 << j))
        interior = st.one_of(st.integers(lo, hi), magnitude.map(lambda v: min(max(v, lo), hi)))
    return st.one_of(edge, near, interior)


def int_arrays(points, max_size: int, min_size: int = 1):
    return st.lists(points, min_size=min_size, max_size=max_size).map(lambda v: np.array(v, dtype=np.int64))


def draw_session(data, K: int, aby3: bool = False):
    """A share-backend session of one of MODES[K]; with ``aby3``, also ABY3's (3 parties, its share
    truncation, which like SecureML's returns the floor or one more, with the same failure probability:
    K = 64 only, under the same input bounds as local truncation)."""
    modes = [(N, trunc, "additive") for N, trunc in MODES[K]] + ([(3, "local", "aby3")] if aby3 and K == 64 else [])
    N, trunc, scheme = data.draw(st.sampled_from(modes), label="parties, trunc, scheme")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    s = mpsim.Session(parties=N, ring_bits=K, frac_bits=RINGS[K], seed=seed, backend="share", trunc=trunc,
                      check_domain=True, scheme=scheme)
    return s, trunc


def share(s, ring_ints, owner: int = 0):
    """Secret-share ring integers k as the fixed-point reals k 2^-f (exact at any K, the ring's edges too)."""
    t = s.input(np.asarray(ring_ints, dtype=np.int64), owner=owner, frac_bits=0)
    t.frac = s.frac_bits
    return t


def twin(fn, *args, **kwargs) -> Twin:
    # Pieces that a selection discards may overflow int64/float64 in the twin (e.g. z^8 of a huge x); they
    # are selected away with their slack, as the MPC's wrapped values are.
    with np.errstate(over="ignore", invalid="ignore"):
        return fn(*args, **kwargs)


def assert_within_slack(s, out, ref: Twin, what: str) -> None:
    """Property (1): |MPC - twin| <= twin.err ULPs per element, compared exactly in the ring."""
    K = s.ring.bits
    assert out.frac == ref.frac == s.frac_bits and out.shape == ref.v.shape, what
    half = np.int64(1) << np.int64(K - 1) if K < 64 else None
    v = ref.v if half is None else ((ref.v + half) % (2 * half)) - half  # the twin's value as a K-bit ring element
    out.frac = 0  # the same ring elements read as integers: out - v is the gap in ULPs
    gap = np.abs(s.reveal(out - v))
    bad = ~(gap <= ref.err)
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise AssertionError(f"{what} (K={K}, N={s.parties}, trunc={s.trunc}): |MPC - twin| = {gap[i]} ULPs > "
                             f"derived slack {ref.err[i]:.4g} at {i}; {int(bad.sum())} of {bad.size} elements")


def ulps(y, ref, f):
    return np.abs(np.asarray(y, dtype=np.float64) - ref) * 2.0**f


# -- exp -------------------------------------------------------------------------------------------------------------
def _exp_domain(K: int, f: int, clipped: bool):
    """(lo, hi, edges) in ring units. Limit: [-2^(t+1), 1] (below -2^(t+1) it diverges: exp's check_domain
    bound; [0, 1] is the docstring's upper range). Clipped Pade: any x from the ring's bottom up to 1."""
    one = 1 << f
    if clipped:
        lo = -(1 << (K - 1))
        return lo, one, [lo, -14 * one, -16 * one, 0, one]
    lo = -(2 << T) * one
    return lo, one, [lo, -(1 << T) * one, -16 * one, -2 * one, 0, one]


@pytest.mark.parametrize("K", [32, 64])
@MPC
@given(data=st.data(), clipped=st.booleans())
def test_exp_mpc_within_derived_slack(K, data, clipped):
    """Local truncation (K = 64) on the whole domain: the truncated values are x 2^f (|x| <= 2^(t+1), first
    step), squares of e <= e^1 (v < 2^(3 + 2f) = 2^35) and Pade's terms of |u| <= 1: l + 1 - K <= -28. In
    the clipped region the huge intermediate values are discarded by the selection whatever they are."""
    f = RINGS[K]
    s, _ = draw_session(data, K, aby3=True)
    cfg = PUMA_EXP if clipped else DEFAULT
    lo, hi, edges = _exp_domain(K, f, clipped)
    x = data.draw(int_arrays(ring_points(lo, hi, edges), 32), label="x (ring units)")
    out = protocols.exp(share(s, x), config=cfg)
    assert_within_slack(s, out, twin(twin_exp, Twin(x, f), cfg), f"exp {cfg.exp_method}")


@PLAIN
@given(data=st.data(), method=st.sampled_from(["limit", "pade", "pade_clip"]))
def test_exp_twin_within_documented_error(data, method):
    """f = 16: limit on [-16, 0] <= 0.0045, on [0, 1] <= 0.026; Pade on [-14, 0] <= 0.0012, on [0, 1]
    <= 0.003; clipped Pade: exactly 0 below -14 (|0 - e^x| < e^-14), as Pade above."""
    f = 16
    one = 1 << f
    cfg = {"limit": DEFAULT, "pade": NonlinearConfig(exp_method="pade"), "pade_clip": PUMA_EXP}[method]
    lo = -(1 << 40) if method == "pade_clip" else (-16 if method == "limit" else -14) * one
    x = data.draw(int_arrays(ring_points(lo, one, [lo, -16 * one, -14 * one, -2 * one, 0, one]), 64))
    y = twin(twin_exp, Twin(x, f), cfg).real()
    xr = x / 2.0**f
    err = np.abs(y - np.exp(xr))
    neg, pos = xr <= 0, xr > 0
    bound_neg, bound_pos = (0.0045, 0.026) if method == "limit" else (0.0012, 0.003)
    assert np.all(err[neg] <= bound_neg) and np.all(err[pos] <= bound_pos), (xr[np.argmax(err)], err.max())
    if method == "pade_clip":
        assert np.all(y[xr < -14] == 0)


# -- reciprocal and rsqrt ----------------------------------------------------------------------------------------------
def _positive_domain(K: int, f: int, lo: int = 1):
    """[lo, 2^(f+D) - 1] in ring units (x in [2^-f, 2^D)), edges at every leading-bit boundary."""
    P = f + DEFAULT.log2_max(K, f)
    hi = (1 << P) - 1
    edges = [lo, hi, 1 << f, 1 << (f - 1), 1 << (f + 1)]
    edges += [1 << j for j in range(P)] + [(1 << j) - 1 for j in range(1, P)]
    return lo, hi, edges


# Local truncation at K = 64 (l + 1 - K <= -24, see the module docstring): the normalising product is below
# 2^(f+D) = 2^37 (2^-26) for every x; reciprocal's rescaling product is below 2^(2f+1) / x (ring units of
# 2^-f: x >= 2^-5 keeps it below 2^39, 2^-24); rsqrt's is below 2^(41 - pos/2) for leading bit pos, so
# x >= 2^-12 (pos >= 4) keeps it below 2^39. Smaller x are covered by the dealer modes.
LOCAL_MIN_LOG2 = {"reciprocal": -5, "rsqrt": -12}


@pytest.mark.parametrize("name", ["reciprocal", "rsqrt"])
@pytest.mark.parametrize("K", [32, 64])
@MPC
@given(data=st.data())
def test_reciprocal_and_rsqrt_mpc_within_derived_slack(K, name, data):
    """Also: the MPC output within ``reciprocal_bound`` / ``rsqrt_bound`` of the true function (derived for
    share-backend runs as well), at f = 8 and f = 16."""
    f = RINGS[K]
    s, trunc = draw_session(data, K, aby3=name == "reciprocal")
    lo = 1 << (f + LOCAL_MIN_LOG2[name]) if trunc == "local" else 1
    lo, hi, edges = _positive_domain(K, f, lo)
    x = data.draw(int_arrays(ring_points(lo, hi, edges, log=True), 32), label="x (ring units)")
    xr = x / 2.0**f
    if name == "reciprocal":
        cfg = data.draw(st.sampled_from([DEFAULT, NEWTON]), label="config")
        out, ref = protocols.reciprocal(share(s, x), config=cfg), twin(twin_reciprocal, Twin(x, f), cfg, K=K)
        true, bound = 1 / xr, reciprocal_bound(xr, f, cfg)
    else:
        cfg = DEFAULT
        out, ref = protocols.rsqrt(share(s, x)), twin(twin_rsqrt, Twin(x, f), DEFAULT, K=K)
        true, bound = 1 / np.sqrt(xr), rsqrt_bound(xr, f, cfg)
    err = ulps(s.reveal(out), true, f)
    assert np.all(err <= bound), (name, K, xr[np.argmax(err / bound)], (err / bound).max())
    assert_within_slack(s, out, ref, name)


@pytest.mark.parametrize("name", ["reciprocal", "reciprocal_newton", "rsqrt"])
@pytest.mark.parametrize("K", [32, 64])
@PLAIN
@given(data=st.data())
def test_reciprocal_and_rsqrt_twin_within_documented_bound(K, name, data):
    """x in [2^-f, 2^D) (K = 64: [2^-16, 2^21); K = 32: [2^-8, 2^12)): |y - 1/x| <= reciprocal_bound and
    |y - 1/sqrt(x)| <= rsqrt_bound, derived for any f; the measured statements: at most 3 ULPs on [1, 2^20]
    (reciprocal; 2.5 at f = 8) and for x >= 1 (rsqrt; 1.3 at f = 8), 0 for x >= 2^(f+1)."""
    f = RINGS[K]
    lo, hi, edges = _positive_domain(K, f)
    x = data.draw(int_arrays(ring_points(lo, hi, edges, log=True), 64))
    xr = x / 2.0**f
    if name == "rsqrt":
        err = ulps(twin(twin_rsqrt, Twin(x, f), DEFAULT, K=K).real(), 1 / np.sqrt(xr), f)
        assert np.all(err <= rsqrt_bound(xr, f, DEFAULT)), xr[np.argmax(err / rsqrt_bound(xr, f, DEFAULT))]
        assert np.all(err[xr >= 1] <= (3 if f == 16 else 1.3))
        return
    cfg = NEWTON if name == "reciprocal_newton" else DEFAULT
    y = twin(twin_reciprocal, Twin(x, f), cfg, K=K).real()
    err = ulps(y, 1 / xr, f)
    assert np.all(err <= reciprocal_bound(xr, f, cfg)), xr[np.argmax(err / reciprocal_bound(xr, f, cfg))]
    assert np.all(err[(xr >= 1) & (xr <= 2**20)] <= (3 if f == 16 else 2.5))
    assert np.all(y[xr >= 2 ** (f + 1)] == 0)


# -- softmax ----------------------------------------------------------------------------------------------------------
def _softmax_rows(data, K: int, f: int, method: str, max_rows: int = 4, max_n: int = 8):
    """(R, n) rows in ring units: a row offset m plus deviations d <= 0 (the row's spread is max(d) - min(d)).

    The documented domains: exact, spread below 2^t (the limit exp is meaningless below -2^t); puma, spread
    below 2^(K-1) ring units, i.e. 2^(K-1-f) (the max and x - max need |x_i - x_j| < 2^(K-1-f), compare's
    domain; see test_softmax_puma_spread_domain_edges)."""
    one = 1 << f
    R = data.draw(st.integers(1, max_rows), label="rows")
    n = data.draw(st.integers(1, max_n), label="row length")
    spread = (1 << (T + f)) - 1 if method == "exact" else (1 << (K - 1)) - 1
    ln = int(round(math.log(max(n - 1, 1)) * one))
    d_edges = [0, -1, -spread, -(1 << (T + f - 1)), -16 * one, -14 * one, -ln]
    d = data.draw(int_arrays(ring_points(-spread, 0, d_edges), R * n, min_size=R * n), label="deviations")
    d = d.reshape(R, n)
    lo, hi = -(1 << (K - 1)) - int(d.min()), (1 << (K - 1)) - 1
    m = data.draw(ring_points(lo, hi, [lo, hi, 0]), label="row offset")
    return m + d


@pytest.mark.parametrize("method", ["exact", "puma"])
@pytest.mark.parametrize("K", [32, 64])
@MPC
@given(data=st.data())
def test_softmax_mpc_within_derived_slack(K, method, data):
    """Local truncation (K = 64) on the whole domain: exp's values are at most 1 (squares below 2^(2f+1)),
    the row sum is in [1, n] (normalisation 2^-26, rescaling below 2^(2f+1): 2^-30), the final product of
    two values at most 1: l + 1 - K <= -26."""
    f = RINGS[K]
    s, _ = draw_session(data, K, aby3=True)
    x = _softmax_rows(data, K, f, method)
    out = protocols.softmax(share(s, x), method=method)
    assert_within_slack(s, out, twin(twin_softmax, Twin(x, f), method=method, config=DEFAULT, K=K),
                        f"softmax {method}")


@pytest.mark.parametrize("method", ["exact", "puma"])
@PLAIN
@given(data=st.data())
def test_softmax_twin_within_documented_error(method, data):
    """f = 16: exact <= 0.03 per output (rows of spread below 2^t); puma <= n 2^-f + 0.002."""
    K, f = 64, 16
    x = _softmax_rows(data, K, f, method, max_rows=4, max_n=16)
    y = twin(twin_softmax, Twin(x, f), method=method, config=DEFAULT, K=K).real()
    d = (x - x.max(axis=-1, keepdims=True)) / 2.0**f  # exact where e^d > 0 (|d| < 2^53 units)
    e = np.exp(d)
    err = np.abs(y - e / e.sum(axis=-1, keepdims=True))
    n = x.shape[-1]
    bound = 0.03 if method == "exact" else n * 2.0**-f + 0.002
    assert err.max() <= bound, (err.max(), bound)


# -- GeLU and SiLU ---------------------------------------------------------------------------------------------------
# The documented domain: the three comparisons are msb(x - t0), msb(x - t1) and msb(t2 - x), which wrap
# within |t| of the ring's ends, so the domain is the ring range minus those slivers (the docstrings'
# (-2^(K-1-f) + t2, 2^(K-1-f) + t0); see test_gelu_silu_domain_edges).
THRESHOLDS = {"gelu": (-4.0, -2.0, 3.125), "silu": (-8.0, -4.0, 4.0)}


def _piecewise_domain(K: int, f: int, name: str):
    t0, t1, t2 = (int(round(t * 2**f)) for t in THRESHOLDS[name])
    lo, hi = -(1 << (K - 1)) + t2 + 1, (1 << (K - 1)) + t0 - 1  # t2 - x and x - t0 stay in the ring
    one = 1 << f
    return lo, hi, [lo, hi, t0, t1, t2, 0, -20 * one, 20 * one]


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("K", [32, 64])
@MPC
@given(data=st.data())
def test_gelu_silu_mpc_within_derived_slack(K, name, data):
    """Local truncation (K = 64) on the whole domain: the selected piece's powers of z = x/4 have |z| <= 2
    (z^2 below 2^(2 + 2F), F = f + 2: l + 1 - K <= -25); the other pieces' values, however large and
    however truncated, are multiplied by a 0 bit."""
    f = RINGS[K]
    s, _ = draw_session(data, K)
    lo, hi, edges = _piecewise_domain(K, f, name)
    x = data.draw(int_arrays(ring_points(lo, hi, edges), 32), label="x (ring units)")
    fn, tw = (protocols.gelu, twin_gelu) if name == "gelu" else (protocols.silu, twin_silu)
    assert_within_slack(s, fn(share(s, x)), twin(tw, Twin(x, f)), name)


def _gelu(x):
    return 0.5 * x * (1 + _ERF(x / math.sqrt(2)))


@pytest.mark.parametrize("name", ["gelu", "silu"])
@PLAIN
@given(data=st.data())
def test_gelu_silu_twin_within_documented_error(name, data):
    """f = 16 on [-2^10, 2^10] (edges at the thresholds and +-20): GeLU <= 0.0029, exactly 0 below -4 and x
    above 3.125; SiLU <= 0.0097 on [-4, 4], <= 0.0044 on [-8, -4), <= 0.0027 below -8, and x sigmoid(-x)
    (+ 5e-5) above 4."""
    f = 16
    one = 1 << f
    t0, t1, t2 = (int(round(t * one)) for t in THRESHOLDS[name])
    lim = 1 << (10 + f)
    x = data.draw(int_arrays(ring_points(-lim, lim, [-lim, lim, t0, t1, t2, 0, -20 * one, 20 * one]), 64))
    xr = x / 2.0**f
    if name == "gelu":
        y = twin(twin_gelu, Twin(x, f)).real()
        assert np.abs(y - _gelu(xr)).max() <= 0.0029
        assert np.all(y[xr < -4] == 0) and np.array_equal(y[xr > 3.125], xr[xr > 3.125])
        return
    y = twin(twin_silu, Twin(x, f)).real()
    with np.errstate(over="ignore"):  # e^|x| overflows to inf for |x| > 709: x / inf = 0, as it should
        err = np.abs(y - xr / (1 + np.exp(-xr)))
        tail_of_x = xr / (1 + np.exp(xr))  # x sigmoid(-x)
    mid, low, tail, top = (xr >= -4) & (xr <= 4), (xr >= -8) & (xr < -4), xr < -8, xr > 4
    assert np.all(err[mid] <= 0.0097) and np.all(err[low] <= 0.0044) and np.all(err[tail] <= 0.0027)
    assert np.all(err[top] <= tail_of_x[top] + 5e-5)


# -- LayerNorm and RMSNorm -------------------------------------------------------------------------------------------
def _norm_stats(x: np.ndarray, f: int, centre: bool):
    """The twin's view of what the norm truncates: the Twin handed to rsqrt (variance or mean square, eps
    included, with its slack), max |x - mean| in ring units (plus its slack) and max |mean| in ring units."""
    t = Twin(x, f)
    n = x.shape[-1]
    d, mean = t, np.zeros(x.shape[:-1], dtype=np.int64)
    if centre:
        mu = _twin_row_mean(t.sum(-1), n)
        mean, d = mu.v, t - mu.expand()
    sq = _twin_row_mean((d * d).sum(-1), n) + float(EPS)
    return sq, np.abs(d.v).max() + np.ceil(d.err.max()), np.abs(mean).max()


def _mean_consts(n: int, f: int):
    """rho_n and kappa_n of ``_row_mean`` (layernorm's docstring), as exact rationals."""
    g = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    c = round(Fraction(2 ** (g + f), n))
    rho = abs(Fraction(c * n, 2 ** (g + f)) - 1)
    return rho, 1 + Fraction(2**g, n) * (1 + rho)


def norm_in_domain(x: np.ndarray, gamma, K: int, f: int, centre: bool, eps: float = EPS) -> bool:
    """The documented domain of layernorm (centre) or rmsnorm: conditions (a)-(e) of layernorm's docstring for
    every row of ring integers x. (a)-(c), whose edges the regression tests below probe to the last unit, in
    exact rational arithmetic; (d)-(e), which involve square roots, in float64."""
    u = Fraction(1, 2**f)
    n = x.shape[-1]
    rho, kappa = _mean_consts(n, f)
    D = DEFAULT.log2_max(K, f)
    top = Fraction(2) ** (K - 2 - 2 * f)  # a truncated product at scale 2^(2f) must stay below 2^(K-2) units
    a_gamma = 1.0 if gamma is None else float(np.abs(gamma).max())
    eps_enc = float(np.rint(eps * 2.0**f)) * 2.0**-f
    for row in np.asarray(x).reshape(-1, n):
        xs = [Fraction(int(v), 2**f) for v in row]
        mean, delta = Fraction(0), Fraction(0)
        if centre:
            mean = sum(xs) / n
            delta = abs(mean) * rho + kappa * u
            if not (abs(sum(xs)) < Fraction(2) ** (K - 2 - f) and (abs(mean) + 2 * u) * (1 + rho) < top):  # (a)
                return False
        t = [v - mean for v in xs]
        m_dev = max(abs(v) for v in t)
        var = sum(v * v for v in t) / n
        if not m_dev + delta < Fraction(2) ** (K // 2 - 1 - f):  # (b)
            return False
        if not (n * (var + delta**2 + u) < Fraction(2) ** (K - 2 - f)
                and (var + delta**2 + 3 * u) * (1 + rho) < top):  # (c)
            return False
        dw = float(delta**2 + u + rho * (var + delta**2 + u) + kappa * u) + abs(eps_enc - eps)
        s2 = float(var) + eps
        if not (s2 + dw < 2.0**D and (eps_enc >= 2.0**-f or s2 - dw >= 2.0**-f)):  # (d)
            return False
        w_lo, w_hi = max(s2 - dw, 2.0**-f), s2 + dw
        dr = float(rsqrt_bound(w_lo, f)) * 2.0**-f + max(abs(w_lo**-0.5 - s2**-0.5), abs(w_hi**-0.5 - s2**-0.5))
        scaled = float(m_dev + delta)
        if gamma is not None:
            scaled *= a_gamma + 2.0 ** -(f + 1)
            if not scaled < top:  # (e): the product by gamma
                return False
            scaled += 2.0**-f
        if not scaled * (s2**-0.5 + dr) < top:  # (e): the product by r
            return False
    return True


def _true_norm(x: np.ndarray, f: int, g, b, centre: bool) -> np.ndarray:
    """The true LayerNorm / RMSNorm of ring integers x (the mean subtracted in integers: exact)."""
    n = x.shape[-1]
    t = (n * x - x.sum(axis=-1, keepdims=True)) / (n * 2.0**f) if centre else x / 2.0**f
    out = t / np.sqrt((t * t).mean(axis=-1, keepdims=True) + EPS) * (1.0 if g is None else g)
    return out + (0.0 if b is None else b)


def _norm_bound(x: np.ndarray, f: int, g, b, centre: bool) -> np.ndarray:
    xr = x / 2.0**f
    return layernorm_bound(xr, g, b, EPS, f) if centre else rmsnorm_bound(xr, g, EPS, f)


@st.composite
def norm_cases(draw, K: int, f: int, centre: bool, local: bool = False, max_rows: int = 4, max_n: int = 8):
    """(x in ring units, gamma/beta kind, gamma, beta): rows in the documented domain (``norm_in_domain``),
    drawn around a scale 2^e spanning it (up to |x - mean| ~ 2^(K/2-1-f)) with row offsets up to the mean's
    limit 2^(K-2-2f), both edges included. At f = 8 eps = 1e-5 encodes to 0, at f = 16 to one unit.
    Local truncation (K = 64, l + 1 - K <= -24): |x - mean| <= 2^3.5 (squares below 2^(7 + 2f)), |mean| <= 2^7
    (the mean's product below 2^(7 + 2f)) and a variance >= 2^-12 (rsqrt's rescaling, as in its test)."""
    D = DEFAULT.log2_max(K, f)
    one = 1 << f
    R = draw(st.integers(1, max_rows), label="rows")
    n = draw(st.integers(2 if centre else 1, max_n), label="row length")
    e = draw(st.integers(-(f // 2) - 1, 2 if local else D // 2 + 1), label="log2 scale")
    A = max(1, int(2.0 ** (e + f)))
    dev = draw(int_arrays(ring_points(-A, A, [-A, A, 0, 1, -1]), R * n, min_size=R * n), label="deviations")
    x = dev.reshape(R, n)
    m_lim = (1 << 7) * one if local else 1 << (K - 2 - f)
    if centre:
        x = x + draw(ring_points(-m_lim, m_lim, [-m_lim, m_lim, 0]), label="row offset")
    params = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 2.0, -2.0, 2.0**-f]), st.floats(-2, 2))
    vec = st.lists(params, min_size=n, max_size=n).map(np.array)
    kind = draw(st.sampled_from(["none", "public", "shared"]), label="gamma/beta")
    g = b = None
    if kind != "none":
        g = draw(vec, label="gamma")
        b = draw(vec, label="beta") if centre else None
    assume(norm_in_domain(x, g, K, f, centre))
    if local:
        sq, dmax, mmax = _norm_stats(x, f, centre)
        low = np.maximum(sq.v - np.ceil(sq.err), int(np.rint(EPS * 2.0**f)))  # the least value the MPC can hold
        assume(np.all(low >= 1 << (f - 12)) and dmax < 2.0 ** (3.5 + f) and mmax < m_lim)
    return x, kind, g, b


@pytest.mark.parametrize("name", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("K", [32, 64])
@MPC
@given(data=st.data())
def test_norms_mpc_within_derived_slack(K, name, data):
    """Also: the MPC output within ``layernorm_bound`` / ``rmsnorm_bound`` of the true function (derived for
    share-backend runs as well)."""
    f = RINGS[K]
    s, trunc = draw_session(data, K)
    centre = name == "layernorm"
    x, kind, g, b = data.draw(norm_cases(K, f, centre, trunc == "local"), label="rows, gamma, beta")
    gs = s.input(g) if kind == "shared" else g
    bs = s.input(b) if kind == "shared" and centre else b
    if centre:
        out = protocols.layernorm(share(s, x), gamma=gs, beta=bs)
        ref = twin(twin_layernorm, Twin(x, f), g, b, EPS, DEFAULT, K=K)
    else:
        out = protocols.rmsnorm(share(s, x), gamma=gs)
        ref = twin(twin_rmsnorm, Twin(x, f), g, EPS, DEFAULT, K=K)
    err, bound = ulps(s.reveal(out), _true_norm(x, f, g, b, centre), f), _norm_bound(x, f, g, b, centre)
    assert np.all(err <= bound), (name, K, (err / bound).max())
    assert_within_slack(s, out, ref, f"{name} (gamma {kind})")


@pytest.mark.parametrize("name", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("K", [32, 64])
@PLAIN
@given(data=st.data())
def test_norms_twin_within_derived_bound(K, name, data):
    """On the documented domain (n <= 16): the twin within ``layernorm_bound`` / ``rmsnorm_bound``, per element
    (the bound's worst cases, an outlier row of 768 and the old bound's failures, are in the regression tests)."""
    f = RINGS[K]
    centre = name == "layernorm"
    x, _, g, b = data.draw(norm_cases(K, f, centre, max_rows=4, max_n=16), label="rows, gamma, beta")
    fn = twin_layernorm if centre else twin_rmsnorm
    y = twin(fn, Twin(x, f), g, b, EPS, DEFAULT, K=K) if centre else twin(fn, Twin(x, f), g, EPS, DEFAULT, K=K)
    err, bound = ulps(y.real(), _true_norm(x, f, g, b, centre), f), _norm_bound(x, f, g, b, centre)
    assert np.all(err <= bound), (name, K, (err / bound).max())


# -- regressions: each corrected domain and bound at its edges --------------------------------------------------------
# The documented domains and bounds of gelu, silu, softmax_puma, the norms, reciprocal_bound and rsqrt_bound were
# once wrong (the docstrings said "all x in the ring range", "any row", "var + eps in [2^-f, 2^D)", f = 16's
# constants in f-generic helpers, and norm bounds without outliers, small gamma or large means). Each test below
# checks the corrected statement at its edge: inside, check_domain accepts and the MPC is right; just beyond,
# check_domain raises; and where the old statement claimed more, the MPC (or the twin) is shown wrong there.
def _dealer_session(K: int, N: int = 2, seed: int = 1, check_domain: bool = False):
    return mpsim.Session(parties=N, ring_bits=K, frac_bits=RINGS[K], seed=seed, backend="share", trunc="dealer",
                         check_domain=check_domain)


# GeLU / SiLU: documented domain (-2^(K-1-f) + a, 2^(K-1-f) + b), as in the docstrings.
PIECEWISE_DOMAIN = {"gelu": (3.125, -4.0), "silu": (4.0, -8.0)}


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("K", [32, 64])
def test_gelu_silu_domain_edges(K, name):
    """At the documented domain's last ring integers check_domain accepts, the three segment bits are right
    and the MPC is within slack of the twin (0 at the bottom, x at the top); one unit beyond, check_domain
    raises, and without the check a threshold comparison there (and at the ring's two ends, inside the old
    'all x in the ring range') really wraps: a segment bit is wrong. (The output then adds a wrongly selected
    piece, whose wrapped value is often, not always, far off: the bits are the deterministic symptom.)"""
    f = RINGS[K]
    a, b = PIECEWISE_DOMAIN[name]
    lo = -(1 << (K - 1)) + int(a * 2**f) + 1  # the least ring integer above -2^(K-1-f) + a
    hi = (1 << (K - 1)) + int(b * 2**f) - 1  # the largest below 2^(K-1-f) + b
    fn, tw = (protocols.gelu, twin_gelu) if name == "gelu" else (protocols.silu, twin_silu)
    inside = np.array([lo, lo + 1, hi - 1, hi], dtype=np.int64)
    s = _dealer_session(K, check_domain=True)
    ref = twin(tw, Twin(inside, f))
    assert np.array_equal(ref.v, [0, 0, hi - 1, hi])
    assert_within_slack(s, fn(share(s, inside)), ref, name)
    for beyond in (lo - 1, hi + 1):
        s = _dealer_session(K, check_domain=True)
        with pytest.raises(ValueError, match="outside its domain"):
            fn(share(s, np.array([beyond])))
    thresholds = THRESHOLDS[name]
    for xs, right in ((inside, True), (np.array([lo - 1, hi + 1, -(1 << (K - 1)), (1 << (K - 1)) - 1]), False)):
        s = _dealer_session(K)
        bits = np.stack([protocols.reveal_bits(b) & 1 for b in _segment_bits(share(s, xs), thresholds)])
        t0, t1, t2 = (int(t * 2**f) for t in thresholds)
        true = np.stack([xs < t0, xs < t1, xs > t2]).astype(np.uint64)
        assert np.all(bits == true) if right else np.all((bits != true).any(axis=0)), (name, xs, bits)


@pytest.mark.parametrize("K", [32, 64])
def test_softmax_puma_spread_domain_edges(K):
    """Documented: rows of spread below 2^(K-1-f). At spread 2^(K-1) - 1 ring units (both orders, at the
    ring's middle and at both ends) check_domain accepts and the MPC gives (1, 0) within slack of the twin; at
    spread 2^(K-1) check_domain raises (both orders), and without the check the tournament's a - b wraps:
    the row [max, min] comes out as (0, 1) (inside the old 'any row in the ring range')."""
    f = RINGS[K]
    half = 1 << (K - 1)
    rows = np.array([[half - 1, 0], [0, half - 1], [-half, -1], [-1, -half], [-(half // 2), half // 2 - 1]])
    s = _dealer_session(K, check_domain=True)
    out = protocols.softmax(share(s, rows), method="puma")
    y = s.reveal(out)
    onehot = (rows == rows.max(axis=-1, keepdims=True)).astype(float)
    assert np.abs(y - onehot).max() <= (0.11 if K == 32 else 0.003), y  # the documented bounds, n = 2
    assert_within_slack(s, out, twin(twin_softmax, Twin(rows, f), method="puma", config=DEFAULT, K=K), "softmax")
    for row in ([half - 1, -1], [-1, half - 1]):
        s = _dealer_session(K, check_domain=True)
        with pytest.raises(ValueError, match="spread"):
            protocols.softmax(share(s, np.array([row])), method="puma")
    s = _dealer_session(K)
    y = s.reveal(protocols.softmax(share(s, np.array([[half - 1, -1]])), method="puma"))
    assert np.abs(y - [[1.0, 0.0]]).max() >= 0.9, y


def _row(K: int, values, n: int = 16) -> np.ndarray:
    return np.array([list(values) + [0] * (n - len(values))], dtype=np.int64)


def _mean_row(K: int, m: int) -> np.ndarray:
    return m + np.array([[-1, 1, -1, 1]], dtype=np.int64) * (1 << RINGS[K])  # mean m (ring units), var 1


# case -> (K, centre, the documented domain's last input, the first documented-outside input, the first input
# whose truncated values leave trunc_pr's domain whatever the MPC's rounding, an input inside the old domain
# whose values wrap the ring). Derivations: k32_deviation, x = (a, 0 x 15): n = 16, rho = 0, kappa = 2, so
# (b) reads a 15/16 + 2^-7 < 128: a <= 34950 / 2^8; the square of a - mean' (mean' = floor(a/16) or + 1)
# reaches 2^30 from a = 34954 on. k32_mean / k64_mean, x = m + (-1, 1, -1, 1): n = 4, (a) reads (m + 2^(1-f))
# < 2^(K-2-2f); the mean's product m 2^f reaches 2^(K-2) at m = 2^(K-2-f) ring units. k32_rms, x = (a, 0 x 15):
# (b) reads a < 128; a^2 reaches 2^30 at a = 2^15.
NORM_EDGES = {
    "k32_deviation": (32, True, _row(32, [34950]), _row(32, [34951]), _row(32, [34954]), _row(32, [200 << 8])),
    "k32_mean": (32, True, _mean_row(32, (1 << 22) - 3), _mean_row(32, (1 << 22) - 2), _mean_row(32, 1 << 22),
                 _mean_row(32, 3 << 21)),
    "k64_mean": (64, True, _mean_row(64, (1 << 46) - 3), _mean_row(64, (1 << 46) - 2), _mean_row(64, 1 << 46),
                 _mean_row(64, 3 << 45)),
    "k32_rms": (32, False, _row(32, [(1 << 15) - 1]), _row(32, [1 << 15]), _row(32, [1 << 15]), _row(32, [182 << 8])),
}


@pytest.mark.parametrize("case", sorted(NORM_EDGES))
def test_norms_domain_edges(case):
    """The norms' documented domain (conditions (a)-(e) of layernorm's docstring) at the edges of |x - mean| <
    2^(K/2-1-f) and |mean| < 2^(K-2-2f): the documented domain's last input is accepted by check_domain and
    the MPC is within slack of the twin and within the derived bound of the true function; the next input is
    outside the documented domain; a few units further check_domain raises (a truncated value leaves
    trunc_pr's domain whatever the MPC's rounding); and it raises on an input that the old domain (var + eps
    in [2^-f, 2^D) alone) allowed, whose square or mean product wraps the ring. (Without the check such
    inputs are wrong for some dealer randomness and, where the wrap is a multiple of the ring's period that
    later products cancel, right for other: the check is the deterministic regression.)"""
    K, centre, last, first_out, raises, old_ok = NORM_EDGES[case]
    f = RINGS[K]
    fn = protocols.layernorm if centre else protocols.rmsnorm
    assert norm_in_domain(last, None, K, f, centre) and not norm_in_domain(first_out, None, K, f, centre)
    s = _dealer_session(K, check_domain=True)
    out = fn(share(s, last))
    err = ulps(s.reveal(out), _true_norm(last, f, None, None, centre), f)
    assert np.all(err <= _norm_bound(last, f, None, None, centre)), err
    ref = twin(twin_layernorm, Twin(last, f), None, None, EPS, DEFAULT, K=K) if centre else \
        twin(twin_rmsnorm, Twin(last, f), None, EPS, DEFAULT, K=K)
    assert_within_slack(s, out, ref, case)
    for x in (raises, old_ok):
        s = _dealer_session(K, check_domain=True)
        with pytest.raises(ValueError, match="trunc_pr's domain"):
            fn(share(s, x))
    xr = old_ok / 2.0**f
    var = xr.var(axis=-1) if centre else (xr**2).mean(axis=-1)
    assert np.all((var + EPS >= 2.0**-f) & (var + EPS < 2.0 ** DEFAULT.log2_max(K, f)))  # inside the old domain


def _old_ln_bound(x, g, f=16):
    xr = x / 2.0**f
    sd = xr.std(axis=-1, keepdims=True)
    return (8 + 4 / sd**2 + 3 * sd) * (1.0 if g is None else float(np.abs(g).max()))


def _old_rms_bound(x, g, f=16):
    r = np.sqrt(((x / 2.0**f) ** 2).mean(-1, keepdims=True))
    return (6 + 3 * r) * (1.0 if g is None else float(np.abs(g).max()))


def _outlier(n: int) -> np.ndarray:
    x = np.zeros((1, n), dtype=np.int64)
    x[0, 0] = 1 << 16
    return x


# case -> (centre, x (ring units, f = 16), gamma, beta): the inputs where the old bounds failed.
OLD_BOUND_FAILURES = {
    "layernorm_outlier_768": (True, _outlier(768), None, None),  # |x - mean| / s = sqrt(n - 1) = 27.7
    "rmsnorm_outlier_16": (False, _outlier(16), None, None),  # |x| / r = sqrt(n) = 4
    "layernorm_small_gamma": (True, np.array([[0, 1 << 16]]), np.full(2, 2.0**-16), np.full(2, 0.3)),  # s = 0.5
    "rmsnorm_small_gamma": (False, np.array([[0, 1 << 16]]), np.full(2, 0.3 * 2.0**-16), None),
    "rmsnorm_tiny": (False, np.array([[-1]]), None, None),  # x = -2^-16: eps encodes to 2^-16, ms to one unit
    "layernorm_large_mean": (True, np.array([[3603802] * 4 + [3669339]]), None, None),  # n = 5, mean ~ 55
}


@pytest.mark.parametrize("case", sorted(OLD_BOUND_FAILURES))
def test_norm_bounds_cover_outliers_small_gamma_small_rms_and_large_means(case):
    """f = 16: the twin within the derived bound (``layernorm_bound`` / ``rmsnorm_bound``), which is not vacuous
    there (at most 20 times the error: it takes every truncation at its worst at once, and these inputs hit
    some of them exactly), on the inputs where the old bounds ((8 + 4/s^2 + 3s) max|gamma|, (6 +
    3r) max|gamma|) failed: each exercises a corrected term (|x - mean| up to s sqrt(n - 1) instead of s; the
    gamma-independent encoding and truncation terms; the variance held to dW; the mean's rounding |mean| rho_n)."""
    centre, x, g, b = OLD_BOUND_FAILURES[case]
    f = 16
    y = twin_layernorm(Twin(x, f), g, b, EPS) if centre else twin_rmsnorm(Twin(x, f), g, EPS)
    err = ulps(y.real(), _true_norm(x, f, g, b, centre), f)
    bound = _norm_bound(x, f, g, b, centre)
    assert np.all(err <= bound) and bound.max() <= 20 * err.max(), (err.max(), bound.max())
    old = _old_ln_bound(x, g) if centre else _old_rms_bound(x, g)
    assert err.max() > np.broadcast_to(old, err.shape).max(), (err.max(), old)  # the old statement was wrong


def _mantissa_grid(f: int, K: int) -> np.ndarray:
    """Every x of the domain at f = 8 (2^20 - 1 values); at f = 16 every x below 2^(f+1) ULPs (every normalised
    mantissa at the leading bits f - 1 and f, exactly) and every mantissa at the domain's top binade with the
    bits that normalisation drops all 0 and all 1."""
    P = f + DEFAULT.log2_max(K, f)
    if f == 8:
        return np.arange(1, 1 << P, dtype=np.int64)
    top = np.arange(1 << (f - 1), 1 << f, dtype=np.int64) << (P - f)
    return np.concatenate([np.arange(1, 1 << (f + 1), dtype=np.int64), top, top + (1 << (P - f)) - 1])


@pytest.mark.parametrize("config", [DEFAULT, NEWTON, NonlinearConfig(recip_iters=2, rsqrt_iters=3)],
                         ids=["default", "newton", "iters"])
@pytest.mark.parametrize("name", ["reciprocal", "rsqrt"])
@pytest.mark.parametrize("K", [32, 64])
def test_reciprocal_rsqrt_bounds_scale_with_f(K, name, config):
    """The derived bounds, 3 + (1 + 2^(1-f)) r / x and 3 + (1 + 2^-f) r / sqrt(x) with r the iteration's relative
    error in ULPs (``_recip_rel`` / ``_rsqrt_rel``: about 2I (Goldschmidt) or 2 units of 2^-f), on the grids of
    ``_mantissa_grid``: never exceeded, and not vacuous (the worst input reaches 30% of it). At f = 8 the
    twin is 2^f ULPs off at x = 2^-f (one unit of y, which carries f bits where 1/x has 2f), which the old
    f = 16 constants (relative 5e-5 and 1.5e-5, i.e. 3.3 and 1 units of 2^-16) did not cover."""
    f = RINGS[K]
    xi = _mantissa_grid(f, K)
    x = xi / 2.0**f
    if name == "reciprocal":
        err = ulps(twin_reciprocal(Twin(xi, f), config, K=K).real(), 1 / x, f)
        bound = reciprocal_bound(x, f, config)
        old = 3 + (RECIP_E0 ** (2**config.recip_iters) + 5e-5) / x * 2.0**f
    else:
        err = ulps(twin_rsqrt(Twin(xi, f), config, K=K).real(), 1 / np.sqrt(x), f)
        bound = rsqrt_bound(x, f, config)
        e = RSQRT_E0
        for _ in range(config.rsqrt_iters):
            e = 1.5 * e * e + 0.5 * e**3
        old = 3 + (e + 1.5e-5) / np.sqrt(x) * 2.0**f
    assert np.all(err <= bound), x[np.argmax(err / bound)]
    assert (err / bound).max() >= 0.3
    if f == 8:
        assert np.any(err > old)  # the old statement was wrong at f = 8
        if name == "reciprocal" and config is DEFAULT:
            assert err[0] == 2**f  # x = 2^-8: 1/x = 256 exactly, the twin 255 (y = 1 - 2^-8)
