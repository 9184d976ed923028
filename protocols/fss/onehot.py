"""The FSS suite's one-hot: the rotation one-hot with the dealer's rotated one-hot vector replaced by a DPF key.

The Beaver suite's dealer ships shares of e_r, a one-hot of a random r in [0, T): K T bits per index. Here
it ships a DPF key for 1{y == r} on log2 T bits instead, lambda + log2 T (lambda + 2) + K bits (1,362 at
T = 512, against 32,768): the parties open c = (r - i) mod T as before and each evaluates its key at
(j + c) mod T for every j < n, which is its share of e_r[(j + c) mod T] = [j == i]. Same round, same bytes
online; Boyle, Gilboa and Ishai (CCS 2016) for the DPF, the one-hot as in Sigma's and LLAMA's lookups.
"""
from __future__ import annotations

import numpy as np

from mpsim.fss import eval_party
from mpsim.tensor import SharedTensor

from ..oblivious import rotation_range
from ..registry import protocol
from ..rotation import _index_example, _open_rotation, _pow2_at_least


@protocol(
    "onehot_rotation",
    scheme="fss",
    rounds="int(T > 1)",
    comm="(N-1)*m*log2(T)",
    offline="0",
    offline_each="m*(128 + log2(T)*130 + K)*int(T > 1)",
    leaks="nothing (c = (r - i) mod T is uniform; each key alone is pseudorandom)",
    ref="DPF (Boyle, Gilboa, Ishai, CCS 2016) evaluated at the rotated positions",
    dims=lambda index, n, check_domain=None: {"m": index.size, "T": _pow2_at_least(n)},
    example=lambda s: ((_index_example(s), 8), {}),
    parties=lambda n: n == 2,
    vars_doc="m = indices; T = n rounded up to a power of two; to each party: one DPF key per index",
)
def onehot_rotation(index: SharedTensor, n: int, check_domain: bool | None = None) -> SharedTensor:
    """One-hot of an integer-encoded secret index over [0, n), shape index.shape + (n,), integer (frac 0).

    Steps:
      1. Dealer: per index r uniform in [0, T) (shares from the seeds) and a DPF key pair for 1{y == r}
         (``FssKeys.onehot_key``).
      2. Open c = (r - i) mod T (log2 T bits per index).
      3. Each party evaluates its key at (j + c) mod T for j < n: shares of [j == i] (local).
    Rounds: 1 (0 when n = 1). Comm: (N-1) m log2 T bits per party.
    Offline: a DPF key of 128 + 130 log2 T + K bits per index to each party.
    Leaks: nothing (c is uniform). Ref: the module docstring.
    """
    n, T = rotation_range(index, n, check_domain)
    session = index.session
    if T == 1:  # a range of one position: the one-hot is the constant 1
        return session.zeros(index.shape + (1,), frac_bits=0) + 1
    r, keys = session.keys.onehot_key(index.shape, T)
    _, c, depth = _open_rotation(index, r, T)
    shape = index.shape + (n,)
    session._work("dpf_eval", elems=2 * (T.bit_length() - 1) * index.size * n)
    if c is None:
        return SharedTensor(session, None, shape, 0, depth)
    points = ((np.arange(n, dtype=np.int64) + c.reshape(-1, 1)) % T).astype(np.uint64)
    if keys is None:  # ideal: r = 0, so the one-hot of 0 rotated by c = -i
        return SharedTensor(session, (points == 0).astype(np.uint64).reshape((1,) + shape), shape, 0, depth)
    shares = np.stack([eval_party(keys, party, points).reshape(shape) for party in (0, 1)])
    return SharedTensor(session, session.ring.reduce(shares), shape, 0, depth)
