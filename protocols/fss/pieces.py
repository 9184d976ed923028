"""Piecewise-linear approximations for the FSS spline gates: pieces chosen for a stated error, their
fixed-point encoding, and the plaintext twin that computes exactly what the gate computes.

A ``Curve`` names a function, its second derivative, a domain [lo, hi] and an error E. ``pieces`` cuts the
domain greedily from the left into chords whose knots lie on the 2^-g grid: each piece is as wide as the
interpolation bound allows, h^2 M / 8 <= E with M the largest |f''| on the piece (sampled at 65 points:
|f''| is monotone on every piece of exp, 1/x and 1/sqrt(x), so there the sample is exact; for SiLU and GeLU
the tests measure the twin against the function on a dense grid). A piece of one grid step is exact at the
grid points, which are the only values fixed point can hold. Below lo the gate gives 0; above hi the last
chord continues, or a curve's ``above`` line (slope, value at hi) takes over (SiLU, GeLU: the identity).

Encoding at f fractional bits and slope scale F (``encode``): per piece an integer slope s = round(slope 2^F)
and intercept b = round(y_L 2^(f+F)) - s x_L (x_L exact on the grid), so that b + s x is the chord at scale
f + F with the slope's rounding multiplied only by x - x_L; the gate sums the pieces' jumps in (s, b), which
are integers, so the chosen piece's constants are exact.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Curve:
    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    d2: Callable[[np.ndarray], np.ndarray]  # f''
    lo: float
    hi: float
    error: float  # the chords' bound |chord - f| on [lo, hi], before fixed point
    grid: int  # knots on the 2^-grid grid (or the session's 2^-f when coarser)
    above: tuple[float, float] | None = None  # (slope, value at hi) of the line beyond hi


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _silu_d2(x):
    s = _sigmoid(x)
    return s * (1 - s) * (2 + x * (1 - 2 * s))


_erf = np.vectorize(math.erf)


def _gelu(x):
    return 0.5 * x * (1 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2)))


def _gelu_d2(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) * (2 - x * x)


EXP = Curve("exp", np.exp, np.exp, -16.0, 0.0, 2.0**-10, 8)
SILU = Curve("silu", lambda x: x * _sigmoid(x), _silu_d2, -16.0, 16.0, 2.0**-10, 8, above=(1.0, 16.0))
GELU = Curve("gelu", _gelu, _gelu_d2, -8.0, 8.0, 2.0**-10, 8, above=(1.0, 8.0))
# On the normalised [0.5, 1) of reciprocal and rsqrt (protocols.fss.recip), widened by a margin so that a
# local truncation of x_n one unit off either way still lands on a piece.
RECIP = Curve("recip", lambda x: 1.0 / x, lambda x: 2.0 / x**3, 0.49, 1.01, 2.0**-14, 10)
RSQRT = Curve("rsqrt", lambda x: x**-0.5, lambda x: 0.75 * x**-2.5, 0.49, 1.01, 2.0**-14, 10)


def _fits(curve: Curve, a: float, b: float) -> bool:
    h = b - a
    m = np.abs(curve.d2(np.linspace(a, b, 65))).max()
    return h * h * m / 8 <= curve.error


@functools.cache
def pieces(curve: Curve, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left ends x_L, values f(x_L), slopes) of the chords on [lo, hi] with knots on the 2^-g grid, plus the
    ``above`` line's piece at hi where the curve has one."""
    unit = 2.0**-g
    lo, hi = math.floor(curve.lo / unit) * unit, math.ceil(curve.hi / unit) * unit
    lefts, x = [], lo
    while x < hi:
        lefts.append(x)
        most = round((hi - x) / unit)
        if _fits(curve, x, x + most * unit):
            steps = most
        else:  # the widest fitting piece, by bisection (fitting is monotone in the width); at least one step
            good, bad = 1, most
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if _fits(curve, x, x + mid * unit) else (good, mid)
            steps = good
        x += steps * unit
    left = np.array(lefts)
    right = np.append(left[1:], hi)
    values = curve.fn(left)
    slopes = (curve.fn(right) - values) / (right - left)
    if curve.above is not None:
        slope, value = curve.above
        left, values, slopes = np.append(left, hi), np.append(values, value), np.append(slopes, slope)
    return left, values, slopes


def grid_of(curve: Curve, f: int) -> int:
    return min(curve.grid, f)


@functools.cache
def encode(curve: Curve, f: int, F: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(knots at scale f, slope jumps at scale F, intercept jumps at scale f + F), as Python integers: the
    sums of the jumps over the knots at or below x are x's piece's (s, b)."""
    left, values, slopes = pieces(curve, grid_of(curve, f))
    knots = [round(v * 2**f) for v in left]
    s = [round(v * 2**F) for v in slopes]
    b = [round(y * 2 ** (f + F)) - si * k for y, si, k in zip(values, s, knots)]
    jumps = lambda v: tuple(int(a - p) for a, p in zip(v, [0] + v[:-1]))  # noqa: E731
    return tuple(knots), jumps(s), jumps(b)


def twin(curve: Curve, values, f: int, F: int | None = None) -> np.ndarray:
    """The gate on plaintext fixed point: x's piece (the last knot <= x; 0 below the first), b + s x at scale
    f + F, floored by F (the protocol's truncation is within one unit of the floor)."""
    F = f if F is None else F
    knots, ds, db = encode(curve, f, F)
    x = np.round(np.asarray(values, dtype=np.float64) * 2**f).astype(np.int64)
    piece = np.searchsorted(np.array(knots), x, side="right") - 1
    s_of, b_of = np.cumsum(ds), np.cumsum(db)
    inside = piece >= 0
    s = np.where(inside, s_of[np.maximum(piece, 0)], 0)
    b = np.where(inside, b_of[np.maximum(piece, 0)], 0)
    return np.floor_divide(b + s * x, 2**F) / 2**f


def widest(curve: Curve, f: int) -> float:
    """The widest chord's width (its slope's rounding, half a unit of 2^-F, is multiplied by at most this)."""
    left, _, _ = pieces(curve, grid_of(curve, f))
    return float(np.diff(np.append(left[: len(left) - (curve.above is not None)], curve.hi)).max())


def bound(curve: Curve, f: int) -> float:
    """Derived bound on |twin - f| on the grid points of [lo, hi] (F = f): the chord's E, the intercept's
    rounding (half a unit of 2^-(2f)), the slope's (half a unit times the widest piece) and the floor (one
    unit)."""
    unit = 2.0**-f
    return curve.error + 0.5 * unit * unit + 0.5 * unit * widest(curve, f) + unit
