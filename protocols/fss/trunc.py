"""The FSS suite's exact truncation: floor(x / 2^d) in one round, never off by one (Boyle et al., eprint
2020/1392, the logical and arithmetic right shifts from a DCF).

For x in [-2^(K-2), 2^(K-2)) let x' = x + 2^(K-2) in [0, 2^(K-1)), and open c = x' + r. Write c = c_h 2^d + c_l
and r = r_h 2^d + r_l (high and low d bits). As integers x' = c - r + 2^K w with w = [c < r], so
    x' >> d = c_h - r_h - [c_l < r_l] + 2^(K-d) w,
and since x' < 2^(K-1), w = r_(K-1) (1 - c_(K-1)) (a wrap needs r's top bit, and then leaves c's clear):
linear in shares of r_(K-1). The borrow [c_l < r_l] is one DCF evaluation; the key compares at the top of a
(K-2)-bit word, c_l 2^(K-2-d) against r_l 2^(K-2-d), so its size does not depend on d and the composite
formulas can count it per element. Then floor(x / 2^d) = (x' >> d) - 2^(K-2-d). The dealer-assisted trunc_pr
drops the borrow (off by one unit half the time); this one computes it.
"""
from __future__ import annotations

import numpy as np

from mpsim.fss import eval_party
from mpsim.tensor import SharedTensor

from ..registry import declare_truncation, protocol
from ..trunc import _example_trunc, check_shift
from .compare import open_masked

declare_truncation("fss", "exact", "1", "K*(N-1)", "2*K", shipped="128 + (K - 2)*(K + 130) + K")


@protocol(
    "trunc_exact",
    scheme="fss",
    rounds="1",
    comm="K*(N-1)*n",
    offline="2*K*n",
    offline_each="n*(128 + (K - 2)*(K + 130) + K)",
    leaks="nothing; requires abs(x) < 2^(K-2)",
    ref="Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee, Eurocrypt 2021 (eprint 2020/1392), Sec. 5",
    dims=lambda x, shift: {"n": x.size},
    example=_example_trunc,
    parties=lambda n: n == 2,
    vars_doc="n = elements; to each party: one DCF key on K - 2 bits per element",
)
def trunc_exact(x: SharedTensor, shift: int) -> SharedTensor:
    """floor(x / 2^d) exactly, for x in [-2^(K-2), 2^(K-2)) and an integer d in [1, K - 2], at most x.frac.

    Steps:
      1. Dealer (``FssKeys.trunc_key``): r (seeded shares), shares of r >> d and of r_(K-1), and a DCF key
         for the borrow [c_l < r_l].
      2. Open c = x + 2^(K-2) + r (K bits per element).
      3. Each party evaluates its key at c_l 2^(K-2-d): shares of the borrow b (local).
      4. y = c_h - (r >> d) - b + 2^(K-d) r_(K-1) (1 - c_(K-1)) - 2^(K-2-d) (the module docstring).
    Rounds: 1. Comm: (N-1) K n bits per party. Offline: 2K n bits to party 0; a DCF key of
    128 + (K - 2)(K + 130) + K bits per element to each party.
    Leaks: nothing (c is padded by r; each key alone is pseudorandom).
    Ref: Boyle et al., "Function Secret Sharing for Mixed-Mode and Fixed-Point Secure Computation",
    Eurocrypt 2021 (eprint 2020/1392): truncation from a DCF on the low bits.
    """
    session = x.session
    ring, K = session.ring, session.ring.bits
    shift = check_shift(x, shift, K - 2, "trunc_exact")
    if shift == 0:
        return x
    r, r_high, r_top, keys = session.keys.trunc_key(x.shape, shift)
    shifted = x._like(x.payload, x.shape, frac=0) + ring.const(1 << (K - 2))  # party 0 adds the constant
    c, depth = open_masked(shifted, r)
    session._work("dcf_eval", elems=2 * (K - 2) * x.size)
    out_frac = x.frac - shift
    if c is None:
        return SharedTensor(session, None, x.shape, out_frac, depth)
    c = np.asarray(c, dtype=np.uint64).reshape(x.shape)
    c_high = np.right_shift(c, np.uint64(shift))
    c_top = np.right_shift(c, np.uint64(K - 1))
    public = ring.reduce(c_high - ring.const(1 << (K - 2 - shift)))
    if keys is None:  # ideal: r = 0, no borrow, no wrap
        return SharedTensor(session, public[None].copy(), x.shape, out_frac, depth)
    c_low = np.bitwise_and(c, np.uint64((1 << shift) - 1))
    points = np.left_shift(c_low, np.uint64(K - 2 - shift)).reshape(-1)
    no_top = ring.reduce(np.uint64(1) - c_top)
    rows = []
    for party in (0, 1):
        borrow = eval_party(keys, party, points).reshape(x.shape)
        wrap = ring.reduce(r_top[party] * no_top * ring.const(1 << (K - shift)))
        y = ring.reduce(wrap - r_high[party] - borrow + (public if party == 0 else np.uint64(0)))
        rows.append(y)
    return SharedTensor(session, np.stack(rows), x.shape, out_frac, depth)
