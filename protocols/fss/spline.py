"""The FSS suite's exp: a piecewise-linear spline whose piece is chosen by one DCF key evaluated at every knot.

One masked opening c = x + r tells each party, for every public knot t_j, the masked value of x - t_j, so a
single DCF key for 1{y < r mod 2^(K-1)} (payload 1 - 2 r_(K-1), beside shares of r_(K-1)) evaluated at each
(c - t_j) mod 2^(K-1) gives arithmetic shares of every msb(x - t_j) at once; the piece's constants (its left
end x_L, its value y_L and its slope s) are then linear in those bits, and e^x = y_L + s (x - x_L) costs one
product. Evaluating one key at many points is local and reveals nothing more (each party computes on its own
key and public values). Cf. the spline gates of Sigma (Gupta et al., PETS 2024, eprint 2023/1269) and the
interval-containment gate of Boyle et al. (Eurocrypt 2021, eprint 2020/1392).

Pieces: chords of e^x, widths h = sqrt(8 E / e^(x_R)) from x_R = 0 down to -16 (E = 2^-10: the chord's error
h^2 e^(x_R) / 8), knots on the 2^-8 grid (exact at every supported f), 0 below -16 (e^-16 < 2^-16).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from mpsim.fss import eval_party
from mpsim.tensor import SharedTensor

from ..cost import Formula
from ..fxp import mul
from ..nonlinear.config import _example_input
from ..registry import protocol
from .compare import open_masked

SPLINE_ERROR = 2.0**-10  # the chords' error bound on [-16, 0]
LOW = -16.0


@functools.cache
def exp_pieces() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left ends x_L ascending, values e^x_L, chord slopes) of the pieces on [LOW, 0]; the last piece's chord
    continues above 0 (outside the domain)."""
    rights, x_r = [], 0.0
    while x_r > LOW:
        h = math.sqrt(8 * SPLINE_ERROR / math.exp(x_r))
        x_l = max(LOW, math.floor((x_r - h) * 256) / 256)
        rights.append((x_l, x_r))
        x_r = x_l
    pieces = sorted(rights)
    left = np.array([a for a, _ in pieces])
    right = np.array([b for _, b in pieces])
    slope = (np.exp(right) - np.exp(left)) / (right - left)
    return left, np.exp(left), slope


def _jumps() -> list[np.ndarray]:
    """The jumps of the piece's (x_L, y_L, s) at each knot (0 below the first): their sums over the knots
    at or below x are x's piece's constants."""
    return [np.diff(np.concatenate([[0.0], v])) for v in exp_pieces()]


def _constants(session, f: int):
    """Per knot t_j (the pieces' left ends), ring encodings of t_j and of the jumps of (x_L, y_L, s) there."""
    ring = session.ring
    return ring.encode(exp_pieces()[0], f), [ring.encode(j, f) for j in _jumps()]


def twin_exp(values, f: int) -> np.ndarray:
    """The spline on plaintext fixed point, as the protocol computes it: the piece's constants as sums of the
    encoded jumps, the product floored (the protocol's truncation adds at most one unit)."""
    scale = 1 << f
    knots = np.round(exp_pieces()[0] * scale).astype(np.int64)
    sums = [np.cumsum(np.round(j * scale).astype(np.int64)) for j in _jumps()]
    x = np.round(np.asarray(values, dtype=np.float64) * scale).astype(np.int64)
    piece = np.searchsorted(knots, x, side="right") - 1  # the last knot <= x; -1 below the lowest
    inside = piece >= 0
    x_left, y_left, s = (np.where(inside, c[np.maximum(piece, 0)], 0) for c in sums)
    return (y_left + np.floor_divide(s * (x - x_left), scale)) / scale


def _piece_bits(session, c, r_top, keys, knots, shape):
    """Arithmetic shares (rows, *shape, J) of [x >= t_j] for every knot: 1 - msb(x - t_j), from the one key."""
    ring, K = session.ring, session.ring.bits
    mask_low = np.uint64((1 << (K - 1)) - 1)
    shifted = ring.reduce(c.reshape(-1, 1) - knots.reshape(1, -1))  # (x - t_j) + r, public
    top = np.right_shift(shifted, np.uint64(K - 1))
    if keys is None:  # ideal: r = 0, so the bits are the function itself
        return (np.uint64(1) - top).reshape((1,) + tuple(shape) + (knots.size,))
    low = np.bitwise_and(shifted, mask_low)
    coef = ring.reduce(np.uint64(1) - np.uint64(2) * top)  # msb = top ^ q = top + (1 - 2 top) q
    rows = []
    for party in (0, 1):
        q = ring.reduce(eval_party(keys, party, low) + r_top[party].reshape(-1, 1))
        msb = ring.reduce(q * coef + (top if party == 0 else np.uint64(0)))
        ge = ring.reduce((np.uint64(1) if party == 0 else np.uint64(0)) - msb)
        rows.append(ge.reshape(tuple(shape) + (knots.size,)))
    return np.stack(rows)


def _cost(d) -> Formula:
    """The opening and the keys (one DCF key, K-bit payload, per element to each party; r's top bit's
    correction to party 0), then one fixed-point product."""
    opening = Formula.of("1", "K*(N-1)*n", "K*n", shipped="n*(128 + (K - 1)*(K + 130) + K)")
    return opening + d.ring_mul.at(nx="n", ny="n", n="n") + d.after_product("n")


@protocol(
    "exp",
    scheme="fss",
    cost=_cost,
    ref="spline by DCF at every knot (cf. Sigma, Gupta et al., PETS 2024; Boyle et al., eprint 2020/1392)",
    dims=lambda x, config=None: {"n": x.size},
    example=_example_input(np.linspace(-6.0, 0.0, 16).reshape(2, 8)),
    parties=lambda n: n == 2,
    vars_doc="n = elements (the configuration's exp method is the Beaver suite's; here: the spline)",
)
def exp(x: SharedTensor, config=None) -> SharedTensor:
    """e^x elementwise for x <= 0 (scale f in, scale f out), by a piecewise-linear spline.

    Steps:
      1. Dealer: r (seeded shares), shares of r_(K-1), one DCF key for 1{y < r mod 2^(K-1)} with payload
         1 - 2 r_(K-1) (``FssKeys.spline_key``).
      2. Open c = x + r (K bits per element).
      3. Each party evaluates its key at (c - t_j) mod 2^(K-1) for every knot t_j: with its share of
         r_(K-1), shares of msb(x - t_j) and so of [x >= t_j] (local).
      4. x_L, y_L, s = the chosen piece's left end, value and slope: sums of the bits times public jumps.
      5. e^x = y_L + s (x - x_L) (one fixed-point product).
    Rounds: 1 + the product's. Comm: (N-1) K n bits for the opening, then the product's.
    Offline: K n bits to party 0; a DCF key (128 + (K - 1)(K + 130) + K bits) per element to each party.
    Leaks: nothing (c is padded by r; each key alone is pseudorandom).
    Domain and error: x <= 0; within SPLINE_ERROR = 2^-10 of e^x on [-16, 0] before fixed point (the chord's
    h^2 e^(x_R) / 8 per piece), plus the coefficients' rounding (half a unit each, times u < 0.1 for the slope)
    and the product's truncation (one unit); 0 below -16 (e^-16 < 2^-16). Above 0 the last chord continues.
    Ref: spline gates of Sigma (Gupta et al., PETS 2024, eprint 2023/1269); DCF and interval containment,
    Boyle et al., Eurocrypt 2021 (eprint 2020/1392).
    """
    session = x.session
    f = x.frac
    knots, (jump_x, jump_y, jump_s) = _constants(session, f)
    r, r_top, keys = session.keys.spline_key(x.shape)
    c, depth = open_masked(x, r)
    session._work("dcf_eval", elems=2 * (session.ring.bits - 1) * x.size * knots.size)
    bits = None if c is None else _piece_bits(session, np.asarray(c, dtype=np.uint64), r_top, keys, knots, x.shape)
    parts = []
    for jump in (jump_x, jump_y, jump_s):
        payload = None if bits is None else session.ring.reduce(np.sum(bits * jump, axis=-1, dtype=np.uint64))
        parts.append(SharedTensor(session, payload, x.shape, f, depth))
    x_left, y_left, slope = parts
    return y_left + mul(slope, x - x_left)
