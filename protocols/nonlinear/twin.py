"""The plaintext twins of the non-linear protocols (``protocols.nonlinear``): :class:`Twin` and ``twin_*``,
the same steps on the same fixed-point grid with floor truncation, carrying a bound on an MPC run's distance."""
from __future__ import annotations

import math

import numpy as np

from .config import (GELU_LOW, GELU_MID, GELU_T0, GELU_T1, GELU_T2, PADE_C, POLY_SHIFT, RECIP_C, RSQRT_A, RSQRT_B,
                     SILU_SEG1, SILU_SEG2, NonlinearConfig, _enc)
from .recip import _recip_weights, _rsqrt_weights, reciprocal_bound, rsqrt_bound

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
