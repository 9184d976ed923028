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

from .arith import _rng_values
from .boolean import not_
from .oblivious import onehot_rotation
from .rotation import _pow2_at_least
from .registry import call, composed_except, protocol


def check_axis(x: SharedTensor, axis, what: str) -> None:
    """ValueError (numpy's AxisError) unless ``axis`` is an integer naming one of x's axes."""
    if x.ndim == 0:
        raise ValueError(f"{what} needs a tensor with at least one axis, got a 0-d one")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise np.exceptions.AxisError(f"{what}: axis must be an integer in [{-x.ndim}, {x.ndim - 1}] for shape "
                                      f"{x.shape}, got {axis!r}")


def reduced_last(x: SharedTensor, axis) -> SharedTensor:
    """x with the reduced ``axis`` moved last (local); errors for a bad or empty axis."""
    check_axis(x, axis, "a reduction")
    x = x.moveaxis(axis, -1)
    if x.shape[-1] == 0:
        raise ValueError("cannot reduce an empty axis")
    return x


def _tournament(x: SharedTensor, axis: int, largest: bool, with_index: bool):
    x = reduced_last(x, axis)
    n = x.shape[-1]
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
        keep_a = not_(call("msb", d)) if largest else not_(call("msb", -d))
        if with_index:
            ia, ib = index[..., 0 : 2 * m : 2], index[..., 1 : 2 * m : 2]
            di = (ia - ib).reshape(ia.shape + (1,))
            dv = d.reshape(d.shape + (1,))
            # One select for both: the bit multiplies ring elements, so scales are only labels here.
            stacked = concatenate([dv, _relabel(di, d.frac)], axis=-1)
            chosen = call("bit_select", keep_a.reshape(keep_a.shape + (1,)), stacked)
            new_values = b + chosen[..., 0]
            new_index = ib + _relabel(chosen[..., 1], 0)
        else:
            new_values = b + call("bit_select", keep_a, d)
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


def _reduce_dims(x, axis=-1, return_index=False):
    n = x.shape[axis]
    return {"rows": x.size // n if n else 0, "n": n, "L": levels(n), "T": _pow2_at_least(n)}


def _reduce_example(s):
    x = _rng_values(s, (3, 5))
    return (x,), {"axis": -1}


# Value only: per pair one msb and one bit_select of one element (rows (n - 1) pairs over L levels). ABY3
# has its own max and min with fused round trips (protocols/aby3/reduce.py), the FSS suite one gate per
# level (protocols/fss/reduce.py).
_VALUE = {
    "scheme": composed_except("aby3", "fss"),
    "cost": lambda d: (d.msb + d.bit_select.at(nb="n", ny="n")).at(n="rows*(n-1)").levels("L"),
}
def arg_cost(d):
    """With the index: the select moves (value, index) pairs; then a rotation one-hot of the index per row."""
    pairs = (d.msb + d.bit_select.at(nb="n", ny="2*n", n="2*n")).at(n="rows*(n-1)").levels("L")
    return pairs + d.onehot_rotation.at(m="rows")


_ARG = {"scheme": composed_except("fss"), "cost": arg_cost}  # the FSS suite's: protocols/fss/reduce.py
_REF = "log-depth tournament of msb + bit_select (cf. CrypTen/SPU max), batched over rows"
_ARG_REF = _REF + "; one-hot by dealer rotation (onehot_rotation)"
_VARS = "rows = elements / n; n = reduced axis length; L = ceil(log2 n) levels"
_ARG_VARS = _VARS + "; T = n rounded up to a power of two"


@protocol("max", **_VALUE, ref=_REF, dims=_reduce_dims, example=_reduce_example, vars_doc=_VARS)
def max(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Maximum along ``axis`` (values only), batched over every other axis.

    Steps (per level, all rows at once; L = ceil(log2 n) levels, n - 1 pairs per row in all):
      1. Pair the surviving candidates (a, b); an odd one waits for the next level.
      2. keep_a = NOT msb(a - b) (ties keep a, the lower index).
      3. winner = b + bit_select(keep_a, a - b) (1 round).
    Rounds: L (2 + log2 K), whatever the number of rows.
    Comm: (N-1) rows (n-1) (K + 2(2K - 2 - log2 K) + 1 + K) bits per party.
    Offline: rows (n-1) (3K - 2 - log2 K + 2K) bits. Leaks: nothing beyond the output.
    Ref: the module docstring (a tournament of ``msb`` and ``bit_select``, as in CrypTen/SPU).
    """
    return _tournament(x, axis, largest=True, with_index=False)[0]


@protocol("min", **_VALUE, ref=_REF, dims=_reduce_dims, example=_reduce_example, vars_doc=_VARS)
def min(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Minimum along ``axis`` (values only).

    Steps:
      1. As ``max``, with keep_a = NOT msb(b - a) per pair (ties keep the lower index).
    Rounds: L (2 + log2 K). Comm: as ``max`` (offline too). Leaks: nothing beyond the output.
    Ref: as ``max``.
    """
    return _tournament(x, axis, largest=False, with_index=False)[0]


def _arg(x, axis, largest, return_index):
    values, index = _tournament(x, axis, largest, with_index=True)
    n = x.shape[axis]
    if index.frac:
        raise AssertionError("index must stay integer-encoded")
    oh = onehot_rotation(index, n)
    oh = oh.moveaxis(-1, axis)
    return (values, oh, index) if return_index else (values, oh)


@protocol("argmax", **_ARG, ref=_ARG_REF, dims=_reduce_dims, example=_reduce_example, vars_doc=_ARG_VARS)
def argmax(x: SharedTensor, axis: int = -1, return_index: bool = False):
    """(max values, secret one-hot of the first maximum along ``axis``[, secret integer index]).

    Steps:
      1. The ``max`` tournament carrying each candidate's index: one bit_select per pair moves the
         (value, index) difference together (L levels of msb + select).
      2. onehot_rotation(index, n) (1 round; none when n = 1), moved back to ``axis``.
    Rounds: L (2 + log2 K) + 1.
    Comm: (N-1) rows ((n-1)(K + 2(2K - 2 - log2 K) + 1 + 2K) + log2 T) bits per party.
    Offline: rows ((n-1)(3K - 2 - log2 K + 3K) + K T + log2 T) bits. Leaks: nothing beyond the output.
    Ref: the module docstring; ``onehot_rotation`` for the one-hot.
    """
    return _arg(x, axis, True, return_index)


@protocol("argmin", **_ARG, ref=_ARG_REF, dims=_reduce_dims, example=_reduce_example, vars_doc=_ARG_VARS)
def argmin(x: SharedTensor, axis: int = -1, return_index: bool = False):
    """(min values, secret one-hot of the first minimum along ``axis``[, secret integer index]).

    Steps:
      1. As ``argmax``, with the ``min`` comparison (keep_a = NOT msb(b - a)).
    Rounds: L (2 + log2 K) + 1. Comm: as ``argmax`` (offline too). Leaks: nothing beyond the output.
    Ref: as ``argmax``.
    """
    return _arg(x, axis, False, return_index)


def levels(n: int) -> int:
    """Comparison layers of the tournament over n candidates."""
    return math.ceil(math.log2(n)) if n > 1 else 0
