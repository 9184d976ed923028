"""Reusable masked operands: a secret matrix masked and opened once, then used in many products.

Model weights, and the KV cache across decode steps, are right operands of many matrix products. A plain
Beaver matmul opens both operands every time; here the matrix W is masked once and only the left operand is
opened per product.

Who learns what, and why it is secure (semi-honest, trusted dealer):

* One-off: the dealer draws a uniform mask B (shares derived from the seeds, so it costs nothing offline)
  and the parties open D = W - B. D is W one-time padded by B, so D is uniform and independent of W. The
  owner of W can compute B = W - D; that is harmless because B pads nothing else.
* Per use t: the dealer draws a fresh uniform A_t and ships shares of C_t = A_t @ B. The parties open
  E_t = X_t - A_t, which is X_t one-time padded by the fresh A_t, and compute
  Z = C_t + E_t @ B + A_t @ D + E_t @ D (the last term by party 0 only) = X_t @ W.
* Invariants: a mask is never reused for a different value: ``update`` gives overwritten rows fresh masks
  (otherwise opening k - b and k' - b would reveal k - k'); ``append`` masks new rows with fresh mask rows;
  ``take`` (compaction by public positions) moves each row's mask with its content, so every mask still
  pads exactly one value. Every product draws a fresh A_t, so distinct left operands never share a pad.
  There is no way to change the value under an existing mask.

Costs: the one-off opening is the ``mask_operand`` protocol (1 round, K(N-1)|W| bits per party), accounted
apart from the per-use ``matmul_reused`` protocol (1 round, K(N-1)|X_t| bits per party instead of
K(N-1)(|X_t| + |W|)).
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor, _shape_after

from .arith import _lift, _matmul_dims, _ring_sub, _rng_values, matmul_shapes, promote_matmul
from .registry import protocol


class MaskedOperand:
    """A secret tensor W known to the parties as (public D = W - B, shares of B); the dealer keeps B.

    Build with ``session.reusable(w)``; use as the right operand: ``x @ wm``.
    """

    def __init__(self, session, shape, frac, depth, opened, mask_shares, dealer_mask, call=None):
        self.session = session
        self.call = session.channel.latest_call(depth) if call is None else call
        self.shape = tuple(shape)
        self.frac = frac
        self.depth = depth
        self.opened = opened
        self.mask_shares = mask_shares
        self.dealer_mask = dealer_mask

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self) -> str:
        return f"MaskedOperand(shape={self.shape}, frac={self.frac})"

    def _relabel(self, fn) -> "MaskedOperand":
        """Apply a local shape operation to D, B's shares and the dealer's B alike (same value, same mask)."""
        shape = _shape_after(self.shape, fn)
        if self.opened is None:
            return MaskedOperand(self.session, shape, self.frac, self.depth, None, None, None, self.call)
        shares = np.ascontiguousarray(np.stack([fn(row) for row in self.mask_shares]))
        return MaskedOperand(
            self.session, shape, self.frac, self.depth, np.ascontiguousarray(fn(self.opened)), shares,
            np.ascontiguousarray(fn(self.dealer_mask)),
        )

    def reshape(self, *shape) -> "MaskedOperand":
        """A reshaped view (local): each mask element still pads the value it padded before."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._relabel(lambda a: a.reshape(shape))

    def __getitem__(self, index) -> "MaskedOperand":
        """A slice by public indices (local; masks move with their content, like ``take``)."""
        if isinstance(index, SharedTensor):
            raise TypeError("indexing by a secret needs protocols.gather")
        return self._relabel(lambda a: a[index])

    def transpose(self, *axes) -> "MaskedOperand":
        return self._relabel(lambda a: a.transpose(*axes) if axes else a.transpose())

    @property
    def T(self) -> "MaskedOperand":
        return self.transpose()

    def swapaxes(self, a1: int, a2: int) -> "MaskedOperand":
        return self._relabel(lambda a: a.swapaxes(a1, a2))

    def take(self, indices, axis: int) -> "MaskedOperand":
        """Keep the entries at public ``indices`` along ``axis`` (compaction); masks move with content."""
        indices = np.asarray(indices)
        if not np.issubdtype(indices.dtype, np.integer):
            raise TypeError("take needs public integer indices; secret selection is protocols.gather")
        return self._relabel(lambda a: np.take(a, indices, axis=axis))

    @property
    def tensor(self) -> SharedTensor:
        """W as an ordinary sharing (B's shares, with party 0 adding D). Local."""
        payload = None
        if self.opened is not None:
            payload = self.session.backend.add_public(self.mask_shares, self.opened)
        return SharedTensor(self.session, payload, self.shape, self.frac, self.depth, call=self.call)

    def append(self, rows: SharedTensor, axis: int = -2) -> "MaskedOperand":
        """W with ``rows`` concatenated along ``axis``; only the new rows are masked (fresh) and opened."""
        new = mask_operand(rows)
        return _concat(self, new, axis)

    def update(self, index, rows: SharedTensor, axis: int = -2) -> "MaskedOperand":
        """Overwrite the entries at public ``index`` along ``axis`` with ``rows``, under fresh masks."""
        index = np.atleast_1d(np.asarray(index))
        if not np.issubdtype(index.dtype, np.integer):
            raise TypeError("update needs public integer positions")
        new = mask_operand(rows)
        axis = axis % self.ndim
        expected = self.shape[:axis] + (len(index),) + self.shape[axis + 1 :]
        if new.shape != expected:
            raise ValueError(f"update at {len(index)} positions needs rows of shape {expected}, got {new.shape}")
        if self.opened is None:
            return MaskedOperand(self.session, self.shape, self.frac, max(self.depth, new.depth), None, None, None)
        opened, shares, dealer = self.opened.copy(), self.mask_shares.copy(), self.dealer_mask.copy()
        sl = (slice(None),) * axis + (index,)
        opened[sl] = new.opened
        dealer[sl] = new.dealer_mask
        shares[(slice(None),) + sl] = new.mask_shares
        return MaskedOperand(self.session, self.shape, self.frac, max(self.depth, new.depth), opened, shares, dealer)


def _concat(a: MaskedOperand, b: MaskedOperand, axis: int) -> MaskedOperand:
    if a.session is not b.session:
        raise ValueError("cannot combine operands of two different sessions")
    if a.frac != b.frac:
        raise ValueError(f"appended rows have scale {b.frac}, the operand has {a.frac}")
    axis = axis % a.ndim
    dummy = [np.broadcast_to(np.empty((), np.uint8), s) for s in (a.shape, b.shape)]
    try:
        shape = np.concatenate(dummy, axis=axis).shape
    except ValueError as err:
        raise ValueError(f"cannot append shape {b.shape} to {a.shape} along axis {axis}: {err}") from None
    depth = max(a.depth, b.depth)
    if a.opened is None:
        return MaskedOperand(a.session, shape, a.frac, depth, None, None, None)
    return MaskedOperand(
        a.session, shape, a.frac, depth,
        np.concatenate([a.opened, b.opened], axis=axis),
        np.concatenate([a.mask_shares, b.mask_shares], axis=axis + 1),
        np.concatenate([a.dealer_mask, b.dealer_mask], axis=axis),
    )


@protocol(
    "mask_operand",
    rounds="1",
    comm="K*(N-1)*n",
    offline="0",
    leaks="nothing (W - B is uniform); the one-off cost of a reusable operand",
    ref="Beaver triples with a fixed operand (see protocol-notes; e.g. Delphi/Cheetah-style weight masking)",
    dims=lambda w: {"n": w.size},
    example=lambda s: ((_rng_values(s, (6, 4)),), {}),
    vars_doc="n = elements of W",
)
def mask_operand(w: SharedTensor) -> MaskedOperand:
    """Mask a shared tensor once for reuse as the right operand of many products.

    Steps:
      1. Dealer: a fresh uniform mask B shaped like W (seeded: no offline bits); the dealer keeps B.
      2. Open D = W - B.
    Rounds: 1. Comm: K (N-1) |W| bits per party. Offline: 0.
    Leaks: nothing (D is W one-time padded by B). Ref: module docstring.
    """
    if not isinstance(w, SharedTensor):
        raise TypeError("mask_operand takes a SharedTensor")
    session = w.session
    shares, dealer_mask = session.dealer.operand_mask(w.shape)
    (opened,), depth = session._open("open", [_ring_sub(w, SharedTensor(session, shares, w.shape, 0))])
    return MaskedOperand(session, w.shape, w.frac, depth, opened, shares, dealer_mask)


def _reused_dims(x, operand):
    return _matmul_dims(x, operand)


@protocol(
    "matmul_reused",
    rounds="1",
    comm="K*(N-1)*nx",
    offline="K*n",
    leaks="nothing (X_t - A_t is padded by a fresh A_t)",
    ref="Beaver triples with a fixed operand (module docstring)",
    dims=_reused_dims,
    example=lambda s: ((_rng_values(s, (3, 6)), mask_operand(_rng_values(s, (6, 4)))), {}),
    vars_doc="nx = left operand elements; n = output elements",
)
def matmul_reused(x: SharedTensor, operand: MaskedOperand) -> SharedTensor:
    """X @ W for a reusable masked W; ring level (output scale x.frac + W.frac).

    Steps:
      1. Dealer: fresh A_t shaped like X and C_t = A_t @ B for W's mask B.
      2. Open E = X - A_t.
      3. Z = C_t + E @ B + A_t @ D, and party 0 adds E @ D (D = W - B public).
    Rounds: 1. Comm: K (N-1) |X| bits per party. Offline: K |Z| bits (C_t).
    Leaks: nothing. Ref: module docstring.
    """
    session = x.session
    if operand.session is not session:
        raise ValueError("cannot combine tensors of two different sessions")
    x2, _, squeeze = promote_matmul(x, SharedTensor(session, None, operand.shape, 0))
    if operand.ndim < 2:
        raise ValueError("a reusable operand must have at least 2 dimensions")
    shape = matmul_shapes(x2.shape, operand.shape)
    a, c = session.dealer.reuse_triple(x2.shape, operand.dealer_mask, shape)
    (e,), depth = session._open("open", [_ring_sub(x2, SharedTensor(session, a, x2.shape, 0))])
    z = session.backend.matmul_combine(c, a, operand.mask_shares, e, operand.opened)
    session._work("combine", macs=3 * int(np.prod(shape, dtype=np.int64)) * x2.shape[-1],
                  elems=3 * int(np.prod(shape, dtype=np.int64)))
    out = SharedTensor(session, z, shape, x.frac + operand.frac, max(depth, operand.depth))
    return out.squeeze(squeeze) if squeeze else out
