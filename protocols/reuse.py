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

import math
import numpy as np

from mpsim import kernels
from mpsim.tensor import SharedTensor, _shape_after

from .arith import _lift, _matmul_dims, _ring_sub, _rng_values, matmul_shapes, promote_matmul
from .rotation import _check_index_domain, _index_example, _open_rotation, _pow2_at_least, _rotate, check_size
from .registry import protocol


class MaskedOperand:
    """A secret tensor W known to the parties as (public D = W - B, shares of B); the dealer keeps B.

    Build with ``session.reusable(w)``; use as the right operand: ``x @ wm``.
    """

    def __init__(self, session, shape, frac, depth, opened, mask_shares, dealer_mask, calls=None):
        self.session = session
        self.calls = session.channel.frontier(depth) if calls is None else frozenset(calls)
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
        return int(math.prod(self.shape))

    def __repr__(self) -> str:
        return f"MaskedOperand(shape={self.shape}, frac={self.frac})"

    __hash__ = object.__hash__  # by identity, as SharedTensor

    def __eq__(self, other):
        raise TypeError("'==' on a MaskedOperand would not compare the secret values; use protocols.eq on "
                        "operand.tensor (a secret bit)")

    __ne__ = __eq__

    def _relabel(self, fn) -> "MaskedOperand":
        """Apply a local shape operation to D, B's shares and the dealer's B alike (same value, same mask)."""
        shape = _shape_after(self.shape, fn)
        if self.opened is None:
            return MaskedOperand(self.session, shape, self.frac, self.depth, None, None, None, self.calls)
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
        return SharedTensor(self.session, payload, self.shape, self.frac, self.depth, calls=self.calls)

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
            return MaskedOperand(self.session, self.shape, self.frac, max(self.depth, new.depth), None, None, None,
                                 self.calls | new.calls)
        opened, shares, dealer = self.opened.copy(), self.mask_shares.copy(), self.dealer_mask.copy()
        sl = (slice(None),) * axis + (index,)
        opened[sl] = new.opened
        dealer[sl] = new.dealer_mask
        shares[(slice(None),) + sl] = new.mask_shares
        return MaskedOperand(self.session, self.shape, self.frac, max(self.depth, new.depth), opened, shares, dealer,
                             self.calls | new.calls)


def _concat(a: MaskedOperand, b: MaskedOperand, axis: int) -> MaskedOperand:
    if a.session is not b.session:
        raise ValueError("cannot combine operands of two different sessions")
    if a.frac != b.frac:
        raise ValueError(f"appended rows have scale {b.frac}, the operand has {a.frac}")
    axis = axis % a.ndim
    if len(a.shape) != len(b.shape) or any(x != y for i, (x, y) in enumerate(zip(a.shape, b.shape)) if i != axis):
        raise ValueError(f"cannot append shape {b.shape} to {a.shape} along axis {axis}: the other axes differ")
    shape = tuple(x + y if i == axis else x for i, (x, y) in enumerate(zip(a.shape, b.shape)))
    depth, calls = max(a.depth, b.depth), a.calls | b.calls
    if a.opened is None:
        return MaskedOperand(a.session, shape, a.frac, depth, None, None, None, calls)
    return MaskedOperand(
        a.session, shape, a.frac, depth,
        np.concatenate([a.opened, b.opened], axis=axis),
        np.concatenate([a.mask_shares, b.mask_shares], axis=axis + 1),
        np.concatenate([a.dealer_mask, b.dealer_mask], axis=axis), calls,
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
    x2, _, squeeze = promote_matmul(x, SharedTensor(session, None, operand.shape, 0))
    if operand.ndim < 2:
        raise ValueError("a reusable operand must have at least 2 dimensions")
    shape = matmul_shapes(x2.shape, operand.shape)
    a, c = session.dealer.reuse_triple(x2.shape, operand.dealer_mask, shape)
    (e,), depth = session._open("open", [_ring_sub(x2, SharedTensor(session, a, x2.shape, 0))])
    z = session.backend.matmul_combine(c, a, operand.mask_shares, e, operand.opened)
    session._work("combine", macs=3 * int(math.prod(shape)) * x2.shape[-1],
                  elems=3 * int(math.prod(shape)))
    out = SharedTensor(session, z, shape, x.frac + operand.frac, max(depth, operand.depth),
                       calls=session.channel.frontier(depth) | operand.calls)
    return out.squeeze(squeeze) if squeeze else out


# -- secret row selection by a dealer-rotated table ------------------------------------------------------------
def _rotated_dims(operand, index, check_domain=None):
    return {"m": index.size, "P": _pow2_at_least(operand.shape[-2]), "w": operand.shape[-1]}


def _rotated_example(s):
    return (mask_operand(_rng_values(s, (2, 8, 3))), _index_example(s)), {}


@protocol(
    "gather_rotated",
    rounds="int(P > 1)",
    comm="(N-1)*m*log2(P)*int(P > 1)",
    offline="m*(K*P*(w+1) + log2(P))*int(P > 1)",
    leaks="nothing (c = (r - i) mod P is uniform)",
    ref="dealer-rotated one-hot (protocols.oblivious) applied to a reusable operand's mask table",
    dims=_rotated_dims,
    example=_rotated_example,
    vars_doc="m = indices; P = T rounded up to a power of two (T = rows of W); w = row width",
)
def gather_rotated(operand: MaskedOperand, index: SharedTensor, check_domain: bool | None = None) -> SharedTensor:
    """Rows W[i] of a reusable masked operand W (..., T, w) at secret integer indices i (..., k) in [0, T):
    shares of shape (..., k, w), scale W.frac. Leading axes of W and i must match.

    W = D + B with D public and B the dealer's mask; T is padded to a power of two P with zero rows
    (D = B = 0 there; never selected by an index in range).
    Steps:
      1. Dealer (``rotation_table``): per index a fresh r uniform in [0, P), shares of r, of e_r and of the
         rotated mask rows R[j] = B[(r - j) mod P], j < P.
      2. Each party reduces its share of r - i mod P; open c = (r - i) mod P (log2 P bits per index).
      3. Locally: B[i] = R[c] (row c of the rotated mask: r - c = i); e_i[j] = e_r[(j + c) mod P]; D[i] = e_i . D
         (shares of e_i times public D); W[i] = D[i] + B[i].
    Rounds: 1 (0 when T = 1). Comm: (N-1) m log2 P bits per party. Offline: m (K P (w + 1) + log2 P) bits
    (e_r and R as correction words, r mod P).
    Leaks: nothing. Correct: R[c] = B[(r - c) mod P] = B[i] and e_r[(j + c) mod P] = 1 iff j = r - c = i
    (mod P), so the output is B[i] + D[i] = W[i]. Secure: the only opened value c is r - i padded by the
    fresh uniform r mod P, hence uniform on [0, P) and independent of i (and of c's of other indices, each
    with its own r); opening at ring width would leak (r - i bounds i), so only the low log2 P bits are
    opened, which is sound because P divides 2^K. Every other value is a sharing from the dealer.
    Ref: the rotation one-hot of ``protocols.oblivious``; masked operands of this module.
    """
    session = index.session
    if not isinstance(operand, MaskedOperand):
        raise TypeError("gather_rotated takes a MaskedOperand (use session.reusable)")
    if index.kind != "A" or index.frac != 0:
        raise ValueError("gather_rotated needs an integer-encoded arithmetic index (frac_bits=0)")
    if operand.ndim < 2 or operand.shape[:-2] != index.shape[:-1]:
        raise ValueError(f"operand {operand.shape} and index {index.shape} need equal leading axes")
    T, w = operand.shape[-2], operand.shape[-1]
    _check_index_domain(index, T, check_domain)
    shape = index.shape + (w,)
    if T == 1:  # one row: every index is 0
        rows = operand.tensor.reshape(operand.shape[:-2] + (1, w))
        return rows.broadcast_to(shape)
    P = _pow2_at_least(T)
    table = None
    if operand.dealer_mask is not None:
        pad = [(0, 0)] * (operand.ndim - 2) + [(0, P - T), (0, 0)]
        table = np.expand_dims(np.pad(operand.dealer_mask, pad), -3)  # (..., 1, P, w)
    else:
        table = np.empty((1, w), np.uint64)
    r, e_r, rot = session.dealer.rotation_table(index.shape, P, table)
    _, c, depth = _open_rotation(index, r, P)
    calls = session.channel.frontier(depth) | operand.calls
    depth = max(depth, operand.depth)
    if c is None:
        return SharedTensor(session, None, shape, operand.frac, depth, calls=calls)
    e_i = _rotate(e_r, c, T)  # (N, ..., k, T)
    b_i = np.take_along_axis(rot, np.broadcast_to(c[..., None, None], rot.shape[:1] + c.shape + (1, w)), axis=-2)
    d_pub = np.ascontiguousarray(operand.opened)
    d_i = np.stack([kernels.ring_matmul(np.ascontiguousarray(row), d_pub) for row in e_i])
    session._work("combine", macs=int(index.size) * T * w, elems=int(index.size) * w)
    payload = session.backend.map(lambda a, b: a + b[..., 0, :], d_i, b_i)
    return SharedTensor(session, payload, shape, operand.frac, depth, calls=calls)


def _scatter_dims(x, index, n):
    return {"m": index.size, "P": _pow2_at_least(n), "w": x.shape[-1], "nx": x.size}


def _scatter_example(s):
    return (_rng_values(s, (2, 3, 4)), _index_example(s), 8), {}


@protocol(
    "scatter_rotated",
    rounds="int(P > 1)",
    comm="(N-1)*(K*nx + m*log2(P))*int(P > 1)",
    offline="m*(K*P*(w+1) + log2(P))*int(P > 1)",
    leaks="nothing (x - a is padded by a fresh a; c = (r - i) mod P is uniform)",
    ref="the transpose of gather_rotated: e_i (x) x with a dealer-rotated e_r (x) a",
    dims=_scatter_dims,
    example=_scatter_example,
    vars_doc="m = indices; P = n rounded up to a power of two; w = row width; nx = elements of x",
)
def scatter_rotated(x: SharedTensor, index: SharedTensor, n: int) -> SharedTensor:
    """Scatter-add rows x (..., k, w) to secret positions i (..., k) in [0, n): out (..., n, w) with
    out[j] = sum_t [i_t = j] x_t (the transpose of ``gather_rotated``), scale x.frac.

    Steps:
      1. Dealer: a fresh uniform a shaped like x (seeded); per index (``rotation_table``) a fresh r, shares of r,
         e_r and F[j] = a [j = r] (the table with a at row 0, rotated), j < P.
      2. Open E = x - a (K bits per element) and c = (r - i) mod P (log2 P bits per index), one call.
      3. Locally: e_i[j] = e_r[(j + c) mod P]; (e_i (x) a)[j] = F[(j + c) mod P]; out = sum_t e_i (x) E + e_i (x) a.
    Rounds: 1 (0 when n = 1: a plain sum). Comm: (N-1)(K |x| + m log2 P) bits per party.
    Offline: m (K P (w + 1) + log2 P) bits.
    Leaks: nothing. Correct: F[(j + c) mod P] = a iff j + c = r, i.e. j = i, so the sum is e_i (x) (E + a) =
    e_i (x) x. Secure: E is x one-time padded by the fresh a (used once); c is uniform as in ``gather_rotated``.
    Ref: ``gather_rotated``; Beaver's masking of the dense operand.
    """
    session = x.session
    if index.kind != "A" or index.frac != 0:
        raise ValueError("scatter_rotated needs an integer-encoded arithmetic index (frac_bits=0)")
    if x.ndim < 2 or x.shape[:-1] != index.shape:
        raise ValueError(f"rows {x.shape} need shape index.shape + (w,) = {index.shape} + (w,)")
    n = check_size(n, "scatter range n")
    w = x.shape[-1]
    shape = index.shape[:-1] + (n, w)
    if n == 1:
        return x.sum(axis=-2, keepdims=True)
    P = _pow2_at_least(n)
    a_sh, a = session.dealer.operand_mask(x.shape)
    table = np.empty((1, w), np.uint64)
    if a is not None:
        table = np.zeros(x.shape[:-1] + (P, w), np.uint64)
        table[..., 0, :] = a
    r, e_r, rot = session.dealer.rotation_table(index.shape, P, table)
    (e,), c, depth = _open_rotation(index, r, P, extra=[_ring_sub(x, SharedTensor(session, a_sh, x.shape, 0))])
    if c is None:
        return SharedTensor(session, None, shape, x.frac, depth)
    e_i = _rotate(e_r, c, n)  # (N, ..., k, n)
    pos = (np.arange(n, dtype=np.int64) + c[..., None]) % P  # (..., k, n)
    f = np.take_along_axis(rot, np.broadcast_to(pos[..., None], rot.shape[:1] + pos.shape + (1,)), axis=-2)
    e_pub = np.ascontiguousarray(e)
    outer = np.stack([kernels.ring_matmul(np.ascontiguousarray(np.swapaxes(row, -1, -2)), e_pub) for row in e_i])
    session._work("combine", macs=int(index.size) * n * w, elems=int(index.size) * n * w)
    payload = session.backend.map(lambda u, v: u + np.sum(v, axis=-3, dtype=np.uint64), outer, f)
    return SharedTensor(session, payload, shape, x.frac, depth)
