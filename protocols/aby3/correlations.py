"""The correlations a dealer hands out in the additive scheme, made by the three ABY3 parties offline.

Both start from a value no party knows: rho = (rho_0, rho_1, rho_2), component j drawn from the key of its
two holders, so each party misses one component. That is already a replicated sharing (arithmetic or
XOR); what a correlation adds is the *other* sharing of the same value, computed by a small circuit of
replicated products whose reshares are the offline traffic:

* edaBit (Escudero et al., CRYPTO 2020): r = rho_0 + rho_1 + rho_2 mod 2^K, arithmetic for free, and its
  bits by a full adder over the three components (one AND round: the carries of rho_0 ^ rho_1 ^ rho_2) and
  a ripple-carry adder of the sum and carry words (K - 2 AND rounds). 2K - 3 AND gates: 2K - 3 bits per
  party, received by every party. The ripple is the fewest gates; its K - 2 rounds are offline, where
  latency is not on the critical path.
* daBit (Rotaru-Wood, INDOCRYPT 2019): a bit r = rho_0 ^ rho_1 ^ rho_2, boolean for free, and arithmetic by
  a ^ b = a + b - 2ab twice (two replicated products, 2K bits per party).
* truncation pair (for ``trunc_pr``): K daBits' arithmetic bits; r, (r mod 2^(K-1)) >> d and r's top bit
  are linear in them (2K^2 bits per element to each party).

No party-input step is used: every message is a reshare padded by a zero sharing, so each random draw is
visible on its own in the transcript tests (``tests/test_mutation.py``), and the offline load is the same
for all three parties. The simulator records each correlation's traffic in one offline channel call (the
ledger has no offline rounds), with every step's rows for the watchers.
"""
from __future__ import annotations

import math
import numpy as np

from mpsim import kernels

PARTIES = 3


def edabit_offline_bits(K: int) -> int:
    """Bits each party sends (and receives) to make one edaBit: the full adder's K - 1 AND gates and the
    ripple's K - 2."""
    return 2 * K - 3


def _and(keys, x, y, zero):
    """Replicated AND of XOR-shared words (local cross terms and a zero sharing: what each party sends)."""
    return np.bitwise_xor(keys.backend.replicated_cross(x, y, np.bitwise_and, np.bitwise_xor), zero)


def _bit(words, i: int):
    return np.bitwise_and(np.right_shift(words, np.uint64(i)), np.uint64(1))


def _components(rho):
    """rho_j alone, for each j: a sharing with component j set (free: its two holders know it)."""
    out = [np.zeros_like(rho) for _ in range(PARTIES)]
    for j in range(PARTIES):
        out[j][j] = rho[j]
    return out


def _reshares(channel, op, bits, contents):
    channel.offline(op, [(i, (i - 1) % PARTIES, bits) for i in range(PARTIES)], contents)


def edabit(keys, shape):
    """An edaBit: (replicated arithmetic payload of r, replicated XOR payload of r's K-bit word)."""
    shape = tuple(shape)
    K, n = keys.ring.bits, int(math.prod(shape))
    op, bits = "edabit", edabit_offline_bits(K) * n
    rho = keys._random((PARTIES,) + shape)
    if rho is None:
        _reshares(keys.channel, op, bits, None)
        return None, None
    zero_carry = keys.zero_xor(shape)
    zero_ripple = keys.zero_xor((K - 2,) + shape)
    if keys.backend.rows == 1:  # ideal: every draw is zero, so r = 0
        _reshares(keys.channel, op, bits, None)
        return rho[:1].copy(), rho[:1].copy()
    low = np.uint64((1 << (K - 1)) - 1)
    # Full adder: rho_0 + rho_1 + rho_2 = s + 2c with s = rho_0 ^ rho_1 ^ rho_2 (the components themselves)
    # and c = maj(rho_0, rho_1, rho_2) = (x ^ z)(y ^ z) ^ z, each rho_j a sharing with one component set.
    one = _components(rho)
    carry_raw = np.bitwise_and(_and(keys, np.bitwise_xor(one[0], one[2]), np.bitwise_xor(one[1], one[2]),
                                    zero_carry), low)
    contents = [(carry_raw, K - 1, tuple(range(PARTIES)))]
    carry = np.bitwise_xor(carry_raw, np.bitwise_and(one[2], low))
    s, t = rho, np.left_shift(carry, np.uint64(1))  # t's bit 0 is 0, so the first carry C_1 is 0
    # Ripple: C_(i+1) = (s_i ^ C_i)(t_i ^ C_i) ^ C_i, one AND per position (the bit of C_i and of the result
    # sit at position i of the words).
    C = np.zeros_like(s)
    for i in range(1, K - 1):
        step = _bit(_and(keys, np.bitwise_xor(s, C), np.bitwise_xor(t, C), np.left_shift(zero_ripple[:, i - 1],
                                                                                        np.uint64(i))), i)
        contents.append((step, 1, tuple(range(PARTIES))))
        nxt = np.bitwise_xor(step, _bit(C, i))
        C = np.bitwise_or(C, np.left_shift(nxt, np.uint64(i + 1)))
    _reshares(keys.channel, op, bits, contents)
    words = np.bitwise_xor(np.bitwise_xor(s, t), C)
    if K < 64:
        words = np.bitwise_and(words, np.uint64((1 << K) - 1))
    return rho, words


def dabit(keys, shape):
    """A daBit: (replicated arithmetic payload of r in {0, 1}, replicated XOR payload of r)."""
    shape = tuple(shape)
    n = int(math.prod(shape))
    K, ring = keys.ring.bits, keys.ring
    rho = keys._random((PARTIES,) + shape)
    if rho is None:
        _reshares(keys.channel, "dabit", 2 * K * n, None)
        return None, None
    rho = np.bitwise_and(rho, np.uint64(1))
    zeros = [keys.zero_sharing(shape), keys.zero_sharing(shape)]
    if keys.backend.rows == 1:
        _reshares(keys.channel, "dabit", 2 * K * n, None)
        return rho[:1].copy(), rho[:1].copy()
    one = _components(rho)

    def xor_arith(a, b, zero):
        """[a ^ b] = [a] + [b] - 2 [a][b] for 0/1 sharings: one replicated product (its reshare sent)."""
        ab = ring.reduce(kernels.ring_add(keys.backend.replicated_cross(a, b, kernels.ring_mul), zero))
        out = ring.reduce(kernels.ring_sub(kernels.ring_add(a, b), kernels.ring_add(ab, ab)))
        return out, ab

    t, first = xor_arith(one[0], one[1], zeros[0])
    arith, second = xor_arith(t, one[2], zeros[1])
    everyone = tuple(range(PARTIES))
    _reshares(keys.channel, "dabit", 2 * K * n, [(first, K, everyone), (second, K, everyone)])
    return arith, rho


def trunc_pair(keys, shape, shift: int):
    """A truncation pair from K daBits b_i: (r, (r mod 2^(K-1)) >> shift, r_(K-1)) as replicated arithmetic
    payloads, r = sum 2^i b_i (uniform: the b_i are). Offline: the daBits', 2K^2 bits per element to each
    party; the rest is linear in the bits."""
    shape = tuple(shape)
    K = keys.ring.bits
    bits, _ = keys.dabit((K,) + shape)
    if bits is None:
        return None, None, None
    ring = keys.ring
    weights = lambda powers: np.asarray(powers, dtype=np.uint64).reshape((1, K) + (1,) * len(shape))  # noqa: E731
    whole = weights([1 << i for i in range(K)])
    low = weights([(1 << (i - shift)) if shift <= i < K - 1 else 0 for i in range(K)])
    r = ring.reduce(np.sum(kernels.ring_mul(bits, whole), axis=1, dtype=np.uint64))
    r_low = ring.reduce(np.sum(kernels.ring_mul(bits, low), axis=1, dtype=np.uint64))
    return r, r_low, bits[:, K - 1].copy()
