"""LayerNorm and RMSNorm (``protocols.nonlinear``), and their derived error bounds."""
from __future__ import annotations

import math

import numpy as np

from mpsim.tensor import SharedTensor

from ..fxp import truncate
from ..registry import protocol
from .config import NonlinearConfig, _check_trunc_input, _config, _enc, _fixed, _last_axis, _lin_raw, _mul, _relabel
from .costs import BOTH, _norm_cost, _norm_vars
from .recip import rsqrt, rsqrt_bound

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
    scheme=BOTH,
    cost=_norm_cost(True),
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
    scheme=BOTH,
    cost=_norm_cost(False),
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
