"""reciprocal and rsqrt (``protocols.nonlinear``): normalisation by the leading bit, Goldschmidt and
Newton iterations, rescaling; and their derived error bounds."""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor, concatenate, stack

from ..boolean import not_, xor
from ..fxp import truncate
from ..registry import call, composed_except, protocol
from .config import (RECIP_C, RECIP_E0, RSQRT_A, RSQRT_B, RSQRT_E0, NonlinearConfig, _config, _example_input,
                     _fixed, _lin_raw, _mul, _relabel)
from .costs import _RECIP_VARS_DOC, _norm_vars, _recip_cost, _recip_vars, _rsqrt_cost

def _goldschmidt(n: SharedTensor, d: SharedTensor, iters: int) -> SharedTensor:
    """n / d for d near 1: n, d <- n (2 - d), d (2 - d); both products share one Beaver call (d's factor is
    opened once, broadcast). The last step updates n only. |1 - d_k| = |1 - d_0|^(2^k)."""
    for k in range(iters):
        g = 2.0 - d
        if k == iters - 1:
            return _mul(n, g)
        nd = _mul(stack([n, d]), g)
        n, d = nd[0], nd[1]
    return n


def _onehot_msb(x: SharedTensor, P: int) -> SharedTensor:
    """Boolean one-hot (shape x.shape + (P,)) of pos = floor(log2 x_ring), clamped to [0, P-1].

    The thermometer t_j = [x_ring < 2^j] (j = 1..P-1) comes from one batched MSB call; then h_0 = t_1,
    h_j = t_{j+1} xor t_j, h_{P-1} = not t_{P-1} (local)."""
    xi = _relabel(x, 0).reshape(x.shape + (1,))
    t = call("msb", xi - np.array([1 << j for j in range(1, P)], dtype=np.int64))
    parts = [t[..., :1]]
    if P > 2:
        parts.append(xor(t[..., 1:], t[..., :-1]))
    parts.append(not_(t[..., -1:]))
    return concatenate(parts, axis=-1)


def _normalise(x: SharedTensor, P: int, D: int):
    """(one-hot h, x_n) with x_n = x 2^(f-1-pos) in [0.5, 1) at scale f: one select, one truncation by D."""
    f = x.frac
    h = _onehot_msb(x, P)
    hx = call("bit_select", h, _relabel(x, 0).reshape(x.shape + (1,)))
    z = (hx * np.array([1 << (P - 1 - j) for j in range(P)], dtype=np.int64)).sum(axis=-1)
    return h, truncate(_relabel(z, f + D), D)


def _rescale(h: SharedTensor, y: SharedTensor, weights: np.ndarray, S: int) -> SharedTensor:
    """y * v_pos / 2^S: one select by the one-hot, a public-weighted sum, one truncation by S."""
    hy = call("bit_select", h, y.reshape(y.shape + (1,)))
    z = (hy * weights).sum(axis=-1)
    return truncate(_relabel(z, y.frac + S), S)


def _normalised_input(x: SharedTensor, config, what: str, normalise=None):
    """reciprocal's and rsqrt's first steps: (configuration, f, P = f + D, one-hot h of the leading bit,
    x_n = x 2^(f-1-pos) in [0.5, 1)), after the domain check; ``normalise(x, P, D)`` makes (h, x_n) (default:
    ``_normalise``; the FSS suite's is one gate)."""
    x = _fixed(x)
    cfg = _config(x.session, config)
    f = x.frac
    D = cfg.log2_max(x.session.ring.bits, f)
    P = f + D
    _check_domain(x, P, D, what)
    h, xn = (normalise or _normalise)(x, P, D)
    return cfg, f, P, h, xn


def _recip_weights(f: int, P: int) -> np.ndarray:
    """v_j = 2^(f-1-j) at scale S = f + 1, i.e. 2^(2f - j), and 0 where that is below one unit."""
    return np.array([1 << (2 * f - j) if j <= 2 * f else 0 for j in range(P)], dtype=np.int64)


def _rsqrt_weights(f: int, P: int) -> np.ndarray:
    """v_j = round(2^((f-1-j)/2) 2^S), S = f + 1."""
    return np.array([int(np.rint(2.0 ** ((f - 1 - j) / 2 + f + 1))) for j in range(P)], dtype=np.int64)


def _check_domain(x: SharedTensor, P: int, D: int, what: str) -> None:
    session = x.session
    if not session.check_domain or not session.backend.has_data:
        return
    # A debugging check outside the protocol: reads the value without sending anything.
    values = session.ring.to_signed(session.backend.open(x.payload))
    if values.size and (values.min() <= 0 or values.max() >= (1 << P)):
        lo, hi = values.min() / 2.0**x.frac, values.max() / 2.0**x.frac
        raise ValueError(
            f"{what}: input outside its domain [2^-{x.frac}, 2^{D}) (check_domain): values span [{lo}, {hi}]; "
            f"non-positive inputs have no {what} here, larger ones need NonlinearConfig(norm_log2_max=...)"
        )


@protocol(
    "reciprocal",
    scheme=composed_except("fss"),  # the FSS suite's own: protocols/fss
    cost=_recip_cost,
    ref="MSB normalisation (Catrina-Saxena, FC 2010; SPU reciprocal) + Goldschmidt (1964) / Newton-Raphson",
    dims=lambda x, config=None: {"m": x.size, **_recip_vars(x.session, _config(x.session, config), x.frac)},
    example=_example_input(np.array([[0.5, 1.0, 1.5, 3.0, 7.25, 10.0, 33.0, 100.0]] * 2)),
    vars_doc="m = elements; " + _RECIP_VARS_DOC,
)
def reciprocal(x: SharedTensor, config: NonlinearConfig | None = None) -> SharedTensor:
    """1/x elementwise for positive x, normalised by the position of x's leading bit.

    Domain: x in [2^-f, 2^D) (D = config.log2_max(K, f): 21 at K = 64, i.e. x < 2 097 152; 12 at K = 32).
    Steps (P = f + D bit positions of x's ring integer):
      1. Thermometer: t_j = [x < 2^(j-f)] for j = 1..P-1, one batched MSB call; one-hot of the leading bit
         h_j = t_{j+1} xor t_j (local).
      2. Normalise: select(h, x) and the public-weighted sum sum_j h_j x 2^(P-1-j), truncated by D, give
         x_n = x 2^(f-1-pos) in [0.5, 1) (one select: no B2A of h is needed).
      3. y0 = C - 2 x_n with C = 4 sqrt(3) - 4, so |1 - x_n y0| <= 0.0718 (local: the slope is an integer).
      4. Goldschmidt (default): n0 = y0, d0 = x_n y0, then I steps n, d <- n (2-d), d (2-d) (one Beaver
         call each); Newton: I steps y <- y (2 - x_n y) (two products each).
      5. Rescale: select(h, y) and sum_j h_j y 2^(2f-j) (weights below one unit are 0), truncated by f + 1,
         give y 2^(f-1-pos) = 1/x.
    Rounds: log2 K + 3 + J + TR (2 + J), J = I + 1 (Goldschmidt) or 2I (Newton): 13 for K = 64, N = 2.
    Comm: an msb of P - 1 values, two selects of P bits and one value, and 3I + 1 (or 4I) opened elements
    per element; TC per truncated element (2 + 2I of them).
    Leaks: nothing beyond the output.
    Ref: normalisation by the leading bit as in Catrina-Saxena (FC 2010) and SPU's reciprocal; Goldschmidt,
    "Applications of division by convergence" (MIT, 1964); Newton-Raphson division.

    Error (any f, derived; ``reciprocal_bound``, which holds for the twin and for share-backend runs):
    |y - 1/x| <= (3 + (1 + 2^(1-f)) r_I / x) 2^-f, where r_I 2^-f bounds the iteration's relative error
    |x_n y - 1| (``_recip_rel``: about 0.0718^(2^I) + 2I 2^-f for Goldschmidt, whose truncation errors of d are
    never corrected; about 2^(1-f) for Newton, which corrects them): r_3 = 6.09 at f = 16 and 6.13 at f = 8
    (Goldschmidt), 2.0 (Newton, I = 3). So the relative error is at most 9.3e-5 at f = 16 and 0.024 at
    f = 8 (K = 32), largest near x = 2^-f, where 1/x holds 2f bits but y only f: at f = 8, x = 2^-8 the twin
    is 256 ULPs (one unit of y, i.e. 2^-8 relative) off. Measured on the twin at f = 16: at most 3 ULPs for
    x in [1, 2^20] (2.8) and a relative error of 2.3e-5 near 2^-f; at f = 8 (every x of the domain): at most
    2.5 ULPs for x >= 1, relative 0.0102 for x < 1. For x >= 2^(f+1) the result is 0 (the true value is below
    half a unit).
    Out of domain (x <= 0 or x >= 2^D) the output is meaningless and nothing is raised, unless
    Session(check_domain=True). The normalising product sits below 2^(f+D) and the rescaling one below
    2^(2f+1)/x (ring units), which bounds the local-truncation failure rate (2^-26 and, for x >= 1, 2^-30
    at K = 64, f = 16).
    """
    cfg, f, P, h, xn = _normalised_input(x, config, "reciprocal")
    y0 = RECIP_C - xn * 2
    if cfg.recip_method == "goldschmidt":
        y = _goldschmidt(y0, _mul(xn, y0), cfg.recip_iters)
    else:
        y = y0
        for _ in range(cfg.recip_iters):
            y = _mul(y, 2.0 - _mul(xn, y))
    return _rescale(h, y, _recip_weights(f, P), f + 1)




@protocol(
    "rsqrt",
    scheme=composed_except("fss"),  # the FSS suite's own: protocols/fss
    cost=_rsqrt_cost,
    ref="MSB normalisation (Catrina-Saxena 2010; SPU rsqrt) + Newton-Raphson for 1/sqrt(x)",
    dims=lambda x, config=None: {"m": x.size, "I": _config(x.session, config).rsqrt_iters,
                                 **_norm_vars(x.session, _config(x.session, config), x.frac)},
    example=_example_input(np.array([[0.5, 1.0, 1.5, 3.0, 7.25, 10.0, 33.0, 100.0]] * 2)),
    vars_doc="m = elements; I = Newton iterations; P = f + D normalisation positions",
)
def rsqrt(x: SharedTensor, config: NonlinearConfig | None = None) -> SharedTensor:
    """1/sqrt(x) elementwise for positive x, normalised by the position of x's leading bit.

    Domain: x in [2^-f, 2^D), as for ``reciprocal``.
    Steps:
      1-2. One-hot of the leading bit and x_n = x 2^(f-1-pos) in [0.5, 1), as in ``reciprocal``.
      3. y0 = 1.7877 - 0.8100 x_n (one truncation): |y0 sqrt(x_n) - 1| <= 0.0223.
      4. I Newton steps y <- 1.5 y - 0.5 x_n y^3: [x_n y, y^2] in one Beaver call (y opened once), then
         their product, combined with 3 y at scale 2f + 1 and truncated once. Error e -> 1.5 e^2.
      5. Rescale by the public weights round(2^((f-1-j)/2) 2^(f+1)) (the odd exponents carry sqrt(2) in the
         weight): select(h, y), weighted sum, truncation by f + 1.
    Rounds: log2 K + 3 + 2I + TR (3 + 2I): 13 for K = 64, N = 2, I = 2.
    Comm: an msb of P - 1 values, two selects of P bits and one value, 5I opened elements per element;
    TC per truncated element (3 + 3I of them).
    Leaks: nothing beyond the output.
    Ref: Catrina-Saxena (FC 2010) normalisation; SPU's rsqrt; Newton-Raphson for the inverse square root.

    Error (any f, derived; ``rsqrt_bound``, for the twin and share-backend runs): |y - 1/sqrt(x)| <= (3 + (1
    + 2^-f) r_I / sqrt(x)) 2^-f, where r_I 2^-f bounds |y sqrt(x_n) - 1| (``_rsqrt_rel``: Newton squares the
    error, e -> 1.5 e^2, so only the last step's truncations remain, about 2^(1-f)): r_2 = 2.06 at f = 16
    (relative 3.1e-5) and 2.05 at f = 8 (relative 0.008). Measured on the twin: at most 3 ULPs for x >= 1
    and relative 1.6e-5 near 2^-f (f = 16); at f = 8 (every x of the domain) at most 3.2 ULPs (at x = 3/256;
    1.3 for x >= 1), relative 0.0043 for x < 1. Out of domain as for ``reciprocal``.
    """
    cfg, f, P, h, xn = _normalised_input(x, config, "rsqrt")
    y = truncate(_lin_raw([(xn, -RSQRT_B)], f), f) + RSQRT_A
    for _ in range(cfg.rsqrt_iters):
        prods = _mul(stack([xn, y]), y)  # x_n y and y^2
        m_raw = call("ring_mul", prods[0], prods[1])  # x_n y^3 at scale 2f
        y = truncate(_relabel(y._mul_public_int(3 << f), 2 * f + 1) - _relabel(m_raw, 2 * f + 1), f + 1)
    return _rescale(h, y, _rsqrt_weights(f, P), f + 1)


# Error bounds. Every one is derived for truncations that are each off by less than one unit of their result
# either way: it covers the twin (floor) and every share-backend run (floor or floor + 1) on the same input.
def _recip_rel(f: int, config: NonlinearConfig | None = None) -> float:
    """Derived bound on |a y - 1| for reciprocal's iteration on a normalised a in [1/2, 1] (u = 2^-f).

    y0 = C' - 2a is exact (C' = C encoded: |C' - C| <= u/2), so |1 - a y0| <= E0 + u/2, E0 = 0.0718.
    Goldschmidt (I steps): e_k = 1 - d_k and Q_k = a n_k - d_k. d0 = a y0 truncated: |e_0| <= E0 + 3u/2,
    |Q_0| <= u. A step n, d <- n (2 - d), d (2 - d), each truncated (errors below u), gives e_(k+1) =
    e_k^2 - err_d, so |e_(k+1)| <= e_k^2 + u, and Q_(k+1) = Q_k (1 + e_k) + a err_n - err_d, so |Q_(k+1)| <=
    |Q_k| (1 + |e_k|) + 2u. The last step updates n only: a y - 1 = -e^2 + Q (1 + e) + a err_y, hence
    |a y - 1| <= e_(I-1)^2 + |Q_(I-1)| (1 + |e_(I-1)|) + u. (The truncation errors of d are not corrected
    by later steps, since n absorbs them and d does not: about 2I u in all.)
    Newton (I steps): e_k = 1 - a y_k, |e_0| <= E0 + u/2; y <- y (2 - a y) with both products truncated
    gives e_(k+1) = e_k^2 + a y_k err_1 - a err_2, so |e_(k+1)| <= e_k^2 + (2 + |e_k|) u; the bound is |e_I|.
    """
    cfg = config or NonlinearConfig()
    u = 2.0**-f
    if cfg.recip_method == "goldschmidt":
        e, q = RECIP_E0 + 1.5 * u, u
        for _ in range(cfg.recip_iters - 1):
            q = q * (1 + e) + 2 * u
            e = e * e + u
        return e * e + q * (1 + e) + u
    e = RECIP_E0 + 0.5 * u
    for _ in range(cfg.recip_iters):
        e = e * e + (2 + e) * u
    return e


def _rsqrt_rel(f: int, config: NonlinearConfig | None = None) -> float:
    """Derived bound on |y sqrt(a) - 1| for rsqrt's iteration on a normalised a in [1/2, 1] (u = 2^-f).

    y0 = A' - B' a - err (A, B encoded, one truncation): |e_0| <= E0 + 2u, E0 = 0.02226, e = y sqrt(a) - 1.
    A step computes p1 = a y, p2 = y^2 (truncated), m = p1 p2 (exact) and y' = (3y - m) / 2 (truncated): with
    y = (1 + e) / sqrt(a), y' sqrt(a) - 1 = -(3/2) e^2 - e^3 / 2 + sqrt(a) [(err_1 y^2 + err_2 a y - err_1
    err_2) / 2 - err_3], and sqrt(a) y^2 / 2 + sqrt(a) a y / 2 = (1 + e)^2 / sqrt(a) / 2 + a (1 + e) / 2 <= (1
    + |e|)^2 on [1/2, 1]: |e'| <= 1.5 e^2 + 0.5 |e|^3 + u ((1 + |e|)^2 + 1 + u/2). The bound is |e_I|."""
    cfg = config or NonlinearConfig()
    u = 2.0**-f
    e = RSQRT_E0 + 2 * u
    for _ in range(cfg.rsqrt_iters):
        e = 1.5 * e * e + 0.5 * e**3 + u * ((1 + e) ** 2 + 1 + u / 2)
    return e


def reciprocal_bound(x_real, f: int, config: NonlinearConfig | None = None) -> np.ndarray:
    """Derived bound on |reciprocal(x) - 1/x|, in units of 2^-f, for x in the domain [2^-f, 2^D), for any f:
    3 + (1 + 2^(1-f)) r / x with r = 2^f ``_recip_rel(f, config)`` (the iteration's relative error in ULPs:
    6.09 at f = 16 and 6.13 at f = 8 for the default Goldschmidt, I = 3; 2.0 for Newton, I = 3).

    Derivation (x = x_n 2^(pos+1-f), pos the leading bit; 1/x = 2^(f-1-pos) / x_n): the output is y
    2^(f-1-pos), truncated. For x < 1 (pos < f) the normalisation and the rescaling are exact (multiples of
    the divisor), so the error is 2^(f-1-pos) |y - 1/a| = |a y - 1| / x. For x >= 1 the normalised a is x_n
    truncated to f bits (|a - x_n| < 2^-f, costing 2^-f / (a x) <= 2 / x ULPs and the factor x_n / a <= 1 +
    2^(1-f) on the relative term) and the rescaling truncates once (1 ULP): 3 ULPs for x >= 1. For x >=
    2^(f+1) the weights are 0 and so is the result (1/x is below half a unit). Holds for the twin and for
    share-backend runs (see the note above)."""
    x_real = np.asarray(x_real, dtype=np.float64)
    return 3.0 + (1 + 2.0 ** (1 - f)) * _recip_rel(f, config) * 2.0**f / x_real


def rsqrt_bound(x_real, f: int, config: NonlinearConfig | None = None) -> np.ndarray:
    """Derived bound on |rsqrt(x) - 1/sqrt(x)|, in units of 2^-f, for x in the domain, for any f: 3 + (1 +
    2^-f) r / sqrt(x) with r = 2^f ``_rsqrt_rel(f, config)`` (2.06 at f = 16, 2.05 at f = 8, I = 2).

    Derivation: 1/sqrt(x) = 2^((f-1-pos)/2) / sqrt(x_n); the rescaling multiplies y by the weight
    round(2^((f-1-pos)/2 + f + 1)) and truncates by f + 1: the weight's rounding costs at most y / 4 <= 0.36
    ULP, the truncation 1 ULP, the normalisation (x >= 1 only, |a - x_n| < 2^-f) at most 1 / sqrt(x) <= 1
    ULP and the factor sqrt(x_n / a) <= 1 + 2^-f on the relative term |y sqrt(a) - 1| / sqrt(x)."""
    x_real = np.asarray(x_real, dtype=np.float64)
    return 3.0 + (1 + 2.0**-f) * _rsqrt_rel(f, config) * 2.0**f / np.sqrt(x_real)
