"""Local operations shared by the MPCache stages on the two forms a secret cache tensor takes: a reusable
masked operand (``protocols.reuse.MaskedOperand``: masked once, each later product opens only the other
side) or a plain sharing (``SharedTensor``, when reuse is off). Taking public positions, joining along the last
axis and prefix sums send nothing; replacing or appending a row of a masked operand masks the new row afresh
(``MaskedOperand.update``/``append``), a sharing just concatenates. No protocol lives here."""
from __future__ import annotations

import numpy as np

from mpsim import SharedTensor, concatenate
from protocols.reuse import MaskedOperand, _concat


def is_masked(x) -> bool:
    return isinstance(x, MaskedOperand)


def as_tensor(x) -> SharedTensor:
    return x.tensor if is_masked(x) else x


def operand(session, t: SharedTensor, reuse: bool):
    """``t`` masked once as a reusable operand when ``reuse``, else the sharing itself."""
    return session.reusable(t) if reuse else t


def take(x, index, axis: int = 1):
    """Public positions along ``axis`` of a masked operand or a sharing (local)."""
    index = np.asarray(index, dtype=np.int64)
    if is_masked(x):
        return x.take(index, axis=axis)
    return x[(slice(None),) * axis + (index,)]


def join_last(a, b):
    """[a | b] along the last axis: a masked operand stays masked (each mask still pads one value)."""
    if is_masked(a) and is_masked(b):
        return _concat(a, b, axis=-1)
    return concatenate([as_tensor(a), as_tensor(b)], axis=-1)


def replace_row(t, g: int, row: SharedTensor):
    """t with row g (axis 1) replaced: a masked operand masks the new row afresh (``update``)."""
    if is_masked(t):
        return t.update([g], row, axis=1)
    parts = [p for p in (t[:, :g], row, t[:, g + 1 :]) if p.shape[1]]
    return concatenate(parts, axis=1)


def append_row(t, row: SharedTensor):
    """t with ``row`` appended along axis 1: a masked operand masks the new row (``append``)."""
    if is_masked(t):
        return t.append(row, axis=1)
    return concatenate([t, row], axis=1)


def cumsum_last(t: SharedTensor) -> SharedTensor:
    """Prefix sums along the last axis: linear, so each party sums its own shares (local)."""
    payload = t.session.backend.map(lambda p: np.cumsum(p, axis=-1, dtype=np.uint64), t.payload) \
        if t.payload is not None else None
    return t._like(payload, t.shape)
