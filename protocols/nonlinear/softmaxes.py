"""softmax (``protocols.nonlinear``): softmax_exact, softmax_puma, and softmax, which dispatches to one."""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor

from ..reduce import levels
from ..reduce import max as _reduce_max
from ..registry import protocol
from .config import (NonlinearConfig, _check_softmax_method, _checked_values, _config, _example_input, _fixed,
                     _last_axis, _mul)
from .costs import _EXP_VARS_DOC, _RECIP_VARS_DOC, BOTH, _exp_vars, _recip_vars, _softmax_cost
from .exponential import exp
from .recip import reciprocal

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
