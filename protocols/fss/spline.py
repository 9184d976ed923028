"""The FSS suite's splines: exp, SiLU and GeLU as one spline gate each (1 round, no product), ReLU and the
elementwise maximum and minimum as the one-knot gate (1 round, exact).

Each approximation's pieces, encoding, twin and bound are in ``pieces``; the gate in ``gate``. A gate's
b + s x sits at scale 2f and is truncated by f with the session's truncation (local for K = 64: no round).
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor

from ..compare import _diff, _pair_dims, _pair_example, _unary_example
from ..fxp import truncate
from ..nonlinear.config import _example_input
from ..registry import protocol
from . import pieces
from .gate import REF, gate_at_zero, gate_cost, spline_raw


def curve_gate(x: SharedTensor, curve: pieces.Curve) -> SharedTensor:
    """The curve's spline at x (scale f in and out): one gate, then one truncation by f."""
    f = x.frac
    knots, ds, db = pieces.encode(curve, f, f)
    return truncate(spline_raw(x, knots, ds, db, f), f)


def _curve_cost(d):
    return gate_cost() + d.trunc("n")


def _curve_doc(curve: pieces.Curve) -> str:
    return (f"{len(pieces.pieces(curve, curve.grid)[0])} pieces on [{curve.lo:g}, {curve.hi:g}], error "
            f"2^{int(np.log2(curve.error))} before fixed point")


_CURVE = {"scheme": "fss", "cost": _curve_cost, "ref": REF, "dims": lambda x, config=None: {"n": x.size},
          "parties": lambda n: n == 2}


@protocol("exp", **_CURVE, example=_example_input(np.linspace(-6.0, 0.0, 16).reshape(2, 8)),
          vars_doc="n = elements (the configuration's exp method is the Beaver suite's; here: "
          + _curve_doc(pieces.EXP) + ")")
def exp(x: SharedTensor, config=None) -> SharedTensor:
    """e^x elementwise for x <= 0 (scale f in, scale f out), by a piecewise-linear spline in one gate.

    Steps:
      1. Gate (``gate.gate_terms``): open c = x + r; each party evaluates its DCF key at every knot: shares
         of g_j = [x >= t_j] and g_j x.
      2. b + s x = sum_j (db_j g_j + ds_j g_j x) with the pieces' public jumps (local), at scale 2f.
      3. Truncate by f.
    Rounds: 1 + TR. Comm: (N-1) K n bits, then the truncation's. Offline: 2K n bits to party 0; a DCF key
    with a 2-element payload (128 + (K - 1)(2K + 130) + 2K bits) per element to each party.
    Leaks: nothing (c is padded by r; each key alone is pseudorandom).
    Domain and error: x <= 0; within ``pieces.bound(EXP, f)`` of e^x on [-16, 0] (the chords' 2^-10, the
    slope's rounding times the widest piece, a floor), the protocol within one unit of its twin; 0 below
    -16 (e^-16 < 2^-16). Above 0 the last chord continues.
    Ref: spline gates of Sigma (Gupta et al., PETS 2024, eprint 2023/1269); DCF, Boyle et al., Eurocrypt 2021
    (eprint 2020/1392).
    """
    return curve_gate(x, pieces.EXP)


_ACT_EXAMPLE = _example_input(np.array([[-9.0, -3.5, -1.0, -0.25, 0.0, 0.5, 2.0, 17.0]] * 2))


@protocol("silu", **_CURVE, example=_ACT_EXAMPLE, vars_doc="n = elements; " + _curve_doc(pieces.SILU))
def silu(x: SharedTensor) -> SharedTensor:
    """SiLU(x) = x sigmoid(x) elementwise by a spline in one gate (steps and costs as ``exp``).

    Rounds: 1 + TR. Comm: as ``exp``; offline too. Leaks: nothing.
    Domain and error: any x with |x| < 2^(K-2-2f) (the knots' differences stay in the ring); within
    ``pieces.bound(SILU, f)`` of SiLU on [-16, 16], 0 below (|SiLU| < 2^-19 there), x above (off by less than
    2^-19). Ref: as ``exp``.
    """
    return curve_gate(x, pieces.SILU)


@protocol("gelu", **_CURVE, example=_ACT_EXAMPLE, vars_doc="n = elements; " + _curve_doc(pieces.GELU))
def gelu(x: SharedTensor) -> SharedTensor:
    """GeLU(x) = x Phi(x) (erf form) elementwise by a spline in one gate (steps and costs as ``exp``).

    Rounds: 1 + TR. Comm: as ``exp``; offline too. Leaks: nothing.
    Domain and error: any x with |x| < 2^(K-2-2f); within ``pieces.bound(GELU, f)`` of GeLU on [-8, 8], 0
    below, x above (off by less than 2^-40). Ref: as ``exp``.
    """
    return curve_gate(x, pieces.GELU)


def relu_raw(d: SharedTensor) -> SharedTensor:
    """max(d, 0) exactly: the one-knot gate's [d >= 0] d (no truncation)."""
    return gate_at_zero(d)[1]


_EXACT = {"scheme": "fss", "cost": lambda d: gate_cost(), "ref": REF, "parties": lambda n: n == 2}


@protocol("relu", **_EXACT, dims=lambda x: {"n": x.size}, example=_unary_example, vars_doc="n = elements")
def relu(x: SharedTensor) -> SharedTensor:
    """max(x, 0) by the one-knot gate: g = [x >= 0] and g x from one opening and one key; exact.

    Rounds: 1. Comm: (N-1) K n bits. Offline: as ``exp``'s gate. Leaks: nothing.
    Ref: the ReLU of Boyle et al. (eprint 2020/1392) as a spline gate.
    """
    return relu_raw(x)


@protocol("maximum", **_EXACT, dims=_pair_dims, example=_pair_example,
          vars_doc="n = elements of the broadcast difference")
def maximum(x: SharedTensor, y) -> SharedTensor:
    """Elementwise max: y + relu(x - y); either operand may be public. Exact.

    Rounds: 1. Comm: (N-1) K n bits, n = |x - y|. Offline: the gate's. Leaks: nothing beyond the output
    (|x - y| < 2^(K-1) ring units). Ref: as ``relu``.
    """
    d = _diff(x, y)
    return relu_raw(d) + y


@protocol("minimum", **_EXACT, dims=_pair_dims, example=_pair_example,
          vars_doc="n = elements of the broadcast difference")
def minimum(x: SharedTensor, y) -> SharedTensor:
    """Elementwise min: x - relu(x - y); either operand may be public. Exact.

    Rounds: 1. Comm: as ``maximum``; offline too. Leaks: nothing beyond the output. Ref: as ``relu``.
    """
    d = _diff(x, y)
    return -relu_raw(d) + x
