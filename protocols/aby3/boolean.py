"""ABY3 boolean sharing and the gates between the two worlds: AND, bit injection, selection, MSB, equality.

Boolean sharings are replicated XOR sharings of K-bit words (bit-parallel, as in ``protocols.boolean``):
XOR, NOT, shifts and AND with public masks are local and shared with the additive scheme's code. An AND is
local cross terms plus one reshare: 1 bit per gate per party, against 2 (N - 1) for a Beaver AND.

The MSB and the bit injection are the additive scheme's protocols (``protocols.boolean``: open x + r for
an edaBit r, open b ^ r for a daBit r) over this scheme's openings and ANDs, with the correlations made by
the three parties offline (``correlations``). Equality keeps ABY3's own split: party 0 knows
a = x_0 + x_1 and parties 1 and 2 know x_2, so x = a + x_2 needs one boolean input (a, from party 0) and
a free sharing of x_2.
"""
from __future__ import annotations

import numpy as np

from mpsim import kernels
from mpsim.session import Unrevealed
from mpsim.tensor import SharedTensor

from ..arith import _rng_values
from ..registry import CELLS, declare_select_stages, protocol
from ..boolean import (_bool, _check_bool, _subtraction_signals, a2b_example, a2b_gates, and_public, bit_example,
                       carry_top_bit, kogge_stone_a2b, not_, xor)
from ..compare import all_ones, check_select_operands, select_dims
from .arith import ABY3_REF, PARTIES, _parents, input_from, open_values, rep_mul

_B2A_BIT = CELLS[("additive", "b2a_bit")]

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


def _operands(x: SharedTensor, negate_last: bool = False):
    """Boolean sharings of a and b with x = a + b (or a - b): party 0 knows a = x_0 + x_1 and inputs it (1 round,
    K bits); b = x_2 (or -x_2), known to parties 1 and 2, is a free sharing with only component 2 set."""
    if x.kind != "A":
        raise TypeError("this protocol takes an arithmetic sharing; convert a boolean one with protocols.b2a")
    session, backend, ring = x.session, x.session.backend, x.session.ring
    if not backend.has_data:
        a, b = None, _bool(session, None, x.shape, x.depth, ring.bits)
    elif backend.rows == 1:  # ideal: a is the value, b is zero
        a, b = x.payload[0], _bool(session, np.zeros_like(x.payload), x.shape, x.depth, ring.bits)
    else:
        a = ring.reduce(kernels.ring_add(x.payload[0], x.payload[1]))
        last = x.payload[2]
        if negate_last:
            last = ring.reduce(kernels.ring_sub(np.zeros_like(last), last))
        words = np.zeros_like(x.payload)
        words[2] = last
        b = _bool(session, words, x.shape, x.depth, ring.bits)
    shared_a = input_from(session, a, 0, x.shape, 0, x.depth, _parents(x), kind="B", width=ring.bits,
                          op="input_bits")
    return shared_a, b


@protocol(
    "msb",
    scheme="aby3",
    rounds="1+log2(K)",
    comm=f"n*(K + {MSB_GATES})",
    offline="n*(2*K - 3)",
    ref=f"edaBits (Escudero et al., CRYPTO 2020) made by the parties; carry-only tree ({ABY3_REF}, Sec. 5.3)",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((s.input(np.linspace(-5, 5, 12).reshape(3, 4)),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements; offline: bits party p receives",
)
def msb(x: SharedTensor) -> SharedTensor:
    """The most significant bit of x (its sign in two's complement), as a boolean-shared bit.

    Steps (``protocols.boolean.msb``'s, over this scheme's primitives):
      1. Offline: an edaBit r made by the parties (``correlations.edabit``: 2K - 3 AND gates).
      2. Open c = x + r: each party receives the one component it lacks (K bits).
      3. x = c + NOT(r) + 1: g = c & ~r and p = c ^ ~r are local (c is public).
      4. The carry into bit K - 1 by the carry-only tree (log2 K AND rounds, 2K - 2 - log2 K gates, 1 bit each).
      5. msb = p_(K-1) ^ carry (local).
    Rounds: 1 + log2 K. Comm: n (K + 2K - 2 - log2 K) bits per party: 23 bytes per element at K = 64, the
    same for every party. Offline: (2K - 3) n bits to each party. Leaks: nothing (c is padded by r, which
    no party knows).
    Ref: edaBits (Escudero et al., CRYPTO 2020); carry-only trees as in ABY3 (Mohassel-Rindal, CCS 2018),
    Sec. 5.3, and SPU's msb_a2b. Cheaper online than ABY3's own bit decomposition of x_0 + x_1 + x_2
    (party 0's input of x_0 + x_1, then an adder: 2 + log2 K rounds, 31 bytes for party 0), which moves to
    the offline phase here, on a value independent of x.
    """
    g, p = _subtraction_signals(x)
    return carry_top_bit(xor(g, and_public(p, 1)), p, and_gates)  # carry-in 1 folded into position 0


@protocol(
    "a2b",
    scheme="aby3",
    rounds="1+log2(K)",
    comm="n*(K + G)",
    offline="n*(2*K - 3)",
    ref=f"edaBits (Escudero et al., CRYPTO 2020) made by the parties + Kogge-Stone adder ({ABY3_REF}, Sec. 5.3)",
    dims=lambda x: {"n": x.size, "G": a2b_gates(x.session.ring.bits)},
    example=lambda s: ((s.input(np.linspace(-5, 5, 12).reshape(3, 4)),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements; G = AND gates of the adder (K=64: 579, K=32: 227); offline: bits party p receives",
)
def a2b(x: SharedTensor) -> SharedTensor:
    """Arithmetic to boolean sharing of the same K-bit ring element (bit-parallel words).

    Steps (``protocols.boolean.a2b``'s, over this scheme's primitives):
      1. Offline: an edaBit r made by the parties (``correlations.edabit``).
      2. Open c = x + r: each party receives the one component it lacks (K bits).
      3. x = c + NOT(r) + 1: g, p local; the Kogge-Stone prefix (log2 K AND rounds, G gates, 1 bit each).
    Rounds: 1 + log2 K. Comm: n (K + G) bits per party. Offline: (2K - 3) n bits to each party.
    Leaks: nothing (c is padded by r). Ref: edaBits (Escudero et al., CRYPTO 2020); parallel prefix adders
    as in ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.3.
    """
    return kogge_stone_a2b(x, and_gates)


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


@protocol(
    "b2a_bit",
    scheme="aby3",
    kinds={"b": "B"},
    rounds="1",
    comm="n",
    offline="2*K*n",
    ref="daBits (Rotaru-Wood, INDOCRYPT 2019) made by the parties",
    dims=lambda b: {"n": b.size},
    example=lambda s: ((bit_example(s),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = bits; offline: bits party p receives",
)
def b2a_bit(b: SharedTensor) -> SharedTensor:
    """A boolean-shared bit (bit 0 of each word) to an arithmetic sharing of 0/1 (integer, scale 0).

    Steps (``protocols.boolean.b2a_bit``'s, over this scheme's primitives):
      1. Offline: a daBit r made by the parties (``correlations.dabit``: two replicated products).
      2. Open c = b ^ r: each party receives the one component it lacks (1 bit).
      3. [b] = c + [r] - 2 c [r] (local).
    Rounds: 1. Comm: n bits per party. Offline: 2K n bits to each party. Leaks: nothing (c is padded by r).
    Ref: daBits, Rotaru-Wood, INDOCRYPT 2019; cheaper online than ABY3's bit injection (Sec. 5.4: party 0's
    input of b_0 ^ b_1, then a product: 2 rounds, 2K bits for party 0).
    """
    return _B2A_BIT.fn.__wrapped__(b)


@protocol(
    "bit_select",
    scheme="aby3",
    kinds={"b": "B"},
    cost=lambda d: d.b2a_bit.at(n="nb") + d.rep_mul.at(n="n"),
    ref="daBit bit injection, then the replicated product",
    dims=select_dims,
    example=lambda s: ((bit_example(s), _rng_values(s, (3, 4))), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="nb = bits; ny = elements of y; n = output elements",
)
def bit_select(b: SharedTensor, y: SharedTensor) -> SharedTensor:
    """b * y for a boolean-shared bit b and an arithmetic y (broadcasting), in two rounds.

    Steps:
      1. [b] by ``b2a_bit`` (a daBit: 1 round, 1 bit per bit).
      2. [b] y by ``rep_mul`` (1 round, K bits per output element).
    Rounds: 2. Comm: |b| + K n bits per party. Offline: the daBits'. Leaks: nothing.
    Ref: daBits (Rotaru-Wood, INDOCRYPT 2019); ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.1.
    """
    b, y, _ = check_select_operands(b, y)
    return rep_mul.__wrapped__(b2a_bit.__wrapped__(b), y)


# The daBit opening needs only the bit: composed formulas run it beside whatever makes the values.
declare_select_stages("aby3", lambda d, nb, ny, n: (d.b2a_bit.at(n=nb), d.rep_mul.at(n=n)))
