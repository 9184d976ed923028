"""ABY3 shuffle and the shuffle top-k.

The shuffle: three passes, one per pair of parties. In pass j the pair (j, j + 1) holds x as a 2-out-of-2
sharing for free (party j: x_j + x_(j+1); party j + 1: x_(j+2)), permutes it by a permutation from its shared
key, and hands party j + 2 its two new components under masks from the same key. Each party knows two of
the three permutations, so the composition is uniform to each of them (cf. the resharing shuffles of
Chase-Ghosh-Poburinnaya, ASIACRYPT 2020, and of honest-majority 3PC, e.g. Araki et al., CCS 2021).

Every top-k method is written once in ``protocols.topk`` over the scheme's cells: in ABY3 the shuffle top-k
composes this shuffle, ABY3's msb and its openings ("auto" picks the shuffle in ABY3).
"""
from __future__ import annotations

import numpy as np

from mpsim import kernels
from mpsim.tensor import SharedTensor

from ..registry import CELLS, protocol
from .arith import PARTIES, _parents
from .prf import only_row

_SHUFFLE = CELLS[("additive", "shuffle")]


def _permute(v, perm):
    """Axis 1 of (rows, m, w) values permuted per row."""
    return np.take_along_axis(v, perm[..., None], axis=1)


@protocol(
    "shuffle",
    scheme="aby3",
    rounds="3",
    comm="2*K*n",
    offline="0",
    leaks="nothing (every message is padded by a mask of the pair's key; each party misses one permutation)",
    ref="resharing shuffle among three parties (cf. Chase-Ghosh-Poburinnaya, ASIACRYPT 2020)",
    dims=_SHUFFLE.dims,
    example=_SHUFFLE.example,
    parties=lambda n: n == PARTIES,
    vars_doc=_SHUFFLE.vars_doc,
)
def shuffle(t: SharedTensor) -> SharedTensor:
    """Shuffle axis 1 of a (rows, m, w) tensor with a fresh uniform permutation per row.

    Steps (three passes, j = 0, 1, 2; parties A = j, B = j + 1 permute, E = j + 2 receives):
      1. A holds a = x_j + x_(j+1), B holds b = x_(j+2) (a 2-out-of-2 sharing, local).
      2. Both permute by pi_j (from their shared key): pi(a), pi(b).
      3. The new component j + 1 is a mask c of their key; A sends pi(a) - c - z (component j) and B sends
         pi(b) + z (component j + 2) to E, z another mask of their key (one round).
    Rounds: 3. Comm: K |t| bits per party in each of the two passes where it permutes: 2 K |t|. Offline: 0.
    Leaks: nothing: E's two messages are padded by c and z, which it lacks; each party knows two of the three
    permutations, so their composition is uniform to it.
    Ref: Chase, Ghosh, Poburinnaya, "Secret-Shared Shuffle", ASIACRYPT 2020 (resharing shuffles).
    """
    if t.ndim != 3:
        raise ValueError(f"shuffle takes a (rows, m, w) tensor, got shape {t.shape}")
    session = t.session
    ring, backend, K = session.ring, session.backend, session.ring.bits
    payload, depth, parents = t.payload, t.depth, _parents(t)
    bits = K * t.size
    for j in range(PARTIES):
        a_party, b_party, receiver = j, (j + 1) % PARTIES, (j + 2) % PARTIES
        perm, c, z = session.keys.shuffle_pass(t.shape)
        contents = None
        if payload is not None and backend.rows == 1:
            payload = _permute(payload[0], perm)[None]
        elif payload is not None:
            pa = _permute(ring.reduce(kernels.ring_add(payload[a_party], payload[b_party])), perm)
            pb = _permute(payload[receiver], perm)
            new = np.empty_like(payload)
            new[b_party] = c
            new[a_party] = ring.reduce(kernels.ring_sub(kernels.ring_sub(pa, c), z))
            new[receiver] = ring.reduce(kernels.ring_add(pb, z))
            contents = [(only_row(new[a_party], a_party), K, (a_party,)),
                        (only_row(new[receiver], b_party), K, (b_party,))]
            payload = new
        session._check_open()
        depth = session.channel.exchange("reshare", [(a_party, receiver, bits), (b_party, receiver, bits)], depth,
                                         parents, contents=contents, reconstructs=False)
        parents = ()
    return t._like(payload, t.shape, depth=depth)
