"""Reductions along an axis: max/min and argmax/argmin, batched over every other axis.

A log-depth tournament: at each level the surviving candidates are paired, one comparison (MSB) decides
each pair and one ``select`` keeps the winner, so a level costs 1 + log2 K + 1 rounds whatever the number of
rows or heads, and ceil(log2 n) levels reduce n candidates (n - 1 comparisons in all). An odd candidate out
waits for the next level. Ties go to the lower index, as in numpy.

argmax/argmin carry the winner's index along (selected with the same bit in the same call), then turn it into
a one-hot with ``onehot_rotation`` (1 round, log2 T bits), which is far cheaper than carrying one-hot vectors
through the tree.
"""
from __future__ import annotations

import math

import numpy as np

from mpsim.tensor import SharedTensor, concatenate

from .boolean import msb, not_
from .compare import select
from .oblivious import onehot_rotation


def _tournament(x: SharedTensor, axis: int, largest: bool, with_index: bool):
    x = x.moveaxis(axis, -1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("cannot reduce an empty axis")
    session = x.session
    values = x
    index = None
    if with_index:
        index = session.zeros(x.shape, frac_bits=0) + np.arange(n, dtype=np.int64)
    while values.shape[-1] > 1:
        m = values.shape[-1] // 2
        a, b = values[..., 0 : 2 * m : 2], values[..., 1 : 2 * m : 2]
        d = a - b
        # keep a when a >= b (largest) or a <= b (smallest): ties go to the lower index
        keep_a = not_(msb(d)) if largest else not_(msb(-d))
        if with_index:
            ia, ib = index[..., 0 : 2 * m : 2], index[..., 1 : 2 * m : 2]
            di = (ia - ib).reshape(ia.shape + (1,))
            dv = d.reshape(d.shape + (1,))
            # One select for both: the bit multiplies ring elements, so scales are only labels here.
            stacked = concatenate([dv, _relabel(di, d.frac)], axis=-1)
            chosen = select(keep_a.reshape(keep_a.shape + (1,)), stacked)
            new_values = b + chosen[..., 0]
            new_index = ib + _relabel(chosen[..., 1], 0)
        else:
            new_values = b + select(keep_a, d)
        if values.shape[-1] % 2:
            new_values = concatenate([new_values, values[..., -1:]], axis=-1)
            if with_index:
                new_index = concatenate([new_index, index[..., -1:]], axis=-1)
        values = new_values
        if with_index:
            index = new_index
    return values[..., 0], (index[..., 0] if with_index else None)


def _relabel(t: SharedTensor, frac: int) -> SharedTensor:
    """The same ring elements under another scale label (no arithmetic)."""
    return t._like(t.payload, t.shape, frac=frac)


def max(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Maximum along ``axis`` (values only): ceil(log2 n) levels of MSB + select, batched over rows."""
    with x.session.scope("max"):
        return _tournament(x, axis, largest=True, with_index=False)[0]


def min(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Minimum along ``axis`` (values only)."""
    with x.session.scope("min"):
        return _tournament(x, axis, largest=False, with_index=False)[0]


def _arg(x, axis, largest, return_index):
    with x.session.scope("argmax" if largest else "argmin"):
        return _arg_unscoped(x, axis, largest, return_index)


def _arg_unscoped(x, axis, largest, return_index):
    values, index = _tournament(x, axis, largest, with_index=True)
    n = x.shape[axis]
    if index.frac:
        raise AssertionError("index must stay integer-encoded")
    oh = onehot_rotation(index, n)
    oh = oh.moveaxis(-1, axis)
    return (values, oh, index) if return_index else (values, oh)


def argmax(x: SharedTensor, axis: int = -1, return_index: bool = False):
    """(max values, secret one-hot of the first maximum along ``axis``[, secret integer index])."""
    return _arg(x, axis, True, return_index)


def argmin(x: SharedTensor, axis: int = -1, return_index: bool = False):
    """(min values, secret one-hot of the first minimum along ``axis``[, secret integer index])."""
    return _arg(x, axis, False, return_index)


def levels(n: int) -> int:
    """Comparison layers of the tournament over n candidates."""
    return math.ceil(math.log2(n)) if n > 1 else 0
