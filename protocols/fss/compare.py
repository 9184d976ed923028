"""The FSS suite's comparison: the MSB by one masked opening and a distributed comparison function.

Every comparison of the package (ltz, lt, ..., relu, maximum, the max tournament, the top-k comparators) is
an msb; in an FSS session they all run this one, so a comparison costs one round.
"""
from __future__ import annotations

import numpy as np

from mpsim.fss import eval_party

from ..boolean import _bool
from ..registry import declare_truncation, protocol

# Truncation is the additive scheme's (the same protocols, in the same modes).
declare_truncation("fss", "local", "0", "0", "0")
declare_truncation("fss", "dealer", "1", "K*(N-1)", "2*K")

_REF = ("DCF, Boyle et al., Eurocrypt 2021 (eprint 2020/1392); masked-input comparison as in Sigma (Gupta et "
        "al., PETS 2024)")


def open_masked(x, r):
    """Open c = x + r (r: the dealer's mask shares; K bits per element). Returns (c or None, depth)."""
    session = x.session
    masked = x._like(None if x.payload is None else session.backend.map(lambda u, v: u + v, x.payload, r),
                     x.shape, frac=0)
    (c,), depth = session.scheme.open(session, "open", [masked])
    return c, depth


@protocol(
    "msb",
    scheme="fss",
    rounds="1",
    comm="K*(N-1)*n",
    offline="n",
    offline_each="n*(128 + (K - 1)*131 + 1)",
    ref=_REF,
    dims=lambda x: {"n": x.size},
    example=lambda s: ((s.input(np.linspace(-5, 5, 12).reshape(3, 4)),), {}),
    parties=lambda n: n == 2,
    vars_doc="n = elements; to each party: one DCF key (lambda = 128) per element",
)
def msb(x):
    """The most significant bit of x (its sign in two's complement), as a boolean-shared bit.

    Steps:
      1. Dealer: a uniform r (additive shares, seeded), XOR shares of r_(K-1), and DCF keys for
         1{y < r mod 2^(K-1)} on K - 1 bits with output in Z_2 (``FssKeys.msb_key``).
      2. Open c = x + r (K bits per element).
      3. Each party evaluates its DCF key at c mod 2^(K-1) (its own key and c only): XOR shares of
         w = 1{c mod 2^(K-1) < r mod 2^(K-1)}, the borrow of x = c - r into bit K - 1.
      4. msb = c_(K-1) ^ r_(K-1) ^ w (party 0 adds the public c_(K-1)).
    Rounds: 1. Comm: (N-1) K n bits per party. Offline: a DCF key per element to each party
    (128 + 131 (K - 1) + 1 bits at lambda = 128: 8,258 bits at K = 64) and one bit to party 0.
    Leaks: nothing (c is padded by r; each key alone is pseudorandom).
    Ref: Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee, "Function Secret Sharing for Mixed-Mode and
    Fixed-Point Secure Computation", Eurocrypt 2021 (eprint 2020/1392); Sigma (Gupta et al., PETS 2024).
    """
    if x.kind != "A":
        raise TypeError("this protocol takes an arithmetic sharing; convert a boolean one with protocols.b2a")
    session = x.session
    K = session.ring.bits
    r, top, keys = session.keys.msb_key(x.shape)
    c, depth = open_masked(x, r)
    session._work("dcf_eval", elems=2 * (K - 1) * x.size)
    if c is None:
        return _bool(session, None, x.shape, depth, 1)
    c = np.asarray(c, dtype=np.uint64).reshape(x.shape)
    c_top = np.right_shift(c, np.uint64(K - 1))
    if keys is None:  # ideal: r = 0, so x = c
        return _bool(session, c_top[None].copy(), x.shape, depth, 1)
    low = np.bitwise_and(c, np.uint64((1 << (K - 1)) - 1)).reshape(-1)
    shares = np.stack([eval_party(keys, party, low).reshape(x.shape) for party in (0, 1)])
    shares = np.bitwise_xor(shares, top)
    shares[0] = np.bitwise_xor(shares[0], c_top)
    return _bool(session, shares, x.shape, depth, 1)
