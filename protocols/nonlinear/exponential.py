"""exp on secret-shared fixed-point tensors (``protocols.nonlinear``): the limit and Pade methods."""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor, stack

from ..boolean import not_
from ..fxp import truncate
from ..registry import call, composed_except, protocol
from .config import PADE_C, NonlinearConfig, _config, _example_input, _fixed, _lin_raw, _mul, _relabel
from .costs import _EXP_VARS_DOC, _exp_cost, _exp_vars
from .recip import _goldschmidt

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


@protocol(
    "exp",
    scheme=composed_except("fss"),  # the FSS suite's is a spline (protocols/fss/spline.py)
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
