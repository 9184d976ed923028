"""Non-linear functions of a transformer in fixed point on secret-shared tensors, with plaintext twins.

exp, reciprocal, rsqrt, softmax (exact and PUMA-style), GeLU, SiLU, LayerNorm and RMSNorm, built from the
ring protocols (Beaver products, truncation, MSB, bit selection). Every approximation knob sits in one
:class:`NonlinearConfig` (``Session(approx=...)`` or a ``config=`` argument). Every public function is
registered with its declared cost; where that cost depends on the configuration, the entry's ``dims``
reads the configuration of the actual call, so the declaration is exact for any configuration.

Fixed-point conventions used throughout (f = fractional bits of the input):

* a "product" is a Beaver product followed by one truncation (floor, or floor + 1 ULP);
* a linear combination with public real coefficients is formed at double scale (ring products by the
  encoded coefficients are local) and truncated once;
* polynomials are evaluated in z = x / 4, which is x's ring integer read at scale f + 2 (no truncation), so
  that powers of z stay below 1 and coefficients near 1 keep their precision after encoding.

Truncations follow the engine: exact floor in the ideal backend, floor or floor + 1 (stochastic rounding,
unbiased) in the share backend. No rounding offset is added: it would un-bias the ideal backend but bias the
real protocols by half a unit per truncation, which the squarings of exp amplify 2^t-fold.

Each approximation has a twin in plain numpy (:class:`Twin`, ``twin_*``): the same steps on the same
fixed-point grid with floor truncation, carrying a bound on how far an MPC run can be from it (every
truncation may add one ULP; input differences propagate through products). The ideal backend equals the
twin exactly; the share backend stays within the bound. The docstrings state each function's domain
(derived from the ring: where a comparison's difference or a truncated value would leave its range; checked
under ``Session(check_domain=True)``) and its error against the true function at f = 16 and at K = 32
(f = 8): measured on the twin (exhaustively for the elementwise functions at f = 8) or derived for any f
(``reciprocal_bound``, ``rsqrt_bound``, ``layernorm_bound``, ``rmsnorm_bound``, softmax at K = 32).
tests/test_nonlinear.py and tests/test_nonlinear_properties.py check them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from mpsim.tensor import SharedTensor, concatenate, stack

from .boolean import not_, xor
from .cost import Expr, Formula
from . import fxp
from .fxp import truncate
from .reduce import levels
from .reduce import max as _reduce_max
from .registry import call, protocol

EXP_METHODS = ("limit", "pade")
RECIP_METHODS = ("goldschmidt", "newton")

# Reciprocal on [0.5, 1): y0 = C - 2x with C = 4 sqrt(3) - 4 (the slope 2 keeps y0 free of truncation; this C
# equalises the extremes of 1 - x y0 = 1 - Cx + 2x^2 at x = 1 and x = C/4: max |1 - x y0| = 3 - C = 0.0718).
RECIP_C = 4.0 * math.sqrt(3.0) - 4.0
RECIP_E0 = 3.0 - RECIP_C
# rsqrt on [0.5, 1): minimax relative error of a linear guess, max |y0 sqrt(x) - 1| = 0.02226 (Nelder-Mead on
# a grid of 20001 points).
RSQRT_A, RSQRT_B = 1.787727479911323, 0.8099868548047122
RSQRT_E0 = 0.022259374893396133
# Pade [2/2] of e^u on u in [-0.875, 0]: Q(u) = 1 - u/2 + u^2/12 lies in [1, Q(-0.875)]; the Goldschmidt
# division starts from the constant 2 / (1 + Q(-0.875)), so |1 - c Q| <= (Qmax - 1)/(Qmax + 1) = 0.2004.
PADE_UMAX = 0.875
_PADE_QMAX = 1.0 + PADE_UMAX / 2 + PADE_UMAX**2 / 12
PADE_C = 2.0 / (1.0 + _PADE_QMAX)
PADE_E0 = (_PADE_QMAX - 1.0) / (_PADE_QMAX + 1.0)

# GeLU pieces (our fit, see gelu's docstring): 0 below -4; cubic on [-4, -2); 0.5x + even octic on
# [-2, 3.125]; x above 3.125. Coefficients of powers of x.
GELU_T0, GELU_T1, GELU_T2 = -4.0, -2.0, 3.125
GELU_LOW = (-0.49294084525197385, -0.4086232387088689, -0.11339043848812051, -0.01051450646466929)
GELU_MID = (2.4296359232707145e-03, 3.8422762470953042e-01, -5.1900071805092089e-02, 4.4810421770892983e-03,
            -1.5624932381771070e-04)  # x^0, x^2, x^4, x^6, x^8
# SiLU pieces of MPCache's hack_silu (mpcache.md 8.3), copied exactly.
SILU_SEG1 = (-0.3067541139982155, -0.0819767021525476, -0.0055465625580307)  # x^0, x^1, x^2 on [-8, -4)
SILU_SEG2 = (0.0085064025895951, 0.2281430841728270, -0.011113046708173, 0.0002743776353465)  # x^0,2,4,6
POLY_SHIFT = 2  # polynomials are evaluated in z = x / 2^POLY_SHIFT


@dataclass(frozen=True)
class NonlinearConfig:
    """All approximation knobs of the non-linear protocols (defaults in brackets).

    * ``exp_method`` ["limit"]: "limit" is (1 + x/2^t)^(2^t) with t = ``exp_iters`` [8] squarings; "pade" is
      the [2/2] Pade approximant of e^(x/2^s) (a Goldschmidt division of ``exp_pade_iters`` [3] steps),
      raised to 2^s by s = ``exp_pade_squarings`` [4] squarings.
    * ``exp_clip`` [None]: exp returns 0 below this threshold (one comparison and one selection).
    * ``recip_method`` ["goldschmidt"] or "newton", ``recip_iters`` [3]; ``rsqrt_iters`` [2] Newton steps.
    * ``norm_log2_max`` [None]: reciprocal and rsqrt accept x in [2^-f, 2^D) with D this value; None picks
      D = min(21, K - f - 12): 21 for K = 64 (f <= 24), 12 for K = 32, f = 8. The normalising product stays
      below 2^(f + D), so its local truncation fails with probability about 2^(f + D + 1 - K): 2^-26 at
      K = 64, f = 16; 2^-11 at K = 32, f = 8 (the level of K = 32's own products of values near 16).
    * ``puma_exp_method`` ["pade"] and ``puma_clip`` [-14.0]: the exp used by ``softmax(method="puma")``.
    * ``softmax_method`` ["exact"]: what ``softmax`` runs when no method is passed: "exact" or "puma" (the
      MPCache reference scripts' ``hack_softmax``, so ``NonlinearConfig(softmax_method="puma")`` is their
      configuration; ``silu`` already uses their coefficients).
    """

    exp_method: str = "limit"
    exp_iters: int = 8
    exp_pade_squarings: int = 4
    exp_pade_iters: int = 3
    exp_clip: float | None = None
    recip_method: str = "goldschmidt"
    recip_iters: int = 3
    rsqrt_iters: int = 2
    norm_log2_max: int | None = None
    puma_exp_method: str = "pade"
    puma_clip: float | None = -14.0
    softmax_method: str = "exact"

    def __post_init__(self):
        _check_softmax_method(self.softmax_method)
        for name, allowed in (("exp_method", EXP_METHODS), ("puma_exp_method", EXP_METHODS),
                              ("recip_method", RECIP_METHODS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("exp_iters", "exp_pade_squarings", "exp_pade_iters", "recip_iters", "rsqrt_iters"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= 30:
                raise ValueError(f"{name} must be an integer in [1, 30], got {value!r}")
        if self.norm_log2_max is not None and (not isinstance(self.norm_log2_max, (int, np.integer))
                                               or self.norm_log2_max < 1):
            raise ValueError(f"norm_log2_max must be a positive integer or None, got {self.norm_log2_max!r}")
        for name in ("exp_clip", "puma_clip"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number or None, got {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    def log2_max(self, K: int, f: int) -> int:
        """D: reciprocal and rsqrt take x in [2^-f, 2^D), normalised over P = f + D bit positions."""
        D = self.norm_log2_max if self.norm_log2_max is not None else max(1, min(21, K - f - 12))
        if f + D > K - 2:
            raise ValueError(f"norm_log2_max = {D} leaves no room in a {K}-bit ring with {f} fractional bits")
        return int(D)

    def puma(self) -> "NonlinearConfig":
        """The configuration softmax(method="puma") hands to exp."""
        return replace(self, exp_method=self.puma_exp_method, exp_clip=self.puma_clip)


def _config(session, config) -> NonlinearConfig:
    if config is None:
        config = getattr(session, "approx", None) or NonlinearConfig()
    if not isinstance(config, NonlinearConfig):
        raise TypeError(f"config must be a NonlinearConfig, got {type(config).__name__}")
    return config


# -- small local helpers ---------------------------------------------------------------------------------------
def _relabel(t: SharedTensor, frac: int) -> SharedTensor:
    """The same ring elements under another fixed-point scale (no arithmetic)."""
    return t._like(t.payload, t.shape, frac=frac)


def _mul(a: SharedTensor, b: SharedTensor, check: str | None = None) -> SharedTensor:
    """Fixed-point product: a Beaver product (a square when a is b), then one truncation by the smaller
    scale. (As ``protocols.fxp.mul``; spelled out here so every product in this module is visibly one.)
    ``check`` names the product for ``_check_trunc_input`` (under check_domain only; nothing is sent)."""
    return fxp.mul(a, b, inspect=None if check is None else lambda raw: _check_trunc_input(raw, check))


def _fixed(x: SharedTensor) -> SharedTensor:
    if not isinstance(x, SharedTensor) or x.kind != "A":
        raise TypeError("non-linear functions take an arithmetic SharedTensor")
    if x.frac == 0:
        if x.session.frac_bits == 0:
            raise ValueError("non-linear functions need a fixed-point scale (frac_bits > 0)")
        x = x._scale_up(x.session.frac_bits)
    return x


def _enc(c: float, frac: int) -> int:
    return int(np.rint(c * 2.0**frac))


def _lin_raw(parts, F: int) -> SharedTensor:
    """sum_i c_i t_i at scale 2F, untruncated: t_i at scale F times its coefficient encoded at F (local)."""
    acc = None
    for t, c in parts:
        if t.frac != F:
            raise AssertionError(f"term at scale {t.frac}, expected {F}")
        term = _relabel(t._mul_public_int(_enc(c, F)), 2 * F)
        acc = term if acc is None else acc + term
    return acc


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


def _checked_values(x: SharedTensor):
    """x's signed ring integers for a check_domain check, or None (check off, or no data: count backend).
    A debugging check outside the protocol: reads the value without sending anything."""
    session = x.session
    if not session.check_domain or not session.backend.has_data:
        return None
    return session.ring.to_signed(session.backend.open(x.payload))


def _check_ring_range(x: SharedTensor, lo: int, hi: int, what: str, why: str) -> None:
    """Under check_domain: every ring integer of x in [lo, hi]."""
    values = _checked_values(x)
    if values is not None and values.size and (values.min() < lo or values.max() > hi):
        s = 2.0**x.frac
        raise ValueError(f"{what}: input outside its domain [{lo / s}, {hi / s}] (check_domain): values span "
                         f"[{values.min() / s}, {values.max() / s}]; {why}")


def _check_trunc_input(raw: SharedTensor, what: str) -> None:
    """Under check_domain: a value about to be truncated lies in trunc_pr's domain [-2^(K-2), 2^(K-2)) (ring
    integers). Beyond it dealer truncation may be wrong (and the value may already have wrapped the ring);
    local truncation is then wrong with probability about 1/2 (2^(l+1-K) for |v| < 2^l)."""
    values = _checked_values(raw)
    K = raw.session.ring.bits
    if values is not None and values.size and (values.min() < -(1 << (K - 2)) or values.max() >= 1 << (K - 2)):
        s = 2.0**raw.frac
        raise ValueError(f"{what}: a truncated value leaves trunc_pr's domain [-2^{K - 2}, 2^{K - 2}) ring units "
                         f"(check_domain): values span [{values.min() / s}, {values.max() / s}] at scale "
                         f"2^-{raw.frac} (the input is outside the documented domain)")


def _check_exp_domain(x: SharedTensor, cfg: NonlinearConfig) -> None:
    """Under check_domain: the limit method diverges below -2^(t+1), Pade degrades below -0.875 2^s (values
    below a configured clipping threshold are fine: they are clipped to 0)."""
    session = x.session
    if not session.check_domain or not session.backend.has_data:
        return
    values = session.ring.decode(session.backend.open(x.payload), x.frac)
    if cfg.exp_clip is not None:
        values = values[values >= cfg.exp_clip]
    lowest = -(2.0 ** (cfg.exp_iters + 1)) if cfg.exp_method == "limit" else -0.875 * 2.0**cfg.exp_pade_squarings
    if values.size and values.min() < lowest:
        raise ValueError(f"exp: input {values.min()} below its domain [{lowest}, ...) (check_domain); "
                         "clip it (NonlinearConfig(exp_clip=...)) or use more iterations")


def _last_axis(x: SharedTensor, axis: int) -> tuple[SharedTensor, bool]:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise np.exceptions.AxisError(f"axis must be an integer in [{-max(x.ndim, 1)}, {max(x.ndim, 1) - 1}], "
                                      f"got {axis!r}")
    if not -max(x.ndim, 1) <= axis < max(x.ndim, 1):
        raise np.exceptions.AxisError(axis, x.ndim)
    axis = axis % x.ndim if x.ndim else 0
    if axis == x.ndim - 1:
        return x, False
    return x.swapaxes(axis, -1), True


# -- cost formulas (strings over K, N, TR, TC, TO and the dims variables) ------------------------------------
MSB_C = "(K + 2*(2*K - 2 - log2(K)))"  # bits per element each party sends to each other party in msb
MSB_O = "(3*K - 2 - log2(K))"  # offline bits per element of msb


def _trunc(n: str) -> Formula:
    """One truncation of each of n elements: the scheme's per-element terms TR, TC, TO (``declare_truncation``)."""
    return Formula.of("TR", "TC*n", "TO*n").at(n=n)


def _after_product(n: str) -> Formula:
    """What truncating a product's n outputs adds to it: TRp, TCp, TOp (``declare_truncation``)."""
    return Formula.of("TRp", "TCp*n", "TOp*n").at(n=n)


def _fmul(d, nx: str, ny: str, n: str) -> Formula:
    """A fixed-point product (``_mul``): the scheme's ring product and the truncation of its output."""
    return d.ring_mul.at(nx=nx, ny=ny, n=n) + _after_product(n)


def _fsquare(d, n: str) -> Formula:
    return d.ring_square.at(n=n) + _after_product(n)


def _goldschmidt_cost(d, iters: str, m: str) -> Formula:
    """``_goldschmidt`` on m elements: iters - 1 stacked products (2m by m), then one of m."""
    return _fmul(d, f"2*{m}", m, f"2*{m}") * (Expr(iters) - 1) + _fmul(d, m, m, m)


def _exp_cost(d, n: str = "n") -> Formula:
    """exp, composed from the scheme's cells (see ``exp``'s steps); lim, t, s, q, c as in its variables."""
    limit = _trunc(n) + _fsquare(d, n) * Expr("t")
    pade = (_trunc(n) + _fsquare(d, n) + _trunc(f"2*{n}") + _goldschmidt_cost(d, "q", n)
            + _fsquare(d, n) * Expr("s"))
    core = limit * Expr("lim") + pade * Expr("1 - lim")
    # clipping: the comparison runs beside the polynomial, then one selection
    return (core | d.msb.at(n=n) * Expr("c")) + d.bit_select.at(nb=n, ny=n, n=n) * Expr("c")


def _recip_cost(d, m: str = "m") -> Formula:
    """reciprocal on m elements (see its steps): the one-hot of the leading bit, normalisation, the iteration
    (Goldschmidt when gs, else Newton), rescaling."""
    onehot = d.msb.at(n=f"{m}*(P-1)")
    select_truncate = d.bit_select.at(nb=f"{m}*P", ny=m, n=f"{m}*P") + _trunc(m)
    goldschmidt = _fmul(d, m, m, m) + _goldschmidt_cost(d, "I", m)
    newton = _fmul(d, m, m, m) * Expr("2*I")
    return onehot + select_truncate + (goldschmidt * Expr("gs") + newton * Expr("1 - gs")) + select_truncate


def _softmax_cost(d) -> Formula:
    """The row max, exp of x - max, one reciprocal per row, one broadcast product: the callees' cells."""
    return d.max.at(rows="R") + d.exp.at(n="R*n") + d.reciprocal.at(m="R") + _fmul(d, "R*n", "R", "R*n")


BOTH = ("additive", "aby3")


def _rsqrt_formulas(m: str) -> dict:
    rounds = "log2(K) + 3 + 2*I + TR*(3 + 2*I)"
    return {
        "rounds": rounds,
        "calls": rounds,
        "comm": f"(N-1)*{m}*((P-1)*{MSB_C} + 2*(P + K) + 5*K*I) + TC*{m}*(3 + 3*I)",
        "offline": f"{m}*((P-1)*{MSB_O} + 4*K*P + 3*K*I) + TO*{m}*(3 + 3*I)",
    }


def _norm_formulas(centre: bool) -> dict:
    r = _rsqrt_formulas("R")
    k = 6 if centre else 4  # truncation rounds outside rsqrt and the final product
    means = "4*R" if centre else "2*R"
    gamma_comm = "gs*(K*(N-1)*(R*n + ng) + TC*R*n) + gp*TC*R*n"
    gamma_off = "gs*(K + TO)*R*n + gp*TO*R*n"
    return {
        "rounds": f"2 + {k}*TR + {r['rounds']}",
        "calls": f"2 + {k}*TR + {r['rounds']} + gs*(1 + TR) + gp*TR",
        "comm": f"K*(N-1)*R*n + TC*({means} + R*n) + {r['comm']} + {gamma_comm} + K*(N-1)*R*(n+1) + TC*R*n",
        "offline": f"K*R*n + TO*({means} + R*n) + {r['offline']} + {gamma_off} + K*R*n + TO*R*n",
    }


def _exp_vars(cfg: NonlinearConfig) -> dict:
    return {"lim": int(cfg.exp_method == "limit"), "t": cfg.exp_iters, "s": cfg.exp_pade_squarings,
            "q": cfg.exp_pade_iters, "c": int(cfg.exp_clip is not None)}


def _norm_vars(session, cfg: NonlinearConfig, frac: int) -> dict:
    f = frac or session.frac_bits
    return {"P": f + cfg.log2_max(session.ring.bits, f)}


def _recip_vars(session, cfg, frac) -> dict:
    return {"gs": int(cfg.recip_method == "goldschmidt"), "I": cfg.recip_iters, **_norm_vars(session, cfg, frac)}


_EXP_VARS_DOC = ("n = elements; lim = 1 for the limit method (t squarings), 0 for Pade (s squarings, q division "
                 "steps); c = 1 when clipping")
_RECIP_VARS_DOC = "I = iterations; gs = 1 for Goldschmidt, 0 for Newton; P = f + D normalisation positions"


def _example_input(values):
    return lambda s: ((s.input(values),), {})


# -- exp ---------------------------------------------------------------------------------------------------------
@protocol(
    "exp",
    scheme=BOTH,
    cost=_exp_cost,
    ref="limit: CrypTen (Knott et al., NeurIPS 2021); Pade [2/2] with squaring: SPU fxp_exp_mode=1 / PUMA",
    dims=lambda x, config=None: {"n": x.size, **_exp_vars(_config(x.session, config))},
    example=_example_input(np.linspace(-6.0, 0.5, 16).reshape(2, 8)),
    vars_doc=_EXP_VARS_DOC,
)
def exp(x: SharedTensor, config: NonlinearConfig | None = None) -> SharedTensor:
    """e^x elementwise (scale f in, scale f out).

    Steps ("limit", t = exp_iters):
      1. b = 1 + floor(x / 2^t) (one truncation by t bits).
      2. b <- b * b, t times (squares).
    Steps ("pade", s = exp_pade_squarings, q = exp_pade_iters):
      1. u = floor(x / 2^s); u^2 (one square).
      2. n0 = c P(u), d0 = c Q(u) with P(u) = 1 + u/2 + u^2/12, Q(u) = P(-u), c = 2 / (1 + Q(-0.875)): one
         linear combination at double scale, truncated once for both.
      3. Goldschmidt: n, d <- n (2 - d), d (2 - d), q times (both products in one Beaver call), so
         n -> P(u) / Q(u) ~ e^u.
      4. Square s times.
    Clipping (exp_clip = c0): keep = NOT msb(x - c0), in parallel with the above; out = select(keep, e).
    Rounds: limit t + TR (t + 1); Pade 1 + q + s + TR (3 + q + s); with clipping max(that, 1 + log2 K) + 1.
    Comm: limit t squares, (N-1) K t bits per element; Pade 3q + s opened elements per element; plus an msb
    and a select per element when clipping; TC per truncated element.
    Leaks: nothing beyond the output.
    Ref: CrypTen's exp (Knott et al., NeurIPS 2021); Pade exp with squaring as SPU's fxp_exp_mode=1 and PUMA
    (Dong et al. 2023); Goldschmidt division (Goldschmidt 1964).

    Domain and error (f = 16, on the twin): "limit", t = 8, on [-16, 0]: |err| <= 0.0045. Sources: the
    floor of x / 2^t moves x by up to 2^(t-f) (a relative error of 2^-8 on e^x); the limit itself gives
    e^x e^(-x^2/2^(t+1)+...), off by at most 0.0011 (at x = -2); each squaring's truncation error doubles
    through the later ones. Below -2^t the base 1 + x/2^t is negative; below -2^(t+1) the result
    diverges. "pade", s = 4, on [-14, 0]: |err| <= 0.0012 (Pade's own relative error is below 1e-3 at
    u = -0.875 and far smaller near 0; the rest is truncation amplified by the 2^s power); below
    -0.875 * 2^s it degrades, so use it with clipping. On [0, 1] the errors are 0.026 (limit) and 0.003
    (Pade). One share-backend run (N = 2, 4096 points) measured 0.0031 (limit) and 0.0007 (Pade).
    K = 32 (f = 8; every ring value of the range, on the twin): "limit" on [-16, 0] <= 0.65 (0.648 at x =
    -2^-8): with t = f the first truncation floors x / 2^t to f bits, i.e. x to a whole number, so the
    result is about e^floor(x), off by a factor up to e (e^x - e^(x-1) -> 0.63 just below 0); on [0, 1]
    1.71. "pade" (s = 4) on [-14, 0] <= 0.17 (0.164): floor(x / 2^s) moves x by up to 2^(s-f) = 1/16 and
    Goldschmidt's truncations (2^-8 relative each) are amplified 2^s-fold by the squarings; on [0, 1] 0.43.
    Clipped Pade: exactly 0 below -14 (e^-14 is below one unit), as Pade above. Not a default, but at K = 32
    NonlinearConfig(exp_iters=4) gives 0.061 on [-16, 0] (its domain then ends at -2^5).
    """
    x = _fixed(x)
    cfg = _config(x.session, config)
    f = x.frac
    _check_exp_domain(x, cfg)
    if cfg.exp_method == "limit":
        t = cfg.exp_iters
        e = truncate(_relabel(x, f + t), t) + 1.0
        for _ in range(t):
            e = _mul(e, e)
    else:
        s = cfg.exp_pade_squarings
        u = truncate(_relabel(x, f + s), s)
        u2 = _mul(u, u)
        raw_p = _lin_raw([(u, PADE_C / 2), (u2, PADE_C / 12)], f)
        raw_q = _lin_raw([(u, -PADE_C / 2), (u2, PADE_C / 12)], f)
        nd = truncate(stack([raw_p, raw_q]), f) + PADE_C
        e = _goldschmidt(nd[0], nd[1], cfg.exp_pade_iters)
        for _ in range(s):
            e = _mul(e, e)
    if cfg.exp_clip is not None:
        keep = not_(call("msb", x - float(cfg.exp_clip)))
        e = call("bit_select", keep, e)
    return e


# -- reciprocal and rsqrt --------------------------------------------------------------------------------------------
@protocol(
    "reciprocal",
    scheme=BOTH,
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
    x = _fixed(x)
    session = x.session
    cfg = _config(session, config)
    f = x.frac
    D = cfg.log2_max(session.ring.bits, f)
    P = f + D
    _check_domain(x, P, D, "reciprocal")
    h, xn = _normalise(x, P, D)
    y0 = RECIP_C - xn * 2
    if cfg.recip_method == "goldschmidt":
        y = _goldschmidt(y0, _mul(xn, y0), cfg.recip_iters)
    else:
        y = y0
        for _ in range(cfg.recip_iters):
            y = _mul(y, 2.0 - _mul(xn, y))
    return _rescale(h, y, _recip_weights(f, P), f + 1)


_RSQ = _rsqrt_formulas("m")


@protocol(
    "rsqrt",
    rounds=_RSQ["rounds"],
    comm=_RSQ["comm"],
    offline=_RSQ["offline"],
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
    x = _fixed(x)
    session = x.session
    cfg = _config(session, config)
    f = x.frac
    D = cfg.log2_max(session.ring.bits, f)
    P = f + D
    _check_domain(x, P, D, "rsqrt")
    h, xn = _normalise(x, P, D)
    y = truncate(_lin_raw([(xn, -RSQRT_B)], f), f) + RSQRT_A
    for _ in range(cfg.rsqrt_iters):
        prods = _mul(stack([xn, y]), y)  # x_n y and y^2
        m_raw = call("ring_mul", prods[0], prods[1])  # x_n y^3 at scale 2f
        y = truncate(_relabel(y._mul_public_int(3 << f), 2 * f + 1) - _relabel(m_raw, 2 * f + 1), f + 1)
    return _rescale(h, y, _rsqrt_weights(f, P), f + 1)


# -- softmax ---------------------------------------------------------------------------------------------------------


def _softmax_dims(puma: bool):
    def dims(x, axis=-1, config=None):
        cfg = _config(x.session, config)
        n = x.shape[axis]
        return {"R": x.size // n, "n": n, "L": levels(n), **_exp_vars(cfg.puma() if puma else cfg),
                **_recip_vars(x.session, cfg, x.frac)}

    return dims


_SOFTMAX_EXAMPLE = np.round(np.random.default_rng(5).uniform(-4, 4, size=(2, 8)), 3)
_SOFTMAX_VARS_DOC = ("R = rows; n = row length; L = ceil(log2 n) max levels; exp: " + _EXP_VARS_DOC
                     + "; reciprocal: " + _RECIP_VARS_DOC)


def _check_row_spread(xt: SharedTensor, what: str) -> None:
    """Under check_domain: every row's max - min below 2^(K-1) ring units (compare's domain, see softmax_puma)."""
    values = _checked_values(xt)
    if values is None or not values.size:
        return
    rows = values.reshape(-1, xt.shape[-1])
    # max - min as uint64: exact, since it lies in [0, 2^64) (int64 would overflow at K = 64)
    spread = rows.max(axis=-1).astype(np.uint64) - rows.min(axis=-1).astype(np.uint64)
    K = xt.session.ring.bits
    if np.any(spread >= np.uint64(1 << (K - 1))):
        raise ValueError(f"{what}: a row's spread max - min reaches 2^(K-1-f) = {2.0 ** (K - 1 - xt.frac)} "
                         f"(check_domain): its comparisons (the row max, x - max) would wrap the ring")


def _softmax(x, axis, cfg, exp_cfg):
    x = _fixed(x)
    xt, swapped = _last_axis(x, axis)
    _check_row_spread(xt, "softmax")
    m = _reduce_max(xt, axis=-1)
    e = exp(xt - m.reshape(m.shape + (1,)), config=exp_cfg)
    r = reciprocal(e.sum(axis=-1), config=cfg)
    out = _mul(e, r.reshape(r.shape + (1,)))
    return out.swapaxes(axis, -1) if swapped else out


@protocol(
    "softmax_exact",
    scheme=BOTH,
    cost=_softmax_cost,
    ref="CrypTen softmax (max subtraction, exp, one reciprocal per row)",
    dims=_softmax_dims(False),
    example=_example_input(_SOFTMAX_EXAMPLE),
    vars_doc=_SOFTMAX_VARS_DOC,
)
def softmax_exact(x: SharedTensor, axis: int = -1, config: NonlinearConfig | None = None) -> SharedTensor:
    """Softmax along ``axis`` with the configured exp (default: limit, t = 8, no clipping).

    Steps:
      1. m = max along the axis (tournament, ``protocols.max``): L = ceil(log2 n) levels of msb + select.
      2. d = x - m (local); e = exp(d) (config's method and clipping).
      3. s = sum of e along the row (local); r = reciprocal(s): ONE reciprocal per row.
      4. out = e * r, r broadcast along the row (one Beaver call: r is opened once per row).
    Rounds: L (2 + log2 K) + exp + reciprocal + 1 + TR: 94 for (32, 512), N = 2, K = 64.
    Comm: per row n - 1 msb and selects; exp per element; one reciprocal per row; K(N-1)(n + 1) per row
    for the product; TC per output element.
    Leaks: nothing beyond the output.
    Ref: CrypTen's softmax (Knott et al. 2021); one reciprocal per row as in SPU/PUMA.

    Domain: rows whose spread max - min is below 2^t (the limit exp is meaningless below -2^t). Error (f = 16,
    default config, on the twin, n = 512): <= 0.03 per output, measured 0.025. The limit's log-error
    d^2 / 2^(t+1) on an entry d below the max moves probability mass; the worst rows hold one maximum and
    n - 1 entries near d = -ln(n - 1) (0.019 from that alone, plus the floor bias of exp).
    K = 32 (f = 8), derived on the twin (any f, given exp's constants): per output
      |out - softmax| <= R + (n - 1) 2^-f / e0 + (3b + r + 1) 2^-f,  R = (1 - sqrt(a/b)) / (1 + sqrt(a/b)),
    where exp's twin lies in [a e^d - 2^-f, b e^d] for every d of its domain and e0 is its value at d = 0
    (by enumeration of every ring value: limit a = 0.3150, b = 1, e0 = 1; clipped Pade a = 0.7956, b =
    1.0386, e0 = 0.9375), and r = 6.18 is reciprocal's relative term (``reciprocal_bound``, f = 8). Why:
    write each e_i = beta_i e^d_i - gamma_i, beta_i in [a, b], gamma_i in [0, 2^-f]; scaling weights by
    factors in [a, b] moves a normalised weight by at most R (the worst case is two groups, the entry and
    the rest, at the ratio sqrt(b/a)); the gamma_i, at most (n - 1) 2^-f in all, by at most that over the
    row sum (>= e0); the reciprocal of the row sum S is within (3 + r / S) 2^-f of 1/S, times e_i <= b; the
    last product truncates once. Exact: <= 0.321 + (n - 1) / 256 (measured 0.25 for n <= 16, 0.29 at n =
    64, 0.73 at n = 512: the limit exp returns about e^floor(d), see ``exp``); puma: <= 0.107 + (n - 1) / 240
    (measured 0.037 for n <= 8, 0.21 at n = 64). At K = 32 both are meaningful only for short rows.
    """
    cfg = _config(x.session, config)
    return _softmax(x, axis, cfg, cfg)


@protocol(
    "softmax_puma",
    scheme=BOTH,
    cost=_softmax_cost,
    ref="PUMA (Dong et al. 2023) / MPCache hack_softmax: exp clipped to 0 below -14",
    dims=_softmax_dims(True),
    example=_example_input(_SOFTMAX_EXAMPLE),
    vars_doc=_SOFTMAX_VARS_DOC,
)
def softmax_puma(x: SharedTensor, axis: int = -1, config: NonlinearConfig | None = None) -> SharedTensor:
    """Softmax along ``axis`` with exp clipped to 0 below config.puma_clip (-14) and the Pade exp.

    Steps: as ``softmax_exact``, with exp(config.puma()): the clip comparison runs alongside the exp.
    Rounds: L (2 + log2 K) + max(exp, 1 + log2 K) + 1 + reciprocal + 1 + TR: 95 for (32, 512), N = 2,
    K = 64.
    Comm: as softmax_exact plus one msb and one select per element (the clip); Pade exp 3q + s = 13 opened
    elements per element.
    Leaks: nothing beyond the output.
    Ref: PUMA (Dong et al., "PUMA: Secure Inference of LLaMA-7B in Five Minutes", 2023); MPCache's
    hack_softmax (mpcache.md 8.3).

    Domain: rows whose spread max - min is below 2^(K-1-f) (2^47 at K = 64, f = 16; 2^23 = 8388608 at K = 32,
    f = 8), and of n < 2^D / 1.04 elements. Why: the row max is a tournament of comparisons msb(a - b), right
    only while |a - b| < 2^(K-1) ring units, and x - max must not wrap either; beyond that the max may be
    the wrong element and x - max positive. Everything 14 below the max is then clipped to 0 (its comparison
    with -14 cannot wrap, x - max being in (-2^(K-1), 0]), so the spread is the only limit on the inputs.
    The row sum, between 1 and 1.04 n (Pade's largest e^d / value ratio), must lie in reciprocal's domain.
    Session(check_domain=True) raises on a wider row (and reciprocal's check on a too long one).
    Error (f = 16, on the twin): <= n 2^-f + 0.002 per output (0.0098 for n = 512; measured 0.0076, share
    backend 0.0003), against the 0.03 target. The n 2^-f term: entries far below the max have e^d under one
    unit, and each loses up to one unit to truncation, so a row of 511 of them shifts the sum by up to 511
    units. K = 32 (f = 8): see ``softmax_exact`` (the same derivation, with Pade's constants).
    """
    cfg = _config(x.session, config)
    return _softmax(x, axis, cfg, cfg.puma())


SOFTMAX_METHODS = ("exact", "puma")


def _check_softmax_method(method) -> None:
    if method not in SOFTMAX_METHODS:
        raise ValueError(f"softmax method must be 'exact' or 'puma', got {method!r}")


def _softmax_method(x, method, config) -> str:
    method = _config(x.session, config).softmax_method if method is None else method
    _check_softmax_method(method)
    return method


def _softmax_dispatch_dims(x, axis=-1, method=None, config=None):
    method = _softmax_method(x, method, config)
    return _softmax_dims(method == "puma")(x, axis=axis, config=config)


@protocol(
    "softmax",
    scheme=BOTH,
    cost=_softmax_cost,
    ref="dispatches to softmax_exact (CrypTen) or softmax_puma (PUMA / MPCache hack_softmax)",
    dims=_softmax_dispatch_dims,
    example=_example_input(_SOFTMAX_EXAMPLE),
    vars_doc=_SOFTMAX_VARS_DOC + "; the exp variables are those of the chosen method's exp configuration",
)
def softmax(x: SharedTensor, axis: int = -1, method: str | None = None,
            config: NonlinearConfig | None = None) -> SharedTensor:
    """Softmax along ``axis``: method "exact" (``softmax_exact``) or "puma" (``softmax_puma``); None takes the
    configuration's ``softmax_method`` (the session's ``approx``, "exact" by default).

    Steps:
      1. Run ``softmax_exact`` (the configured exp) or ``softmax_puma`` (exp of config.puma(): Pade, clipped
         below -14); both are max, exp, one reciprocal per row, one broadcast product.
    Rounds: L (2 + log2 K) + exp + reciprocal + 1 + TR, with the chosen method's exp (94 exact, 95 puma for
    (32, 512), N = 2, K = 64). Comm: the chosen method's (the formula is shared; its exp variables differ).
    Leaks: nothing beyond the output.
    Ref: CrypTen's softmax (Knott et al. 2021); PUMA (Dong et al. 2023).
    """
    if _softmax_method(x, method, config) == "exact":
        return softmax_exact(x, axis=axis, config=config)
    return softmax_puma(x, axis=axis, config=config)


# -- GeLU and SiLU ------------------------------------------------------------------------------------------------
def _segment_bits(x: SharedTensor, thresholds):
    """[x < t0], [x < t1], [x > t2] from one msb call on stacked differences."""
    t0, t1, t2 = thresholds
    bits = call("msb", stack([x - t0, x - t1, (-x) + t2]))
    return bits[0], bits[1], bits[2]


def _check_piecewise_domain(x: SharedTensor, t0: float, t2: float, what: str) -> None:
    """Under check_domain: x - t0 and t2 - x stay below 2^(K-1) ring units (see gelu's Domain)."""
    half = 1 << (x.session.ring.bits - 1)
    _check_ring_range(x, -half + _enc(t2, x.frac) + 1, half + _enc(t0, x.frac) - 1, what,
                      f"the comparisons of x with {t0} and {t2} would wrap the ring")


def _piecewise(x, b0, b1, b2, low, mid):
    """b2 x + (b0 xor b1) low + NOT(b1 xor b2) mid, one select call on the stacked pieces."""
    bits = stack([b2, xor(b0, b1), not_(xor(b1, b2))])
    return call("bit_select", bits, stack([x, low, mid])).sum(axis=0)


_PIECEWISE = {
    "rounds": "max(1 + log2(K), 3 + 4*TR) + 1",
    "msb_comm": f"(N-1)*3*n*{MSB_C} + (N-1)*(3*n + 3*K*n)",
    "msb_off": f"3*n*{MSB_O} + 6*K*n",
}


@protocol(
    "gelu",
    rounds=_PIECEWISE["rounds"],
    calls="(1 + log2(K)) + 3 + 4*TR + 1",
    comm=f"{_PIECEWISE['msb_comm']} + 7*K*(N-1)*n + 7*TC*n",
    offline=f"{_PIECEWISE['msb_off']} + 5*K*n + 7*TO*n",
    ref="PUMA (Dong et al. 2023), piecewise polynomial GeLU; coefficients our own minimax fit",
    dims=lambda x: {"n": x.size},
    example=_example_input(np.linspace(-5.0, 5.0, 16).reshape(2, 8)),
    vars_doc="n = elements",
)
def gelu(x: SharedTensor) -> SharedTensor:
    """GeLU(x) = x Phi(x) by a piecewise polynomial on segments chosen by 3 comparisons.

    Pieces: 0 for x < -4; a cubic on [-4, -2); 0.5 x + an even octic a0 + a2 x^2 + ... + a8 x^8 on
    [-2, 3.125]; x for x > 3.125.
    Fitting: x Phi(x) - x/2 = (x/2) erf(x/sqrt 2) is even, so the middle piece is 0.5 x plus an even
    polynomial fitted on [0, 3.125] (valid on [-3.125, 3.125]); both polynomials are minimax fits by Lawson's
    iteratively reweighted least squares (5000 steps, 20001 grid points); thresholds chosen so the pieces'
    errors balance (octic 0.0024 on the middle, cubic 0.00036 on [-4, -2), |GeLU(x) - x| <= 0.0028 above
    3.125, |GeLU(x)| <= 0.00013 below -4).
    Steps:
      1. [x < -4], [x < -2], [x > 3.125]: one msb call on the three stacked differences.
      2. In parallel: z = x/4 (x's ring integer read at scale f + 2); z^2; [z^3, z^4] = [z, z^2] z^2 (one
         Beaver call); [z^6, z^8] = [z^2, z^4] z^4 (one call); both polynomials in z, coefficients scaled by
         4^k, at double scale, truncated once together.
      3. out = b_hi x + b_low cubic + b_mid octic (one select call on the stacked pieces, summed).
    Rounds: max(1 + log2 K, 3 + 4 TR) + 1: 8 for N = 2, K = 64.
    Comm: 3 msb per element, 7 opened ring elements, a select of 3 bits and 3 elements; TC for 7 truncated
    elements.
    Leaks: nothing beyond the output.
    Ref: PUMA (Dong et al., "PUMA: Secure Inference of LLaMA-7B in Five Minutes", 2023), Sec. on GeLU;
    Lawson's algorithm for minimax fits.

    Domain: -2^(K-1-f) + 3.125 < x < 2^(K-1-f) - 4 (K = 64, f = 16: within 4 of +-2^47; K = 32, f = 8:
    (-8388604.875, 8388604)), i.e. ring integers in [-2^(K-1) + t2 + 1, 2^(K-1) + t0 - 1], t0 = -4 2^f, t2 =
    3.125 2^f. Why: each segment bit is the msb of a difference, right only while the difference stays below
    2^(K-1) ring units. x - t0 = x + 4 wraps once x >= 2^(K-1-f) - 4 (x then reads as below -4 and gets 0);
    t2 - x = 3.125 - x wraps once x <= -2^(K-1-f) + 3.125 (x reads as above 3.125 and is returned as is);
    x - t1 = x + 2 wraps only inside the first sliver. The pieces' own values may wrap, or break their
    truncation's precondition, far outside their segments: the selection multiplies them by 0.
    Session(check_domain=True) raises outside the domain.
    Error (f = 16, on the twin, x in [-20, 20]): <= 0.0029 (the fit's 0.0028 plus under 1e-5 of fixed
    point); outside [-4, 3.125] the pieces are exactly 0 and x, so the error there is the fit's.
    K = 32 (f = 8; every ring value of [-2^10, 2^10] on the twin): <= 0.019 (measured 0.0183 at x = 1.27,
    on the octic: z = x/4 held to f + 2 = 10 bits, and the octic's coefficients scaled by 4^k amplify its
    truncations); 0.0032 on the cubic's segment.
    """
    x = _fixed(x)
    f = x.frac
    F = f + POLY_SHIFT
    _check_piecewise_domain(x, GELU_T0, GELU_T2, "gelu")
    b0, b1, b2 = _segment_bits(x, (GELU_T0, GELU_T1, GELU_T2))
    z = _relabel(x, F)
    z2 = _mul(z, z)
    z34 = _mul(stack([z, z2]), z2)
    z68 = _mul(stack([z2, z34[1]]), z34[1])
    sc = [4.0**k for k in range(9)]
    lo = GELU_LOW
    low = _lin_raw([(z, lo[1] * sc[1]), (z2, lo[2] * sc[2]), (z34[0], lo[3] * sc[3])], F)
    a = GELU_MID
    mid = _lin_raw([(z, 0.5 * sc[1]), (z2, a[1] * sc[2]), (z34[1], a[2] * sc[4]), (z68[0], a[3] * sc[6]),
                    (z68[1], a[4] * sc[8])], F)
    polys = truncate(stack([low, mid]), 2 * F - f) + np.array([lo[0], a[0]]).reshape(2, *([1] * x.ndim))
    return _piecewise(x, b0, b1, b2, polys[0], polys[1])


@protocol(
    "silu",
    rounds=_PIECEWISE["rounds"],
    calls="(1 + log2(K)) + 3 + 4*TR + 1",
    comm=f"{_PIECEWISE['msb_comm']} + 4*K*(N-1)*n + 5*TC*n",
    offline=f"{_PIECEWISE['msb_off']} + 3*K*n + 5*TO*n",
    ref="MPCache hack_silu (SPU scripts; mpcache.md 8.3), coefficients copied exactly",
    dims=lambda x: {"n": x.size},
    example=_example_input(np.linspace(-9.0, 5.0, 16).reshape(2, 8)),
    vars_doc="n = elements",
)
def silu(x: SharedTensor) -> SharedTensor:
    """SiLU(x) = x sigmoid(x), exactly MPCache's piecewise polynomial (mpcache.md 8.3).

    Pieces: 0 for x < -8; -0.0055465625580307 x^2 - 0.0819767021525476 x - 0.3067541139982155 on [-8, -4);
    0.0002743776353465 x^6 - 0.011113046708173 x^4 + 0.2281430841728270 x^2 + 0.5 x + 0.0085064025895951 on
    [-4, 4]; x for x > 4.
    Steps:
      1. b0 = [x < -8], b1 = [x < -4], b2 = [x > 4]: one msb call on the stacked differences.
      2. In parallel: z = x/4 (x's ring integer read at scale f + 2), z^2, z^4 = (z^2)^2, z^6 = z^2 z^4;
         both polynomials in z (coefficients times 4^k) at double scale, truncated once together.
      3. out = b2 x + (b0 xor b1) seg1 + NOT(b1 xor b2) seg2 (one select call, summed).
    Rounds: max(1 + log2 K, 3 + 4 TR) + 1: 8 for N = 2, K = 64.
    Comm: 3 msb per element, 4 opened ring elements, a select of 3 bits and 3 elements; TC for 5 truncated
    elements.
    Leaks: nothing beyond the output.
    Ref: MPCache's hack_silu (SPU scripts, infer/generation_evaluation.py; mpcache.md 8.3).

    Domain: -2^(K-1-f) + 4 < x < 2^(K-1-f) - 8 (K = 64, f = 16: within 8 of +-2^47; K = 32, f = 8:
    (-8388604, 8388600)): as for ``gelu`` with the thresholds -8 and 4, x - (-8) = x + 8 wraps once x >=
    2^(K-1-f) - 8 (x then gets 0) and 4 - x once x <= -2^(K-1-f) + 4 (x is returned as is).
    Session(check_domain=True) raises outside the domain.
    Error (f = 16, on the twin; the polynomial's own error plus under 5e-5 of fixed point): <= 0.0097 on
    [-4, 4], <= 0.0044 on [-8, -4), <= 0.0027 below -8, and x sigmoid(-x) above 4 (0.072 just above 4, 0.015
    at 6). K = 32 (f = 8; every ring value of [-2^10, 2^10] on the twin): <= 0.016 on [-4, 4] (measured
    0.0151), <= 0.0077 on [-8, -4), <= 0.0027 below -8, x sigmoid(-x) above 4; the fixed point adds up to
    0.0075 to the polynomial (z = x/4 at 10 bits, z^6's coefficient 4^6 times larger).
    """
    x = _fixed(x)
    f = x.frac
    F = f + POLY_SHIFT
    _check_piecewise_domain(x, -8.0, 4.0, "silu")
    b0, b1, b2 = _segment_bits(x, (-8.0, -4.0, 4.0))
    z = _relabel(x, F)
    z2 = _mul(z, z)
    z4 = _mul(z2, z2)
    z6 = _mul(z2, z4)
    c1, c2 = SILU_SEG1, SILU_SEG2
    seg1 = _lin_raw([(z, c1[1] * 4.0), (z2, c1[2] * 16.0)], F)
    seg2 = _lin_raw([(z, 0.5 * 4.0), (z2, c2[1] * 16.0), (z4, c2[2] * 256.0), (z6, c2[3] * 4096.0)], F)
    polys = truncate(stack([seg1, seg2]), 2 * F - f) + np.array([c1[0], c2[0]]).reshape(2, *([1] * x.ndim))
    return _piecewise(x, b0, b1, b2, polys[0], polys[1])


# -- LayerNorm and RMSNorm ----------------------------------------------------------------------------------------
def _row_mean(total: SharedTensor, n: int, check: str | None = None) -> SharedTensor:
    """total / n at scale f: truncate by g = max(1, ceil(log2 n)), then times the public 2^g / n in [1, 2]
    encoded as c = round(2^(g+f) / n) (two truncations). The result is mean (1 + rho_n) + e with rho_n =
    c n / 2^(g+f) - 1, |rho_n| <= 2^-(f+1) (0 when n is a power of two), and |e| <= kappa_n 2^-f, kappa_n =
    1 + (2^g / n)(1 + |rho_n|) <= 3 (``_mean_constants``): unlike a direct product by an encoded 1/n, whose
    relative error is n 2^-(f+1). ``check`` names the truncated values for ``_check_trunc_input``."""
    g = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    f = total.frac
    if check is not None:
        _check_trunc_input(total, f"{check} (row sum)")
    shifted = truncate(_relabel(total, f + g), g)
    raw = _lin_raw([(shifted, 2.0**g / n)], f)
    if check is not None:
        _check_trunc_input(raw, f"{check} (row sum times 2^g/n)")
    return truncate(raw, f)


def _gamma_vars(gamma) -> dict:
    shared = isinstance(gamma, SharedTensor)
    return {"gs": int(shared), "gp": int(gamma is not None and not shared),
            "ng": gamma.size if shared else 0}


def _apply_gamma(d: SharedTensor, gamma, check: str | None = None):
    if gamma is None:
        return d
    if isinstance(gamma, SharedTensor):
        return _mul(d, _fixed(gamma), check=check)
    raw = _lin_raw_public(d, np.asarray(gamma, dtype=np.float64))
    if check is not None:
        _check_trunc_input(raw, check)
    return truncate(raw, d.frac)


def _lin_raw_public(t: SharedTensor, coef: np.ndarray) -> SharedTensor:
    """t times a public real array encoded at t's scale, untruncated (scale 2f)."""
    F = t.frac
    ints = np.rint(np.asarray(coef) * 2.0**F).astype(np.int64)
    return _relabel(t._mul_public_int(ints), 2 * F)


def _norm_dims(centre: bool):
    def common(x, gamma, axis, config):
        cfg = _config(x.session, config)
        n = x.shape[axis]
        return {"R": x.size // n, "n": n, "I": cfg.rsqrt_iters, **_norm_vars(x.session, cfg, x.frac),
                **_gamma_vars(gamma)}

    def layernorm_dims(x, gamma=None, beta=None, axis=-1, eps=1e-5, config=None):
        return common(x, gamma, axis, config)

    def rmsnorm_dims(x, gamma=None, axis=-1, eps=1e-5, config=None):  # same signature as rmsnorm
        return common(x, gamma, axis, config)

    return layernorm_dims if centre else rmsnorm_dims


def _layernorm_example(s):
    x = s.input(np.round(np.random.default_rng(6).normal(0.5, 2.0, size=(2, 8)), 3))
    gamma = s.input(np.linspace(0.5, 1.5, 8))
    return (x,), {"gamma": gamma, "beta": np.linspace(-0.25, 0.25, 8)}


def _rmsnorm_example(s):
    x = s.input(np.round(np.random.default_rng(7).normal(0.0, 2.0, size=(2, 8)), 3))
    return (x,), {"gamma": np.linspace(0.5, 1.5, 8)}


_LN = _norm_formulas(True)
_RMS = _norm_formulas(False)
_NORM_VARS_DOC = ("R = rows; n = row length; I = rsqrt iterations; P = f + D; gs / gp = 1 for a shared / public "
                  "gamma (ng = its elements)")


def _norm(x, gamma, beta, axis, eps, config, centre: bool):
    x = _fixed(x)
    cfg = _config(x.session, config)
    xt, swapped = _last_axis(x, axis)
    n = xt.shape[-1]
    name = "layernorm" if centre else "rmsnorm"  # check_domain: every truncated value (``_check_trunc_input``)
    if centre:
        mean = _row_mean(xt.sum(axis=-1), n, check=f"{name}: mean")
        xt = xt - mean.reshape(mean.shape + (1,))
    var = _row_mean(_mul(xt, xt, check=f"{name}: squares").sum(axis=-1), n, check=f"{name}: mean of squares")
    var = var + float(eps)
    scaled = _apply_gamma(xt, gamma, check=f"{name}: times gamma")  # runs alongside rsqrt
    r = rsqrt(var, config=cfg)
    out = _mul(scaled, r.reshape(r.shape + (1,)), check=f"{name}: times rsqrt")
    if beta is not None:
        out = out + (_fixed(beta) if isinstance(beta, SharedTensor) else np.asarray(beta, dtype=np.float64))
    return out.swapaxes(axis, -1) if swapped else out


@protocol(
    "layernorm",
    rounds=_LN["rounds"],
    calls=_LN["calls"],
    comm=_LN["comm"],
    offline=_LN["offline"],
    ref="Ba et al. 2016 (LayerNorm); MPC form as in PUMA (Dong et al. 2023) with our rsqrt",
    dims=_norm_dims(True),
    example=_layernorm_example,
    vars_doc=_NORM_VARS_DOC,
)
def layernorm(x: SharedTensor, gamma=None, beta=None, axis: int = -1, eps: float = 1e-5,
              config: NonlinearConfig | None = None) -> SharedTensor:
    """(x - mean) / sqrt(var + eps) * gamma + beta along ``axis`` (gamma, beta public arrays or shared).

    Steps:
      1. mean = row sum / n (local sum, two truncations per row, see ``_row_mean``); d = x - mean.
      2. var = mean of d^2 (one square per element, then as step 1) + eps.
      3. r = rsqrt(var): one per row. Meanwhile d * gamma (public: one truncation; shared: one product).
      4. out = (d gamma) * r (r broadcast: one Beaver call) + beta (local).
    Rounds: 2 + 6 TR + rsqrt: 15 for N = 2, K = 64.
    Comm: one square and one broadcast product per element, the gamma product if shared, one rsqrt per
    row; TC per truncated element.
    Leaks: nothing beyond the output.
    Ref: Ba, Kiros, Hinton, "Layer normalization", 2016; PUMA (Dong et al. 2023) for the MPC form.

    Notation (per row of n along the axis; u = 2^-f): mean, t = x - mean, M = max |t|, var = mean of t^2,
    S = sqrt(var + eps); rho_n, kappa_n of ``_row_mean`` (|rho_n| <= 2^-(f+1), 0 for n a power of two;
    kappa_n <= 3): the computed mean is off by at most delta = |mean| rho_n + kappa_n u, and the computed
    var + eps (rsqrt's input W) by at most dW = delta^2 + u + rho_n (var + delta^2 + u) + kappa_n u +
    |eps' - eps| (eps' = eps encoded at f bits: 2^-16 at f = 16, 0 at f = 8).

    Domain (derived): every truncated value must lie in trunc_pr's domain [-2^(K-2), 2^(K-2)) (ring units;
    local truncation fails with probability about 2^(l+1-K) for values below 2^l) and W in rsqrt's domain
    [2^-f, 2^D). Step by step, sufficient conditions are
      (a) the row mean's two truncations: |sum of x| < 2^(K-2-f), (|mean| + 2u)(1 + rho_n) < 2^(K-2-2f);
      (b) the squares of x minus the computed mean: M + delta < 2^(K/2-1-f);
      (c) their mean: n (var + delta^2 + u) < 2^(K-2-f), (var + delta^2 + 3u)(1 + rho_n) < 2^(K-2-2f);
      (d) rsqrt: var + eps + dW < 2^D, and W >= 2^-f: automatic when eps' >= 2^-f (the computed mean of
          squares is >= 0), else var + eps - dW >= 2^-f;
      (e) the products by gamma and by r: (M + delta)(max|gamma| + u/2) < 2^(K-2-2f), and ((M + delta)
          (max|gamma| + u/2) + u) R < 2^(K-2-2f), R below (without gamma: max|gamma| + u/2 -> 1, no + u),
          about |out - beta| < 2^(K-2-2f).
    K = 64, f = 16: |x - mean| < 2^15, |mean| < 2^30, var < 2^21 (constant rows are fine: eps' = 2^-16).
    K = 32, f = 8: |x - mean| < 128, |mean| < 16384 and n |mean| < 2^22, var < 4096 and n var < 2^22, var
    >= about 5 2^-8 = 0.02 (eps encodes to 0, dW ~ 4u: a constant row is outside), |out| < 16384.
    Session(check_domain=True) checks the exact ring condition of every truncated value (and rsqrt its
    input) and raises outside it. (The old statement, var + eps in [2^-f, 2^D) alone, missed (a)-(c).)

    Error (derived, any f, per element, in units of 2^-f; ``layernorm_bound`` evaluates it; it holds for the
    twin and for share-backend runs, each truncation being off by less than one unit either way):
      E <= [ |t| |gamma| Dr + G (|t| u/2 + u) R + delta (|gamma| + G u/2) R + u + B u/2 ] / u,
    G, B = 1 when gamma, beta are given (else 0, and |gamma| = 1); W_lo = max(u, S^2 - dW), W_hi = S^2 + dW;
    Dr = rsqrt_bound(W_lo) u + max(|W_lo^-1/2 - 1/S|, |W_hi^-1/2 - 1/S|) bounds |r - 1/S|; R = 1/S + Dr.
    Derivation: out - true = d gamma' r - t gamma / S + (truncations), d = t - (mean's error), gamma' =
    gamma encoded (u/2 off), r = 1/S + (r - 1/S): r's error times t gamma; gamma's encoding and the gamma
    product's truncation (u r), which do not shrink with gamma; the mean's error times gamma' r (large for a
    large mean when n is not a power of two); the last truncation and beta's encoding.
    Leading terms (S^2 >> dW, |mean| rho_n << u): |t| |gamma| (3 + 2.1/S + (dW/u) / (2 S^3)) + (3 |gamma| +
    G (1 + |t|/2)) / S + 1 + B/2 ULPs, dW ~ 4.3u. For |t| ~ S that is about (3S + 2.1 + 2.2/S^2) |gamma|,
    the old (8 + 4/s^2 + 3s) max|gamma|; but |t| reaches S sqrt(n - 1) on a row with one outlier, where
    the old bound fails (n = 768, x = (1, 0, ..., 0), f = 16: the twin is 20095 ULPs off, the old bound
    3084, this one 40141), as it does for a small gamma and for a large mean. The variance is held to dW,
    so small-variance rows lose relative precision (n = 768, s = 0.05, f = 16: 0.03).
    """
    return _norm(x, gamma, beta, axis, eps, config, centre=True)


@protocol(
    "rmsnorm",
    rounds=_RMS["rounds"],
    calls=_RMS["calls"],
    comm=_RMS["comm"],
    offline=_RMS["offline"],
    ref="Zhang-Sennrich, NeurIPS 2019 (RMSNorm); our rsqrt",
    dims=_norm_dims(False),
    example=_rmsnorm_example,
    vars_doc=_NORM_VARS_DOC,
)
def rmsnorm(x: SharedTensor, gamma=None, axis: int = -1, eps: float = 1e-5,
            config: NonlinearConfig | None = None) -> SharedTensor:
    """x / sqrt(mean(x^2) + eps) * gamma along ``axis``.

    Steps:
      1. ms = mean of x^2 (one square per element, two truncations per row) + eps.
      2. r = rsqrt(ms), one per row; meanwhile x * gamma.
      3. out = (x gamma) * r (r broadcast: one Beaver call).
    Rounds: 2 + 4 TR + rsqrt: 15 for N = 2, K = 64.
    Comm: one square and one broadcast product per element, the gamma product if shared, one rsqrt per row.
    Leaks: nothing beyond the output.
    Ref: Zhang, Sennrich, "Root mean square layer normalization", NeurIPS 2019.

    Domain (derived as for ``layernorm``, with mean 0 and no mean's error: M = max |x|, ms = mean of x^2,
    dW = u + rho_n (ms + u) + kappa_n u + |eps' - eps|): (b) M < 2^(K/2-1-f); (c) n (ms + u) < 2^(K-2-f),
    (ms + 3u)(1 + rho_n) < 2^(K-2-2f); (d) ms + eps + dW < 2^D and, unless eps' >= 2^-f, ms + eps - dW >=
    2^-f; (e) as layernorm's. K = 64, f = 16: |x| < 2^15, ms < 2^21 (any row, even all zero: eps' =
    2^-16); K = 32, f = 8: |x| < 128, ms in [about 5 2^-8, 4096), n ms < 2^22. Session(check_domain=True)
    checks every truncated value.
    Error (derived, any f, per element, in units of 2^-f; ``rmsnorm_bound``; twin and share-backend runs):
    layernorm's bound with t = x, delta = 0, no beta: [ |x| |gamma| Dr + G (|x| u/2 + u) R + u ] / u, S =
    sqrt(ms + eps). Leading terms: |x| |gamma| (3 + 2.1/S + (dW/u) / (2 S^3)) + G (1 + |x|/2) / S + 1. The
    old statement, (6 + 3r) max|gamma|, failed for an outlier (|x| up to r sqrt(n)), a small gamma, and a
    small root mean square r (x = (-2^-16): the mean square is held to one unit, the twin is 60 ULPs off,
    the old bound said 6 and this one says 203).
    """
    return _norm(x, gamma, None, axis, eps, config, centre=False)


# -- plaintext twins ----------------------------------------------------------------------------------------------
class Twin:
    """A fixed-point value in plain numpy: signed ring integers ``v`` at scale ``frac`` (floor after every
    truncation), and ``err``, a bound in units of 2^-frac on how far an MPC run of the same steps can be.

    Truncation: MPC gives floor or floor + 1 of its own input; if the inputs differ by e, the floors differ
    by at most e / 2^s + 1, so err <- e / 2^s + 2 (1 when e = 0). Products: |a'b' - ab| <= |a| e_b + |b| e_a
    + e_a e_b. Comparisons are exact when their input is (err = 0).
    """

    def __init__(self, v, frac: int, err=None):
        self.v = np.asarray(v, dtype=np.int64)
        self.frac = int(frac)
        e = np.zeros(self.v.shape) if err is None else np.asarray(err, dtype=np.float64)
        self.err = np.array(np.broadcast_to(e, self.v.shape), dtype=np.float64)

    @classmethod
    def encode(cls, values, frac: int) -> "Twin":
        return cls(np.rint(np.asarray(values, dtype=np.float64) * 2.0**frac).astype(np.int64), frac)

    def real(self) -> np.ndarray:
        return self.v / 2.0**self.frac

    def relabel(self, frac: int) -> "Twin":
        return Twin(self.v, frac, self.err)

    def trunc(self, s: int) -> "Twin":
        if s == 0:
            return self
        return Twin(self.v >> np.int64(s), self.frac - s, np.where(self.err > 0, self.err / 2.0**s + 2, 1.0))

    def scale(self, k) -> "Twin":
        k = np.asarray(k, dtype=np.int64)
        return Twin(self.v * k, self.frac, self.err * np.abs(k))

    def __add__(self, other) -> "Twin":
        if isinstance(other, Twin):
            if other.frac != self.frac:
                raise AssertionError("twin scales differ")
            return Twin(self.v + other.v, self.frac, self.err + other.err)
        return Twin(self.v + np.rint(np.asarray(other, dtype=np.float64) * 2.0**self.frac).astype(np.int64),
                    self.frac, self.err)

    def __neg__(self) -> "Twin":
        return Twin(-self.v, self.frac, self.err)

    def __sub__(self, other) -> "Twin":
        return self + (-other if isinstance(other, Twin) else -np.asarray(other, dtype=np.float64))

    def __rsub__(self, other) -> "Twin":
        return (-self) + other

    def raw_mul(self, other: "Twin") -> "Twin":
        """The Beaver product: exact, at the sum of the scales."""
        err = np.abs(self.v) * other.err + np.abs(other.v) * self.err + self.err * other.err
        return Twin(self.v * other.v, self.frac + other.frac, err)

    def __mul__(self, other: "Twin") -> "Twin":
        """Fixed-point product: Beaver product, then truncation by the smaller scale."""
        return self.raw_mul(other).trunc(min(self.frac, other.frac))

    def select(self, bits) -> "Twin":
        bits = np.asarray(bits, dtype=bool)
        return Twin(np.where(bits, self.v, 0), self.frac, np.where(bits, self.err, 0.0))

    def sum(self, axis=-1) -> "Twin":
        return Twin(self.v.sum(axis=axis), self.frac, self.err.sum(axis=axis))

    def __getitem__(self, index) -> "Twin":
        return Twin(self.v[index], self.frac, self.err[index])

    def expand(self) -> "Twin":
        return Twin(self.v[..., None], self.frac, self.err[..., None])

    def swapaxes(self, a, b) -> "Twin":
        return Twin(np.swapaxes(self.v, a, b), self.frac, np.swapaxes(self.err, a, b))

    def exact(self) -> "Twin":
        return Twin(self.v, self.frac)


def _twin_lin(parts, F: int) -> Twin:
    acc = None
    for t, c in parts:
        term = t.scale(_enc(c, F)).relabel(2 * F)
        acc = term if acc is None else acc + term
    return acc


def _twin_goldschmidt(n: Twin, d: Twin, iters: int) -> Twin:
    for k in range(iters):
        g = 2.0 - d
        if k == iters - 1:
            return n * g
        n, d = n * g, d * g
    return n


def twin_exp(x: Twin, config: NonlinearConfig | None = None) -> Twin:
    """The plaintext twin of ``exp`` (inputs compared exactly: x.err must be 0 when clipping)."""
    cfg = config or NonlinearConfig()
    f = x.frac
    if cfg.exp_method == "limit":
        e = x.relabel(f + cfg.exp_iters).trunc(cfg.exp_iters) + 1.0
        for _ in range(cfg.exp_iters):
            e = e * e
    else:
        s = cfg.exp_pade_squarings
        u = x.relabel(f + s).trunc(s)
        u2 = u * u
        n = _twin_lin([(u, PADE_C / 2), (u2, PADE_C / 12)], f).trunc(f) + PADE_C
        d = _twin_lin([(u, -PADE_C / 2), (u2, PADE_C / 12)], f).trunc(f) + PADE_C
        e = _twin_goldschmidt(n, d, cfg.exp_pade_iters)
        for _ in range(s):
            e = e * e
    if cfg.exp_clip is not None:
        assert not np.any(x.err), "clipping compares the input: the twin needs it exact"
        e = e.select(x.v >= np.rint(cfg.exp_clip * 2.0**f))
    return e


def _twin_pos(v: np.ndarray, P: int) -> np.ndarray:
    _, e = np.frexp(np.maximum(v, 1).astype(np.float64))
    return np.clip(e.astype(np.int64) - 1, 0, P - 1)


def _twin_normalised(x: Twin, K: int, cfg: NonlinearConfig):
    f = x.frac
    D = cfg.log2_max(K, f)
    P = f + D
    pos = _twin_pos(x.v, P)
    xn = Twin(x.v << (P - 1 - pos), f + D).trunc(D)
    return f, P, pos, xn


def _input_error(x: Twin, out: Twin, deriv_ulps, bound_ulps) -> Twin:
    """Where the input already carries an MPC error, the MPC may normalise differently: bound the gap by
    the function's slope times the input error plus twice the approximation's own error bound."""
    extra = np.where(x.err > 0, deriv_ulps + 2 * bound_ulps, 0.0)
    return Twin(out.v, out.frac, out.err + extra)


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


def _mean_constants(n: int, f: int) -> tuple[float, float]:
    """(rho_n, kappa_n) of ``_row_mean``: |rho_n| = |c n / 2^(g+f) - 1| with c = round(2^(g+f) / n), and
    kappa_n = 1 + (2^g / n)(1 + rho_n), the bound on its rounding error in units of 2^-f."""
    g = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    c = _enc(2.0**g / n, f)
    rho = abs(c * n / 2.0 ** (g + f) - 1)
    return rho, 1 + 2.0**g / n * (1 + rho)


def _norm_bound(x, gamma, beta, eps: float, f: int, config, centre: bool) -> np.ndarray:
    """The derived bound of ``layernorm_bound`` / ``rmsnorm_bound`` (see layernorm's docstring)."""
    u = 2.0**-f
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    rho, kappa = _mean_constants(n, f)
    mu = x.mean(axis=-1, keepdims=True) if centre else 0.0
    delta = np.abs(mu) * rho + kappa * u if centre else 0.0  # |computed mean - mean|
    t = x - mu
    var = (t * t).mean(axis=-1, keepdims=True)
    s2 = var + eps
    dw = delta**2 + u + rho * (var + delta**2 + u) + kappa * u + abs(_enc(eps, f) * u - eps)  # |W - s2|
    w_lo, w_hi = np.maximum(s2 - dw, u), s2 + dw  # W, handed to rsqrt, is in rsqrt's domain (>= 2^-f)
    root = np.sqrt(s2)
    dr = rsqrt_bound(w_lo, f, config) * u + np.maximum(np.abs(w_lo**-0.5 - 1 / root), np.abs(w_hi**-0.5 - 1 / root))
    big_r = 1 / root + dr  # bounds the computed r
    has_g, has_b = gamma is not None, beta is not None
    g = np.abs(np.asarray(gamma, dtype=np.float64)) if has_g else 1.0
    at = np.abs(t)
    err = at * g * dr + has_g * (at * u / 2 + u) * big_r + delta * (g + has_g * u / 2) * big_r + u + has_b * u / 2
    return err / u


def layernorm_bound(x_real, gamma=None, beta=None, eps: float = 1e-5, f: int = 16,
                    config: NonlinearConfig | None = None) -> np.ndarray:
    """Derived bound on |layernorm(x) - true|, per element, in units of 2^-f, for rows (last axis) of x in
    layernorm's domain, any f; gamma, beta as real arrays or None (see layernorm's docstring)."""
    return _norm_bound(x_real, gamma, beta, eps, f, config, centre=True)


def rmsnorm_bound(x_real, gamma=None, eps: float = 1e-5, f: int = 16,
                  config: NonlinearConfig | None = None) -> np.ndarray:
    """Derived bound on |rmsnorm(x) - true|, per element, in units of 2^-f (see rmsnorm's docstring)."""
    return _norm_bound(x_real, gamma, None, eps, f, config, centre=False)


def twin_reciprocal(x: Twin, config: NonlinearConfig | None = None, K: int = 64) -> Twin:
    """The plaintext twin of ``reciprocal``."""
    cfg = config or NonlinearConfig()
    f, P, pos, xn = _twin_normalised(x, K, cfg)
    y0 = xn.scale(-2) + RECIP_C
    if cfg.recip_method == "goldschmidt":
        y = _twin_goldschmidt(y0, xn * y0, cfg.recip_iters)
    else:
        y = y0
        for _ in range(cfg.recip_iters):
            y = y * (2.0 - xn * y)
    v = _recip_weights(f, P)[pos]
    out = Twin(y.v * v, 2 * f + 1, y.err * v).trunc(f + 1)
    xr = np.maximum(x.real() - x.err * 2.0**-f, 2.0**-f)
    return _input_error(x, out, x.err / xr / np.maximum(x.real(), 2.0**-f), reciprocal_bound(xr, f, cfg))


def twin_rsqrt(x: Twin, config: NonlinearConfig | None = None, K: int = 64) -> Twin:
    """The plaintext twin of ``rsqrt``."""
    cfg = config or NonlinearConfig()
    f, P, pos, xn = _twin_normalised(x, K, cfg)
    y = _twin_lin([(xn, -RSQRT_B)], f).trunc(f) + RSQRT_A
    for _ in range(cfg.rsqrt_iters):
        m = (xn * y).raw_mul(y * y)
        y = (y.scale(3 << f).relabel(2 * f + 1) - m.relabel(2 * f + 1)).trunc(f + 1)
    v = _rsqrt_weights(f, P)[pos]
    out = Twin(y.v * v, 2 * f + 1, y.err * v).trunc(f + 1)
    xr = np.maximum(x.real() - x.err * 2.0**-f, 2.0**-f)
    return _input_error(x, out, 0.5 * x.err * xr**-1.5, rsqrt_bound(xr, f, cfg))


def twin_softmax(x: Twin, axis: int = -1, method: str = "exact", config: NonlinearConfig | None = None,
                 K: int = 64) -> Twin:
    """The plaintext twin of ``softmax`` (the max is exact, as in MPC)."""
    cfg = config or NonlinearConfig()
    xt = x.swapaxes(axis, -1)
    d = xt - Twin(xt.v.max(axis=-1), x.frac).expand()
    e = twin_exp(d, cfg.puma() if method == "puma" else cfg)
    r = twin_reciprocal(e.sum(axis=-1), cfg, K)
    return (e * r.expand()).swapaxes(axis, -1)


def _twin_piecewise(x: Twin, thresholds, low: Twin, mid: Twin) -> Twin:
    t0, t1, t2 = (np.rint(t * 2.0**x.frac) for t in thresholds)
    b0, b1, b2 = x.v < t0, x.v < t1, x.v > t2
    return x.select(b2) + low.select(b0 ^ b1) + mid.select(~(b1 ^ b2))


def twin_gelu(x: Twin) -> Twin:
    """The plaintext twin of ``gelu``."""
    f = x.frac
    F = f + POLY_SHIFT
    z = x.relabel(F)
    z2 = z * z
    z3, z4 = z * z2, z2 * z2
    z6, z8 = z2 * z4, z4 * z4
    lo, a = GELU_LOW, GELU_MID
    low = _twin_lin([(z, lo[1] * 4), (z2, lo[2] * 16), (z3, lo[3] * 64)], F).trunc(2 * F - f) + lo[0]
    mid = (_twin_lin([(z, 2.0), (z2, a[1] * 16), (z4, a[2] * 4.0**4), (z6, a[3] * 4.0**6), (z8, a[4] * 4.0**8)],
                     F).trunc(2 * F - f) + a[0])
    return _twin_piecewise(x, (GELU_T0, GELU_T1, GELU_T2), low, mid)


def twin_silu(x: Twin) -> Twin:
    """The plaintext twin of ``silu``."""
    f = x.frac
    F = f + POLY_SHIFT
    z = x.relabel(F)
    z2 = z * z
    z4 = z2 * z2
    z6 = z2 * z4
    c1, c2 = SILU_SEG1, SILU_SEG2
    seg1 = _twin_lin([(z, c1[1] * 4.0), (z2, c1[2] * 16.0)], F).trunc(2 * F - f) + c1[0]
    seg2 = (_twin_lin([(z, 2.0), (z2, c2[1] * 16.0), (z4, c2[2] * 256.0), (z6, c2[3] * 4096.0)], F)
            .trunc(2 * F - f) + c2[0])
    return _twin_piecewise(x, (-8.0, -4.0, 4.0), seg1, seg2)


def _twin_row_mean(total: Twin, n: int) -> Twin:
    g = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    f = total.frac
    return _twin_lin([(total.relabel(f + g).trunc(g), 2.0**g / n)], f).trunc(f)


def _twin_norm(x: Twin, gamma, beta, eps, config, centre: bool, K: int) -> Twin:
    cfg = config or NonlinearConfig()
    f = x.frac
    n = x.v.shape[-1]
    if centre:
        x = x - _twin_row_mean(x.sum(-1), n).expand()
    var = _twin_row_mean((x * x).sum(-1), n) + float(eps)
    scaled = x if gamma is None else x * Twin.encode(gamma, f)
    out = scaled * twin_rsqrt(var, cfg, K).expand()
    return out if beta is None else out + Twin.encode(beta, f)


def twin_layernorm(x: Twin, gamma=None, beta=None, eps: float = 1e-5, config=None, K: int = 64) -> Twin:
    """The plaintext twin of ``layernorm`` along the last axis (gamma, beta as real arrays)."""
    return _twin_norm(x, gamma, beta, eps, config, True, K)


def twin_rmsnorm(x: Twin, gamma=None, eps: float = 1e-5, config=None, K: int = 64) -> Twin:
    """The plaintext twin of ``rmsnorm`` along the last axis."""
    return _twin_norm(x, gamma, None, eps, config, False, K)
