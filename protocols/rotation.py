"""The rotation primitives shared by the one-hot (``protocols.oblivious``) and the dealer-rotated gather and
scatter (``protocols.reuse``): a secret index i over [0, P), P a power of two, is turned into the opened
c = (r - i) mod P for a dealer's uniform r (log2 P bits per index, uniform whatever i is), after which a
rotation by c of anything the dealer built around r (its one-hot e_r, a rotated table) is local. The
security argument is in ``protocols.oblivious``'s module docstring.
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def check_size(n, what: str) -> int:
    """A public number of positions (a one-hot's or a scatter's range) as an int; ValueError unless an integer >= 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive integer (positions 0..n-1), got {n!r}")
    return int(n)


def _open_rotation(index: SharedTensor, r, P: int, extra=()):
    """Open c = (r - i) mod P (log2 P bits per index) together with ``extra`` full-width tensors."""
    session = index.session
    mask = np.uint64(P - 1)
    reduced = None
    if index.payload is not None:
        reduced = session.backend.map(lambda a, b: np.bitwise_and(a - b, mask), r, index.payload)
    tensors = list(extra) + [index._like(reduced, index.shape)]
    widths = [session.ring.bits] * len(extra) + [P.bit_length() - 1]
    opened, depth = session.scheme.open(session, "open", tensors, widths=widths)
    c = None if opened[-1] is None else np.bitwise_and(opened[-1], mask).astype(np.int64)
    return opened[:-1], c, depth


def _rotate(e_r, c, n: int):
    """Shares of e_i[j] = e_r[(j + c) mod P] for j < n (local)."""
    P = e_r.shape[-1]
    positions = (np.arange(n, dtype=np.int64) + c[..., None]) % P
    return np.ascontiguousarray(np.take_along_axis(e_r, np.broadcast_to(positions, e_r.shape[:1] + positions.shape),
                                                   axis=-1))


def _index_example(s):
    return s.input(np.array([[0, 3, 7], [5, 5, 1]]), frac_bits=0)


def _check_index_domain(index: SharedTensor, n: int, check) -> None:
    session = index.session
    check = session.check_domain if check is None else check
    if not check or not session.backend.has_data:
        return
    # A debugging check outside the protocol: reads the value without sending anything.
    raw = session.ring.to_signed(session.backend.open(index.payload))
    values = raw >> np.int64(index.frac)
    if index.frac and np.any(values << np.int64(index.frac) != raw):
        raise ValueError("secret index is not an integer (check_domain): the one-hot would be all zero")
    if values.size and (values.min() < 0 or values.max() >= n):
        raise ValueError(f"secret index outside [0, {n}) (check_domain): the one-hot would be wrong")
