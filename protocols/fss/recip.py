"""The FSS suite's reciprocal and rsqrt: normalised by one gate, a spline on [0.5, 1), one product.

The Beaver suite normalises by an MSB thermometer, a selection and a truncation, iterates (Goldschmidt or
Newton, several products) and rescales by a second selection: 13 rounds. Here:

1. One gate at the knots 2^j (j = 1 .. P-1, P = f + D bit positions; ``gate.gate_terms``) gives shares of
   the thermometer g_j = [x >= 2^(j-f)] *and* of g_j x, so the one-hot of the leading bit h_j = g_j - g_(j+1)
   and h_j x are local, and so is z = sum_j h_j x 2^(P-1-j) = x 2^(P-1-pos); truncated by D it is
   x_n = x 2^(f-1-pos) in [0.5, 1) at scale f (no selection round: the gate's second output is the product).
2. A spline gate of 1/x_n (or 1/sqrt(x_n)) on [0.5, 1) (``pieces.RECIP``, ``pieces.RSQRT``: chords within
   2^-14), truncated by f.
3. The public-weighted sum w = sum_j h_j v_j (local; the Beaver suite's rescaling weights v_j at scale
   S = f + 1), one product w y_n, truncated by S: 1/x = y_n 2^(f-1-pos), 1/sqrt(x) = y_n 2^((f-1-pos)/2).

Rounds: 3 (+ the truncations' TR each). The gates' keys replace the Beaver suite's thermometer, selections
and iterations offline.
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor

from ..fxp import truncate
from ..nonlinear.config import NonlinearConfig, _example_input, _relabel
from ..nonlinear.recip import _normalised_input, _recip_weights, _rsqrt_weights
from ..registry import call, protocol
from . import pieces
from .gate import REF, gate_cost, gate_terms
from .spline import curve_gate


def _normalise(x: SharedTensor, P: int, D: int):
    """(one-hot h of pos = floor(log2 x_ring) as arithmetic shares (rows, *shape, P), x_n at scale f)."""
    session, f = x.session, x.frac
    ring = session.ring
    g, gx, depth = gate_terms(x, np.array([1 << j for j in range(1, P)], dtype=np.uint64))
    h = z = None
    if g is not None:
        zeros = np.zeros(g.shape[:-1] + (1,), dtype=np.uint64)
        first = zeros.copy()
        first[0] = 1  # g_0 = [x >= 2^-f] = 1 on the domain (party 0's share; 1 under ideal)
        rows_x = np.asarray(x.payload, dtype=np.uint64)[..., None]
        g_all = np.concatenate([first, g, zeros], axis=-1)
        gx_all = np.concatenate([rows_x, gx, zeros], axis=-1)
        h = ring.reduce(g_all[..., :-1] - g_all[..., 1:])
        hx = ring.reduce(gx_all[..., :-1] - gx_all[..., 1:])
        weights = np.array([1 << (P - 1 - j) for j in range(P)], dtype=np.uint64)
        z = ring.reduce(np.sum(ring.reduce(hx * weights), axis=-1, dtype=np.uint64))
    onehot = SharedTensor(session, h, tuple(x.shape) + (P,), 0, depth)
    return onehot, truncate(SharedTensor(session, z, x.shape, f + D, depth), D)


def _inverse(x: SharedTensor, config, curve: pieces.Curve, weights_of, what: str) -> SharedTensor:
    _, f, P, h, xn = _normalised_input(x, config, what, normalise=_normalise)
    yn = curve_gate(xn, curve)
    S = f + 1
    w = (h * weights_of(f, P)).sum(axis=-1)  # public integers times the one-hot: local
    return truncate(_relabel(call("ring_mul", _relabel(w, 0), yn), f + S), S)


def _cost(d):
    gates = gate_cost("m") + d.trunc("m")
    return gates * 2 + d.ring_mul.at(nx="m", ny="m", n="m") + d.trunc("m")


_CELL = {"scheme": "fss", "cost": _cost, "ref": REF, "parties": lambda n: n == 2,
         "example": _example_input(np.array([[0.5, 1.0, 1.5, 3.0, 7.25, 10.0, 33.0, 100.0]] * 2)),
         "dims": lambda x, config=None: {"m": x.size},
         "vars_doc": "m = elements (P = f + D knots in the first gate; the configuration's D only)"}


@protocol("reciprocal", **_CELL)
def reciprocal(x: SharedTensor, config: NonlinearConfig | None = None) -> SharedTensor:
    """1/x elementwise for positive x: normalisation gate, spline of 1/x_n, one product (module docstring).

    Domain: x in [2^-f, 2^D) (D = config.log2_max(K, f), as the Beaver suite's; check_domain raises).
    Steps: 1. gate at 2^j: h and x_n (one truncation by D). 2. spline gate of 1/x_n on [0.5, 1) (``pieces.
    RECIP``), truncated by f. 3. w = sum_j h_j 2^(2f-j), y = w y_n (one product) truncated by f + 1.
    Rounds: 3 + 3 TR. Comm: (N-1) K m bits per gate, one product of m by m, the truncations'.
    Offline: two gate keys per element (``gate.gate_cost``) and the product's triple.
    Error: the twin (``twin_inverse``) is within 2^(f-1-pos) (``pieces.bound(RECIP, f)`` + 5 2^-f) + 2^-f of
    1/x, pos = floor(log2 of x's ring integer) (the spline's bound and x_n's floor through slopes below 4.2,
    scaled by the rescaling); the protocol within (6 2^(f-1-pos) + 2) units of the twin (x_n one unit off
    moves y_n's floor by at most 5 units, its truncation one more; the last floor and truncation two).
    Measured at f = 16: within 2.8 units of 1/x for x >= 1 (the tests hold it to 5).
    Leaks: nothing beyond the output.
    Ref: normalisation as Catrina-Saxena (FC 2010) with the thermometer and its products from one gate;
    the spline gates of Sigma (Gupta et al., PETS 2024, eprint 2023/1269).
    """
    return _inverse(x, config, pieces.RECIP, _recip_weights, "reciprocal")


@protocol("rsqrt", **_CELL)
def rsqrt(x: SharedTensor, config: NonlinearConfig | None = None) -> SharedTensor:
    """1/sqrt(x) elementwise for positive x: as ``reciprocal`` with the spline of 1/sqrt(x_n) and the weights
    round(2^((f-1-j)/2 + f + 1)) (the odd exponents carry sqrt(2) in the weight).

    Domain, steps: as ``reciprocal``. Rounds: 3 + 3 TR. Comm: as ``reciprocal``; offline too.
    Error: the twin within 2^((f-1-pos)/2) (``pieces.bound(RSQRT, f)`` + 3 2^-f) + 2 2^-f of 1/sqrt(x) (the
    weight's rounding adds at most half a unit); the protocol within (4 2^((f-1-pos)/2) + 2) units of it.
    Leaks: nothing beyond the output. Ref: as ``reciprocal``.
    """
    return _inverse(x, config, pieces.RSQRT, _rsqrt_weights, "rsqrt")


def twin_inverse(values, f: int, D: int, curve: pieces.Curve, weights_of) -> np.ndarray:
    """reciprocal's (RECIP, ``_recip_weights``) or rsqrt's (RSQRT, ``_rsqrt_weights``) steps on plaintext
    fixed point, every truncation a floor."""
    P = f + D
    x = np.round(np.asarray(values, dtype=np.float64) * 2**f).astype(np.int64)
    pos = np.clip(np.floor(np.log2(np.maximum(x, 1))).astype(np.int64), 0, P - 1)
    pos = np.where(np.left_shift(np.int64(1), pos) > x, pos - 1, pos)  # guard float log2 at powers of two
    z = x * np.left_shift(np.int64(1), P - 1 - pos)
    xn = np.right_shift(z, D)
    yn = np.round(pieces.twin(curve, xn / 2**f, f) * 2**f).astype(np.int64)
    w = weights_of(f, P)[pos]
    return np.floor_divide(w * yn, 2 ** (f + 1)) / 2**f
