"""The configuration, constants and small helpers shared by the non-linear protocols (``protocols.nonlinear``).

NonlinearConfig and ``_config``; the approximations' constants; fixed-point helpers (relabel, product,
encoding, linear combinations at double scale); the check_domain helpers; axis handling.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from mpsim.tensor import SharedTensor

from .. import fxp

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


SOFTMAX_METHODS = ("exact", "puma")


def _check_softmax_method(method) -> None:
    if method not in SOFTMAX_METHODS:
        raise ValueError(f"softmax method must be 'exact' or 'puma', got {method!r}")


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


def _example_input(values):
    return lambda s: ((s.input(values),), {})
