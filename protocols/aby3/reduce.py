"""ABY3's max and min: the tournament of ``protocols.reduce``, with the round trips between levels fused.

The written-once tournament spends per level an msb (open c = d + r, the carry tree), a daBit opening of
the bit, and a product: 1 + log2 K + 2 rounds. Replicated sharing lets two of those round trips share a
round with the next step:

* the carry tree's last gate is one AND per pair; its 3-out-of-3 output, XORed with the daBit's r, is
  opened at once (each party sends its share to both others: 2 bits per pair, the same as reshare + open);
* the product's output stays 3-out-of-3 (each party its own cross terms): the next level's difference d of
  two such values is 3-out-of-3 too, and one round both reshares it (party j sends d_j + a_j to party j - 1,
  a_j its zero share) and opens c = d + r (party j sends the same component plus r_j to party j + 1, the one
  that lacks r_j): 2K bits per pair, where reshare + open of the winners costs 2K (two winners) + K.

So a level costs 1 + log2 K rounds and one more round reshares the final winners: 64 rounds over 512
candidates at K = 64, against 81 for the written-once tournament, with the same bits per party.
"""
from __future__ import annotations

import builtins

import numpy as np

from mpsim import kernels
from mpsim.tensor import SharedTensor, concatenate

from ..boolean import _bool, and_public, carry_tree_but_last, subtraction_signals, xor
from ..reduce import _reduce_dims, _reduce_example, reduced_last
from ..registry import protocol
from .arith import ABY3_REF, PARTIES, _parents, open_values, reshare
from .boolean import and_gates


def _cost(name: str, cmp: str):
    return dict(
        scheme="aby3",
        rounds="L*(1 + log2(K)) + int(n > 1)",
        comm="rows*(K*(n//2) + 2*K*(n - 1 - n//2) + (n - 1)*(2*K - 1 - log2(K)) + K*int(n > 1))",
        offline="rows*(n - 1)*(4*K - 3)",
        ref=f"tournament of msb ({cmp}) and selection with fused round trips ({ABY3_REF} sharing; edaBits and "
            f"daBits made by the parties)",
        dims=_reduce_dims,
        example=_reduce_example,
        parties=lambda n: n == PARTIES,
        vars_doc="rows = elements / n; n = reduced axis length; L = ceil(log2 n) levels; offline: bits party p "
                 "receives",
    )


def _open_masked(session, d, sign: int, r_arith, first: bool):
    """Public c = sign d + r, and d as a replicated sharing: d is replicated already at the first level (one
    opening, K bits per pair); later it is 3-out-of-3 and one call both reshares it and opens c (2K)."""
    ring, K, n = session.ring, session.ring.bits, d.size
    if first:
        masked = d if sign > 0 else -d
        masked = masked._like(None if d.payload is None else ring.reduce(kernels.ring_add(masked.payload, r_arith)),
                              d.shape, frac=0)
        (c,), depth = open_values(session, "open", [masked])
        return c, d, depth
    shared = component = None
    if d.payload is not None:
        shared = ring.reduce(kernels.ring_add(d.payload, session.keys.zero_sharing(d.shape)))
        signed = shared if sign > 0 else ring.reduce(kernels.ring_sub(np.zeros_like(shared), shared))
        component = ring.reduce(kernels.ring_add(signed, r_arith))
    sends = [(j, (j + o) % PARTIES, K * n) for j in range(PARTIES) for o in (-1, 1)]
    depth = session.channel.exchange("reshare_open", sends, d.depth, _parents(d), reconstructs=False,
                                     contents=[(shared, K, None, False), (component, K, None, True)])
    c = None if component is None else np.sum(component, axis=0, dtype=np.uint64) & np.uint64(ring.mask)
    return c, SharedTensor(session, shared, d.shape, d.frac, depth), depth


def _open_bit(session, x, y, rest, r_bool):
    """e = (rest ^ (x & y) ^ r) bit 0, from the last AND's 3-out-of-3 output: each party sends its share to
    both others (2 bits per pair)."""
    payload = None
    if x.payload is not None:
        cross = session.backend.replicated_cross(x.payload, y.payload, np.bitwise_and, np.bitwise_xor)
        share = np.bitwise_xor(np.bitwise_xor(cross, session.keys.zero_xor(x.shape)),
                               np.bitwise_xor(rest.payload, r_bool))
        payload = np.bitwise_and(share, np.uint64(1))
    sends = [(j, (j + o) % PARTIES, x.size) for j in range(PARTIES) for o in (-1, 1)]
    depth = session.channel.exchange("open_bit", sends, builtins.max(x.depth, y.depth, rest.depth), _parents(x, y, rest),
                                     contents=[(payload, 1)], kind="B")
    session._work("and_cross", elems=4 * x.size)
    e = None if payload is None else np.bitwise_xor.reduce(payload, axis=0)
    return e, depth


def _select(session, e, s_arith, d: SharedTensor, depth):
    """[keep] d as a 3-out-of-3 sharing, for the public keep ^ s = e: [keep] = e + [s] - 2 e [s] from the
    daBit s, times the replicated d (local cross terms; their reshare is the next call's)."""
    if d.payload is None:
        return SharedTensor(session, None, d.shape, d.frac, depth)
    ring = session.ring
    coef = ring.reduce(np.asarray(np.uint64(1) - np.uint64(2) * e, dtype=np.uint64))
    keep = session.backend.add_public(ring.reduce(kernels.ring_mul(s_arith, coef)), e)
    product = session.backend.replicated_cross(keep, d.payload, kernels.ring_mul)
    session._work("replicated_cross", macs=3 * d.size, elems=4 * d.size)
    return SharedTensor(session, ring.reduce(product), d.shape, d.frac, depth)


def _tournament(x: SharedTensor, axis: int, largest: bool) -> SharedTensor:
    x = reduced_last(x, axis)
    session = x.session
    values, first = x, True  # replicated at first; 3-out-of-3 after a level
    while values.shape[-1] > 1:
        m = values.shape[-1] // 2
        a, b = values[..., 0 : 2 * m : 2], values[..., 1 : 2 * m : 2]
        d = a - b
        # keep a when a >= b (max: msb(a - b) = 0) or a <= b (min: msb(b - a) = 0); ties keep the lower index
        r_arith, r_bool = session.scheme.edabit(session, d.shape)
        dabit_arith, dabit_bool = session.scheme.dabit(session, d.shape)
        c, d, depth = _open_masked(session, d, 1 if largest else -1, r_arith, first)
        g, p = subtraction_signals(c, _bool(session, r_bool, d.shape, 0, session.ring.bits), depth)
        x_last, y_last, rest = carry_tree_but_last(xor(g, and_public(p, 1)), p, and_gates)
        e, depth = _open_bit(session, x_last, y_last, rest, dabit_bool)
        keep_a = None if e is None else np.bitwise_xor(e, np.uint64(1))  # NOT msb
        winners = b + _select(session, keep_a, dabit_arith, d, depth)
        if values.shape[-1] % 2:
            winners = concatenate([winners, values[..., -1:]], axis=-1)
        values, first = winners, False
    out = values[..., 0]
    if first:  # n == 1: nothing was compared
        return out
    payload = None
    if out.payload is not None:
        payload = session.ring.reduce(kernels.ring_add(out.payload, session.keys.zero_sharing(out.shape)))
    depth = reshare(session, "reshare", payload, out.shape, out.depth, _parents(out))
    return SharedTensor(session, payload, out.shape, out.frac, depth)


@protocol("max", **_cost("max", "a - b"))
def max(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Maximum along ``axis`` (values only), batched over every other axis.

    Steps (per level, all rows at once; L = ceil(log2 n) levels, n - 1 pairs per row in all):
      1. Offline per pair: an edaBit r and a daBit s (``correlations``).
      2. d = a - b; open c = d + r: level 1 by an opening (K bits per pair); later levels in one call with
         the reshare of d, which is 3-out-of-3 there (2K).
      3. The msb's carry tree on g = c & ~r, p = c ^ ~r (log2 K - 1 AND rounds); its last gate's
         3-out-of-3 output is opened XOR s at once: e = msb ^ s (2 bits per pair).
      4. [keep a] = NOT e + [s] - 2 (NOT e) [s] (local); winner = b + [keep a] d, left 3-out-of-3 (the cross
         terms; step 2 of the next level, or a final reshare, sends them).
    Rounds: L (1 + log2 K) + 1. Comm: K h + 2K (n - 1 - h) + (n - 1)(2K - 1 - log2 K) + K bits per row per
    party (every party the same), h = n // 2 pairs at the first level. Offline: (n - 1)(4K - 3) bits per row to each party.
    Leaks: nothing beyond the output (c and e are padded by r and s, which no party knows; every other
    message by a zero share). Ref: the tournament of ``protocols.reduce`` (CrypTen/SPU) over ABY3
    (Mohassel-Rindal, CCS 2018) sharing; the fusions are this scheme's (module docstring).
    """
    return _tournament(x, axis, largest=True)


@protocol("min", **_cost("min", "b - a"))
def min(x: SharedTensor, axis: int = -1) -> SharedTensor:
    """Minimum along ``axis`` (values only).

    Steps: as ``max``, opening c = (b - a) + r (keep a when msb(b - a) = 0: ties keep the lower index).
    Rounds: as ``max``. Comm: as ``max`` (offline too). Leaks: nothing beyond the output. Ref: as ``max``.
    """
    return _tournament(x, axis, largest=False)

