"""ABY3 boolean sharing and the gates between the two worlds: AND, bit injection, selection, MSB, equality.

Boolean sharings are replicated XOR sharings of K-bit words (bit-parallel, as in ``protocols.boolean``):
XOR, NOT, shifts and AND with public masks are local and shared with the additive scheme's code. An AND is
local cross terms plus one reshare: 1 bit per gate per party, against 2 (N - 1) for a Beaver AND. An
arithmetic x turns into two boolean operands almost for free: party 0 knows a = x_0 + x_1 and parties 1
and 2 know x_2, so x = a + x_2 needs one boolean input (a, from party 0) and a free sharing of x_2.
"""
from __future__ import annotations

import numpy as np

from mpsim import kernels
from mpsim.session import Unrevealed
from mpsim.tensor import SharedTensor, _numel

from ..arith import _rng_values
from ..registry import protocol
from ..boolean import _bool, _check_bool, a2b_example, bit_example, carry_top_bit, not_, xor
from ..compare import all_ones, check_select_operands, select_dims
from .arith import ABY3_REF, PARTIES, _components, _parents, cross_shares, input_from, open_values, rep_mul

MSB_GATES = "(2*K - 2 - log2(K))"  # the carry tree's gates (``protocols.boolean._msb_gates``)


def and_gates(pairs, gates) -> list[SharedTensor]:
    """Replicated AND of several pairs of boolean sharings in one round (one channel call).

    ``gates[i]`` is the number of bit positions per element pair i really needs; only those bits are sent
    and counted (1 bit per gate per party): a packed implementation sends exactly those bits.
    """
    session = pairs[0][0].session
    outs, contents, bits, deepest, parents = [], [], 0, 0, []
    for (x, y), g in zip(pairs, gates):
        _check_bool(x, "and")
        _check_bool(y, "and")
        if x.shape != y.shape:
            raise ValueError(f"AND operands must have one shape, got {x.shape} and {y.shape}")
        z = session.backend.replicated_cross(x.payload, y.payload, np.bitwise_and, np.bitwise_xor)
        if z is not None:
            z = np.bitwise_xor(z, session.keys.zero_xor(x.shape))
        outs.append((z, x))
        contents.append((z, g))
        bits += g * x.size
        deepest = max(deepest, x.depth, y.depth)
        parents += _parents(x, y)
    sends = [(i, (i - 1) % PARTIES, bits) for i in range(PARTIES)]
    depth = session.channel.exchange("reshare_and", sends, deepest, parents, contents=contents, kind="B",
                                     reconstructs=False)
    session._work("and_cross", elems=4 * sum(x.size for x, _ in pairs))
    return [_bool(session, z, x.shape, depth, x.width) for z, x in outs]



@protocol(
    "and",
    scheme="aby3",
    kinds={"x": "B", "y": "B"},
    rounds="1",
    comm="n*w",
    offline="0",
    ref=f"{ABY3_REF}, Sec. 2.2 (over GF(2), bit-parallel)",
    dims=lambda x, y: {"n": x.size, "w": x.width},
    example=lambda s: ((a2b_example(s), a2b_example(s)), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements; w = bits per element",
)
def and_(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Bitwise AND of two boolean sharings of one shape.

    Steps:
      1. Party i: z_i = x_i y_i ^ x_i y_(i+1) ^ x_(i+1) y_i ^ a_i, with a_i its XOR zero share.
      2. Party i sends z_i to party i - 1 (w bits per element).
    Rounds: 1. Comm: w n bits per party. Offline: 0.
    Leaks: nothing (z_i is padded by F(k_(i+1)), which its receiver lacks). Ref: ABY3, Sec. 2.2.
    """
    return and_gates([(x, y)], [x.width])[0]


def share_bits(session, values, owner: int = 0, width: int | None = None) -> SharedTensor:
    """XOR-share an integer array known to ``owner`` (1 round, K bits per element from the owner)."""
    ring_values = session.ring.from_ints(values) if session.backend.has_data else None
    return input_from(session, ring_values, int(owner), np.shape(values), 0, kind="B",
                      width=session.ring.bits if width is None else width, op="input_bits")


def reveal_bits(x: SharedTensor, to: int | None = None):
    """Open a boolean sharing (``width`` bits per element); returns uint64 words (or an Unrevealed)."""
    _check_bool(x, "reveal_bits")
    (value,), _ = open_values(x.session, "open_bits", [x], to=to)
    if value is None:
        return Unrevealed(x.shape)
    return np.asarray(value, dtype=np.uint64).reshape(x.shape)


def _split_sum(x: SharedTensor, negate_last: bool = False):
    """x = a + b with a = x_0 + x_1 known to party 0 alone and b = x_2 (or -x_2) known to parties 1 and 2:
    (a's ring values, or None; b as a free boolean sharing with only component 2 set)."""
    session, backend, ring = x.session, x.session.backend, x.session.ring
    if not backend.has_data:
        return None, _bool(session, None, x.shape, x.depth, ring.bits)
    if backend.rows == 1:  # ideal: a is the value, b is zero
        return x.payload[0], _bool(session, np.zeros_like(x.payload), x.shape, x.depth, ring.bits)
    a = ring.reduce(kernels.ring_add(x.payload[0], x.payload[1]))
    last = ring.reduce(kernels.ring_sub(np.zeros_like(x.payload[2]), x.payload[2])) if negate_last else x.payload[2]
    b = np.zeros_like(x.payload)
    b[2] = last
    return a, _bool(session, b, x.shape, x.depth, ring.bits)


def _operands(x: SharedTensor, negate_last: bool = False):
    """Boolean sharings of a and b with x = a + b (or a - b): party 0 inputs a (1 round, K bits)."""
    if x.kind != "A":
        raise TypeError("this protocol takes an arithmetic sharing; convert a boolean one with protocols.b2a")
    a, b = _split_sum(x, negate_last)
    shared_a = input_from(x.session, a, 0, x.shape, 0, x.depth, _parents(x), kind="B", width=x.session.ring.bits,
                          op="input_bits")
    return shared_a, b


@protocol(
    "msb",
    scheme="aby3",
    rounds="2+log2(K)",
    comm=f"n*(K*int(p == 0) + K - 1 + {MSB_GATES})",
    offline="0",
    ref=f"{ABY3_REF}, Sec. 5.3 (carry-only parallel prefix; cf. SPU's msb_a2b)",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((s.input(np.linspace(-5, 5, 12).reshape(3, 4)),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements",
)
def msb(x: SharedTensor) -> SharedTensor:
    """The most significant bit of x (its sign in two's complement), as a boolean-shared bit.

    Steps:
      1. x = a + b with a = x_0 + x_1 (party 0) and b = x_2 (parties 1 and 2, a free boolean sharing);
         party 0 inputs a as a boolean sharing (K bits).
      2. g = a & b (1 AND round, K - 1 gates: position K - 1 is never needed), p = a ^ b (local).
      3. The carry into bit K - 1 by ``msb``'s carry-only tree (log2 K AND rounds, 2K - 2 - log2 K gates).
      4. msb = p_(K-1) ^ carry (local).
    Rounds: 2 + log2 K. Comm: n (K - 1 + 2K - 2 - log2 K) bits per party, plus K n from party 0:
    30.9 bytes per element for party 0 at K = 64. Offline: 0. Leaks: nothing.
    Ref: ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.3; SPU's aby3 msb_a2b.
    """
    a, b = _operands(x)
    (g,) = and_gates([(a, b)], [x.session.ring.bits - 1])
    return carry_top_bit(g, xor(a, b), and_gates)


@protocol(
    "eqz",
    scheme="aby3",
    rounds="1+log2(K)",
    comm="n*(K*int(p == 0) + K - 1)",
    offline="0",
    ref=f"{ABY3_REF}: equality as an AND tree over NOT(a ^ b) (cf. SPU equal)",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((s.input(np.array([[0.0, 1.0, -2.0], [0.0, 3e-5, 0.0]])),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements",
)
def eqz(x: SharedTensor) -> SharedTensor:
    """[x == 0] as a boolean-shared bit.

    Steps:
      1. x = a - b with a = x_0 + x_1 (party 0 inputs it, K bits) and b = -x_2 (free).
      2. x == 0 iff a == b iff every bit of w = NOT(a ^ b) is 1 (local).
      3. AND tree: w &= w >> s for s = 1, 2, ..., K/2 (log2 K rounds, K - 1 gates).
    Rounds: 1 + log2 K. Comm: (K - 1) n bits per party, plus K n from party 0. Offline: 0.
    Leaks: nothing. Ref: ABY3 (Mohassel-Rindal, CCS 2018); SPU's equality.
    """
    a, b = _operands(x, negate_last=True)
    return all_ones(not_(xor(a, b)), and_gates)


def _injection_parts(b: SharedTensor):
    """b = d ^ b_2 with d = b_0 ^ b_1 known to party 0 and b_2 known to parties 1 and 2: (d's 0/1 values, a
    free arithmetic sharing of b_2)."""
    session, backend = b.session, b.session.backend
    if not backend.has_data:
        return None, SharedTensor(session, None, b.shape, 0, b.depth)
    bits = np.bitwise_and(b.payload, np.uint64(1))
    if backend.rows == 1:
        return bits[0], SharedTensor(session, np.zeros_like(bits), b.shape, 0, b.depth)
    last = np.zeros_like(bits)
    last[2] = bits[2]
    return np.bitwise_xor(bits[0], bits[1]), SharedTensor(session, last, b.shape, 0, b.depth)


@protocol(
    "b2a_bit",
    scheme="aby3",
    kinds={"b": "B"},
    rounds="2",
    comm="K*n*(1 + int(p == 0))",
    offline="0",
    ref=f"{ABY3_REF}, Sec. 5.4 (bit injection)",
    dims=lambda b: {"n": b.size},
    example=lambda s: ((bit_example(s),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = bits",
)
def b2a_bit(b: SharedTensor) -> SharedTensor:
    """A boolean-shared bit (bit 0 of each word) to an arithmetic sharing of 0/1 (integer, scale 0).

    Steps:
      1. b = d ^ b_2: party 0 knows d = b_0 ^ b_1 and inputs it arithmetically (K bits); [b_2] is free.
      2. [b] = [d] + [b_2] - 2 [d][b_2] (one product).
    Rounds: 2. Comm: K n bits per party, plus K n from party 0. Offline: 0. Leaks: nothing.
    Ref: bit injection, ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.4.
    """
    _check_bool(b, "b2a_bit")
    d, last = _injection_parts(b)
    shared_d = input_from(b.session, d, 0, b.shape, 0, b.depth, _parents(b), op="input_bit")
    return shared_d + last - rep_mul.__wrapped__(shared_d, last) * 2


@protocol(
    "bit_select",
    scheme="aby3",
    kinds={"b": "B"},
    rounds="2",
    comm="K*(2*n + nb*int(p == 0))",
    offline="0",
    ref=f"{ABY3_REF}: bit injection fused with the product (b y = d (y - 2 b_2 y) + b_2 y)",
    dims=select_dims,
    example=lambda s: ((bit_example(s), _rng_values(s, (3, 4))), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="nb = bits; ny = elements of y; n = output elements",
)
def bit_select(b: SharedTensor, y: SharedTensor) -> SharedTensor:
    """b * y for a boolean-shared bit b and an arithmetic y (broadcasting), in two rounds.

    Steps:
      1. b = d ^ b_2 as in ``b2a_bit``. In one call: party 0 inputs d (K bits per bit) and u = [b_2] y is
         reshared (one product, K bits per element).
      2. b y = u + [d] (y - 2 u) (one product).
    Rounds: 2. Comm: 2K n bits per party, plus K |b| from party 0. Offline: 0. Leaks: nothing.
    Ref: ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.4; bit injection fused with the product as in
    ``protocols.compare.bit_select``'s daBit form.
    """
    b, y, shape = check_select_operands(b, y)
    session = b.session
    d, last = _injection_parts(b)
    # Round 1, one call: the input of d and the reshare of u = b_2 y.
    u = cross_shares(session, last.payload, y.payload, shape, kernels.ring_mul)  # both lifted to shape's rank

    payload_d, sent_d = _components(session, d, 0, b.shape)
    K = session.ring.bits
    sends = [(i, (i - 1) % PARTIES, K * _numel(shape) + (K * b.size if i == 0 else 0)) for i in range(PARTIES)]
    contents = [(u, K), (sent_d, K, (0,))] if u is not None else None
    depth = session.channel.exchange("input_reshare", sends, max(b.depth, y.depth), _parents(b, y),
                                     contents=contents, reconstructs=False)
    session._work("replicated_cross", macs=3 * _numel(shape), elems=4 * _numel(shape))
    shared_d = SharedTensor(session, payload_d, b.shape, 0, depth)
    shared_u = SharedTensor(session, u, shape, y.frac, depth)
    return shared_u + rep_mul.__wrapped__(shared_d, y - shared_u * 2)
