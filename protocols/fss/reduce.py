"""The FSS suite's max and min: a tournament whose level is one exact ReLU gate (1 round per level).

Per level the survivors are paired (a, b) and the winner is b + relu(a - b) (max) or a - relu(a - b) (min):
the gate gives the selected difference directly, so no selection round follows the comparison (the Beaver
suite's level is an msb and a bit_select). Ties give the same value either way. argmax and argmin keep the
additive tournament (msb and a selection of (value, index) pairs: 2 rounds per level), since the index
needs the comparison's bit.
"""
from __future__ import annotations

from mpsim.tensor import SharedTensor, concatenate

from ..reduce import _reduce_dims, _reduce_example, reduced_last
from ..registry import protocol
from .gate import REF, gate_cost
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
