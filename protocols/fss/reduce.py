"""The FSS suite's max, min, argmax and argmin: tournaments whose level is one exact gate (1 round per level).

Per level the survivors are paired (a, b) and the winner is b + relu(a - b) (max) or a - relu(a - b) (min):
the gate gives the selected difference directly, so no selection round follows the comparison (the Beaver
suite's level is an msb and a bit_select). Ties give the same value either way. argmax and argmin also carry
the index: the same gate gives the bit g = [a >= b] as arithmetic shares, and ib + g (ia - ib) is one Beaver
product that only the next level's index waits for, so it runs beside the next level's gate: L + 1 rounds
(the Beaver suite: 2 L + 1), then the one-hot.
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor, concatenate

from ..cost import Expr, Formula
from ..oblivious import onehot_rotation
from ..reduce import _reduce_dims, _reduce_example, check_axis, reduced_last
from ..registry import call, protocol
from .gate import REF, gate_at_zero, gate_cost
from .spline import relu_raw


def _tournament(x: SharedTensor, axis: int, largest: bool) -> SharedTensor:
    values = reduced_last(x, axis)
    while values.shape[-1] > 1:
        m = values.shape[-1] // 2
        a, b = values[..., 0 : 2 * m : 2], values[..., 1 : 2 * m : 2]
        kept = relu_raw(a - b)
        winners = b + kept if largest else a - kept
        if values.shape[-1] % 2:
            winners = concatenate([winners, values[..., -1:]], axis=-1)
        values = winners
    return values[..., 0]


_CELL = {"scheme": "fss", "cost": lambda d: gate_cost("rows*(n-1)").levels("L"), "ref": REF,
         "dims": _reduce_dims, "example": _reduce_example, "parties": lambda n: n == 2,
         "vars_doc": "rows = elements / n; n = reduced axis length; L = ceil(log2 n) levels"}


@protocol("max", **_CELL)
def max(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Maximum along ``axis``, batched over every other axis: L levels of one ReLU gate each.

    Steps (per level, all rows at once): pair the survivors (an odd one waits); winner = b + relu(a - b).
    Rounds: L = ceil(log2 n). Comm: (N-1) K rows (n-1) bits per party. Offline: one gate key per pair
    (``gate.gate_cost``). Leaks: nothing beyond the output.
    Ref: the module docstring; the gate of ``protocols.fss.gate``.
    """
    return _tournament(x, axis, largest=True)


@protocol("min", **_CELL)
def min(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Minimum along ``axis``: as ``max`` with winner = a - relu(a - b).

    Rounds: L. Comm: as ``max``; offline too. Leaks: nothing beyond the output. Ref: as ``max``.
    """
    return _tournament(x, axis, largest=False)


def _arg_tournament(x: SharedTensor, axis: int, largest: bool):
    """(values, integer index) of the first maximum (or minimum) along ``axis``: each level's gate gives the
    bit g = [a >= b] (or [a <= b]) as arithmetic shares beside g (a - b), so the value needs no product and
    the index's selection ib + g (ia - ib), one Beaver product, runs beside the next level's gate."""
    values = reduced_last(x, axis)
    session = x.session
    n = values.shape[-1]
    index = session.zeros(values.shape, frac_bits=0) + np.arange(n, dtype=np.int64)
    while values.shape[-1] > 1:
        m = values.shape[-1] // 2
        a, b = values[..., 0 : 2 * m : 2], values[..., 1 : 2 * m : 2]
        ia, ib = index[..., 0 : 2 * m : 2], index[..., 1 : 2 * m : 2]
        d = a - b if largest else b - a  # keep a when d >= 0: ties keep the lower index
        g, gd = gate_at_zero(d)
        winners = b + gd if largest else b - gd
        chosen = ib + call("ring_mul", g, ia - ib)
        if values.shape[-1] % 2:
            winners = concatenate([winners, values[..., -1:]], axis=-1)
            chosen = concatenate([chosen, index[..., -1:]], axis=-1)
        values, index = winners, chosen
    return values[..., 0], index[..., 0]


def _arg_cost(d):
    """L levels of one gate over the pairs; the index products run beside the next level, so they add one
    round (the last level's) and every level's call; then the one-hot of the index."""
    pairs = "rows*(n-1)"
    product = d.ring_mul.at(nx=pairs, ny=pairs, n=pairs)
    products = Formula(product.rounds, product.comm, product.offline, product.calls * Expr("L"), product.shipped)
    return gate_cost(pairs).levels("L") + products + d.onehot_rotation.at(m="rows")


_ARG_CELL = {**_CELL, "cost": _arg_cost,
             "vars_doc": _CELL["vars_doc"] + "; T = n rounded up to a power of two"}


def _arg(x, axis, largest, return_index):
    check_axis(x, axis, "a reduction")
    values, index = _arg_tournament(x, axis, largest)
    oh = onehot_rotation(index, x.shape[axis]).moveaxis(-1, axis)
    return (values, oh, index) if return_index else (values, oh)


@protocol("argmax", **_ARG_CELL)
def argmax(x: SharedTensor, axis: int = -1, return_index: bool = False):
    """(max values, secret one-hot of the first maximum along ``axis``[, secret integer index]).

    Steps (per level, all rows at once): g = [a >= b] and g (a - b) from one gate; winner = b + g (a - b);
    index = ib + g (ia - ib), one Beaver product beside the next level's gate. Then the one-hot of the index
    (``onehot_rotation``: the suite's DPF one-hot).
    Rounds: L + 1 (+ 1 for the one-hot; the Beaver suite: 2 L + 1).
    Comm: (N-1) K rows (n-1) bits per party for the gates, the index products', the one-hot's.
    Offline: a gate key per pair, a Beaver triple per pair, the one-hot's DPF keys.
    Leaks: nothing beyond the output. Ref: the module docstring.
    """
    return _arg(x, axis, True, return_index)


@protocol("argmin", **_ARG_CELL)
def argmin(x: SharedTensor, axis: int = -1, return_index: bool = False):
    """(min values, secret one-hot of the first minimum along ``axis``[, secret integer index]).

    Steps: as ``argmax`` with g = [a <= b] from the gate on b - a, winner = b - g (b - a).
    Rounds: L + 1 (+ 1 for the one-hot). Comm: as ``argmax``; offline too.
    Leaks: nothing beyond the output. Ref: as ``argmax``.
    """
    return _arg(x, axis, False, return_index)
