"""Boolean sharing: XOR shares of K-bit words, one word per element (bit-parallel), and conversions.

A boolean-shared tensor (``kind == "B"``) stores each element's bits in one uint64 word; ``width`` says how
many low bits are meaningful (K for a word, 1 for a single bit). XOR, NOT, shifts and AND with public masks
are local. AND between shared words is a Beaver AND on whole words, but a protocol that only needs some bit
positions (a prefix tree) declares how many *gates* per element it uses, and only those bits are sent and
counted: a packed implementation sends exactly those bits, packed across elements.

Conversions: ``b2a`` (single bits with daBits; words bit by bit), ``a2b`` (masked opening with an edaBit,
then a Kogge-Stone adder whose one operand is public), and ``msb`` (the same, computing only the carry into
the top bit). For every N they take 1 + log2 K rounds: the masked opening turns the N-party sum into a
two-operand subtraction with one public operand, which is cheaper than reducing N binary sharings with
carry-save adders (those need extra AND layers that grow with log N).
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor

from .registry import COMPOSED, protocol


def _log2(k: int) -> int:
    return k.bit_length() - 1


def _bool(session, payload, shape, depth, width) -> SharedTensor:
    return SharedTensor(session, payload, shape, 0, depth, kind="B", width=width)


def _check_bool(x: SharedTensor, what: str) -> None:
    if x.kind != "B":
        raise TypeError(f"{what} needs a boolean (XOR) sharing; use protocols.a2b or a comparison first")


# -- local operations ------------------------------------------------------------------------------------------
def xor(x: SharedTensor, y) -> SharedTensor:
    """x ^ y for boolean sharings, or with a public integer array (local)."""
    _check_bool(x, "xor")
    backend = x.session.backend
    if isinstance(y, SharedTensor):
        _check_bool(y, "xor")
        x._same_session(y)
        shape = x._broadcast_shape(y.shape)
        nd = len(shape)
        payload = backend.map(np.bitwise_xor, x._payload_nd(nd), y._payload_nd(nd))
        return _bool(x.session, payload, shape, max(x.depth, y.depth), max(x.width, y.width))
    public = np.asarray(y, dtype=np.uint64)
    shape = x._broadcast_shape(public.shape)
    payload = backend.xor_public(x._payload_nd(len(shape)), public)
    return _bool(x.session, payload, shape, x.depth, x.width)


def not_(x: SharedTensor) -> SharedTensor:
    """Bitwise NOT of the ``width`` meaningful bits (party 0 flips them). Local."""
    _check_bool(x, "not")
    mask = np.uint64((1 << x.width) - 1) if x.width < 64 else np.uint64(2**64 - 1)
    return xor(x, mask)


def and_public(x: SharedTensor, mask) -> SharedTensor:
    """x & m for a public integer array m (every party masks its share). Local."""
    _check_bool(x, "and_public")
    public = np.asarray(mask, dtype=np.uint64)
    shape = x._broadcast_shape(public.shape)
    payload = x.session.backend.map(lambda p: np.bitwise_and(p, public), x._payload_nd(len(shape)))
    return _bool(x.session, payload, shape, x.depth, x.width)


def shift_right(x: SharedTensor, bits: int) -> SharedTensor:
    """Logical right shift of every share (valid for XOR shares). Local."""
    _check_bool(x, "shift")
    payload = x.session.backend.map(lambda p: np.right_shift(p, np.uint64(bits)), x.payload)
    return _bool(x.session, payload, x.shape, x.depth, max(x.width - bits, 1))


def shift_left(x: SharedTensor, bits: int) -> SharedTensor:
    """Left shift of every share, reduced mod 2^K. Local."""
    _check_bool(x, "shift")
    payload = x.session.backend.map(lambda p: np.left_shift(p, np.uint64(bits)), x.payload)
    return _bool(x.session, payload, x.shape, x.depth, min(x.width + bits, x.session.ring.bits))


def public_and_shared(c: np.ndarray, x: SharedTensor) -> SharedTensor:
    """c & x with c public (may be None under the count backend). Local."""
    if c is None:
        return _bool(x.session, None, x.shape, x.depth, x.width)
    return and_public(x, c)


# -- AND -----------------------------------------------------------------------------------------------------
def and_gates(pairs, gates) -> list[SharedTensor]:
    """Beaver AND of several pairs of boolean sharings in one round (one channel call).

    ``gates[i]`` is the number of bit positions per element that pair i really needs; only those bits are
    opened and counted (2 bits per gate per destination), and the dealer corrects only those bits of c.
    Each pair may have its own shape (no broadcasting within a pair).
    """
    session = pairs[0][0].session
    openings, triples = [], []
    for (x, y), g in zip(pairs, gates):
        _check_bool(x, "and")
        _check_bool(y, "and")
        if x.shape != y.shape:
            raise ValueError(f"AND operands must have one shape, got {x.shape} and {y.shape}")
        a, b, c = session.dealer.and_triple(x.shape, g)
        triples.append((a, b, c))
        # e = x ^ a and f = y ^ b, share by share (the masks are fresh: no depth, no broadcasting)
        ea = _bool(session, session.backend.map(np.bitwise_xor, x.payload, a), x.shape, x.depth, x.width)
        fb = _bool(session, session.backend.map(np.bitwise_xor, y.payload, b), y.shape, y.depth, y.width)
        openings += [ea, fb]
    opened, depth = session._open("open_and", openings, widths=[g for g in gates for _ in (0, 1)])
    session._work("and_combine", elems=6 * sum(x.size for x, _ in pairs))
    out = []
    for i, ((x, _), (a, b, c)) in enumerate(zip(pairs, triples)):
        e, f = opened[2 * i], opened[2 * i + 1]
        z = session.backend.and_combine(c, a, b, e, f)
        out.append(_bool(session, z, x.shape, depth, x.width))
    return out


@protocol(
    "and",
    kinds={"x": "B", "y": "B"},
    rounds="1",
    comm="2*(N-1)*n*w",
    offline="n*w",
    ref="Beaver, CRYPTO 1991 (over GF(2), bit-parallel)",
    dims=lambda x, y: {"n": x.size, "w": x.width},
    example=lambda s: ((a2b_example(s), a2b_example(s)), {}),
    vars_doc="n = elements; w = meaningful bits per element",
)
def and_(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Bitwise AND of two boolean sharings of one shape.

    Steps:
      1. Dealer: XOR-shared a, b and c = a & b (the w meaningful bits of c corrected).
      2. Open e = x ^ a and f = y ^ b (w bits per element each) in one call.
      3. z = c ^ (e & b) ^ (f & a), and party 0 XORs e & f.
    Rounds: 1. Comm: 2 (N-1) w n bits per party. Offline: w n bits.
    Leaks: nothing (e, f are padded by a, b). Ref: Beaver 1991, over GF(2).
    """
    return and_gates([(x, y)], [x.width])[0]


def a2b_example(s):
    return share_bits(s, np.arange(12, dtype=np.int64).reshape(3, 4) * 12345 - 7)


def share_bits(session, values, owner: int = 0, width: int | None = None) -> SharedTensor:
    """XOR-share a public-to-``owner`` integer array as K-bit words (an input, like ``session.input``); a
    scheme with its own boolean input (ABY3) runs that."""
    own = getattr(session.scheme, "share_bits", None)
    if own is not None:
        return own(session, values, owner, width)
    ring_values = session.ring.from_ints(values) if session.backend.has_data else None
    payload = session.backend.split_xor(ring_values, owner=owner)
    return _bool(session, payload, np.shape(values), 0, session.ring.bits if width is None else width)


def reveal_bits(x: SharedTensor, to: int | None = None):
    """Open a boolean sharing (``width`` bits per element); returns uint64 words (or an Unrevealed)."""
    from mpsim.session import Unrevealed

    _check_bool(x, "reveal_bits")
    if x.session.scheme.name != "additive":
        return x.session.scheme.reveal_bits(x, to=to)
    (value,), _ = x.session._open("open_bits", [x], to=to)
    if value is None:
        return Unrevealed(x.shape)
    return np.asarray(value, dtype=np.uint64).reshape(x.shape)


# -- boolean to arithmetic -------------------------------------------------------------------------------------
@protocol(
    "b2a_bit",
    kinds={"b": "B"},
    rounds="1",
    comm="(N-1)*n",
    offline="K*n",
    ref="daBits, Rotaru-Wood, INDOCRYPT 2019",
    dims=lambda b: {"n": b.size},
    example=lambda s: ((bit_example(s),), {}),
    vars_doc="n = bits",
)
def b2a_bit(b: SharedTensor) -> SharedTensor:
    """A boolean-shared bit (bit 0 of each word) to an arithmetic sharing of 0/1 (integer, scale 0).

    Steps:
      1. Dealer: a daBit r (the same random bit XOR-shared and additively shared).
      2. Open c = b ^ r (1 bit per element).
      3. [b] = c + [r] - 2 c [r] (party 0 adds c).
    Rounds: 1. Comm: (N-1) n bits per party. Offline: K n bits. Leaks: nothing (c is padded by r).
    Ref: Rotaru-Wood, "MArBled circuits", INDOCRYPT 2019 (daBits).
    """
    _check_bool(b, "b2a_bit")
    if b.ndim == 0:  # keep public arrays from collapsing to numpy scalars
        return b2a_bit.__wrapped__(b.reshape(1)).reshape(())
    session = b.session
    r_arith, r_bool = session.scheme.dabit(session, b.shape)
    bit = and_public(b, 1)
    masked = xor(bit, _bool(session, r_bool, b.shape, 0, 1))
    masked.width = 1
    (c,), depth = session.scheme.open(session, "open", [masked])
    if c is None:
        return SharedTensor(session, None, b.shape, 0, depth)
    c = np.bitwise_and(c, np.uint64(1))
    ring = session.ring
    coef = ring.reduce(np.asarray(np.uint64(1) - np.uint64(2) * c, dtype=np.uint64))
    payload = session.backend.map(lambda r: r * coef, r_arith)
    payload = session.backend.add_public(payload, c)
    return SharedTensor(session, payload, b.shape, 0, depth)


def bit_example(s):
    return share_bits(s, np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]]), width=1)


@protocol(
    "b2a",
    scheme=COMPOSED,
    kinds={"x": "B"},
    cost=lambda d: d.b2a_bit.at(n="K*n"),
    ref="daBits, Rotaru-Wood, INDOCRYPT 2019",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((a2b_example(s),), {}),
    vars_doc="n = elements",
)
def b2a(x: SharedTensor) -> SharedTensor:
    """A boolean-shared K-bit word to an arithmetic sharing of the same ring element (scale 0).

    Steps:
      1. Split the word into its K bits (local: bit i of every share).
      2. Convert all K bits with daBits in one call (``b2a_bit`` batched).
      3. x = sum_i 2^i [b_i] (local).
    Rounds: 1. Comm: K n times b2a_bit's per bit ((N-1) K n bits per party in the additive scheme).
    Offline: K n daBits. Leaks: nothing. Ref: daBits (Rotaru-Wood 2019), bit-wise.
    """
    _check_bool(x, "b2a")
    session = x.session
    K = session.ring.bits
    bits = bit_planes(x)
    arith = b2a_bit.__wrapped__(bits)
    weights = np.array([1 << i for i in range(K)], dtype=np.uint64)
    return (arith * weights).sum(axis=-1)


def bit_planes(x: SharedTensor) -> SharedTensor:
    """Bits 0..K-1 of each word as a new trailing axis of single-bit sharings. Local."""
    K = x.session.ring.bits
    shifts = np.arange(K, dtype=np.uint64)
    payload = x.session.backend.map(
        lambda p: np.bitwise_and(np.right_shift(p[..., None], shifts), np.uint64(1)), x.payload
    )
    return _bool(x.session, payload, x.shape + (K,), x.depth, 1)


# -- arithmetic to boolean, MSB --------------------------------------------------------------------------------
def _masked_open(x: SharedTensor):
    """An edaBit r (the scheme's: the dealer's, or made by the parties); open c = x + r (K bits per element).
    Returns (c, r_bool, depth)."""
    if x.kind != "A":
        raise TypeError("this protocol takes an arithmetic sharing; convert a boolean one with protocols.b2a")
    session = x.session
    r_arith, r_bool = session.scheme.edabit(session, x.shape)
    masked = x._like(x.payload, x.shape, frac=0)
    masked = masked._like(session.backend.map(lambda u, v: u + v, masked.payload, r_arith)
                          if masked.payload is not None else None, x.shape)
    (c,), depth = session.scheme.open(session, "open", [masked])
    return c, _bool(session, r_bool, x.shape, 0, session.ring.bits), depth


def _subtraction_signals(x: SharedTensor):
    """Open c = x + r (edaBit r) and return the generate and propagate words of x = c + NOT(r) + 1.

    g = c & ~r and p = c ^ ~r are local because c is public; both sit at the depth of the opening.
    """
    c, r_bool, depth = _masked_open(x)
    return subtraction_signals(c, r_bool, depth)


def subtraction_signals(c, r_bool: SharedTensor, depth: int):
    """g = c & ~r and p = c ^ ~r for a public c (None under count) opened at ``depth``: local."""
    session = r_bool.session
    not_r = not_(r_bool)
    g = public_and_shared(c, not_r)
    p = xor(not_r, c) if c is not None else _bool(session, None, r_bool.shape, depth, session.ring.bits)
    g.depth = p.depth = depth
    g.calls = p.calls = session.channel.frontier(depth)
    return g, p


def _kogge_stone_gates(K: int) -> list[tuple[int, int]]:
    """(G gates, P gates) per level of the Kogge-Stone prefix over K positions; P is skipped at the end."""
    levels = []
    s = 1
    while s < K:
        last = 2 * s >= K
        levels.append((K - s, 0 if last else K - 2 * s))
        s *= 2
    return levels


def a2b_gates(K: int) -> int:
    return sum(g + p for g, p in _kogge_stone_gates(K))


@protocol(
    "a2b",
    rounds="1+log2(K)",
    comm="(N-1)*n*(K + 2*G)",
    offline="n*(K + G)",
    ref="edaBits (Escudero et al., CRYPTO 2020) + Kogge-Stone adder (ABY3, Sec. 5.3)",
    dims=lambda x: {"n": x.size, "G": a2b_gates(x.session.ring.bits)},
    example=lambda s: ((s.input(np.linspace(-5, 5, 12).reshape(3, 4)),), {}),
    vars_doc="n = elements; G = AND gates of the adder (K=64: 579, K=32: 227)",
)
def a2b(x: SharedTensor) -> SharedTensor:
    """Arithmetic to boolean sharing of the same K-bit ring element (bit-parallel words).

    Steps:
      1. Dealer: an edaBit r (arithmetic and XOR shares of one uniform r).
      2. Open c = x + r (K bits per element).
      3. x = c + NOT(r) + 1 mod 2^K: with c public, generate g = c & ~r and propagate p = c ^ ~r are local;
         the carry-in 1 folds into position 0 (G_0 = g_0 | p_0 = g_0 ^ p_0).
      4. Kogge-Stone prefix: for s = 1, 2, ..., K/2: G ^= P & (G << s); P &= P << s (one AND round each;
         gates counted only at positions that change, P skipped in the last level).
      5. x = p ^ ((G << 1) | 1) (local).
    Rounds: 1 + log2 K. Comm: (N-1) n (K + 2 G) bits per party, G = sum of the levels' gates.
    Offline: n (K + G) bits (edaBit, AND triples). Leaks: nothing (c is padded by r; ANDs are Beaver).
    Ref: edaBits, Escudero et al., CRYPTO 2020; parallel prefix adders as in ABY3 (CCS 2018, Sec. 5.3).
    """
    return kogge_stone_a2b(x, and_gates)


def kogge_stone_a2b(x: SharedTensor, gates_fn) -> SharedTensor:
    """``a2b``'s steps with the scheme's AND ``gates_fn`` (and its edaBits and openings)."""
    K = x.session.ring.bits
    g, p = _subtraction_signals(x)
    # Carry-in 1: G_0 = g_0 ^ p_0 (g and p are never both 1).
    G = xor(g, and_public(p, 1))
    P = p
    s = 1
    for g_gates, p_gates in _kogge_stone_gates(K):
        pairs, gates = [(P, shift_left(G, s))], [g_gates]
        if p_gates:
            pairs.append((P, shift_left(P, s)))
            gates.append(p_gates)
        outs = gates_fn(pairs, gates)
        G = xor(G, outs[0])
        if p_gates:
            P = outs[1]
        s *= 2
    carries = xor(shift_left(G, 1), 1)
    out = xor(p, carries)
    out.width = K
    return out


def _msb_gates(K: int) -> list[tuple[int, int]]:
    """(G gates, P gates) per level of the carry tree over K positions (position K-1 padded, spine P skipped)."""
    levels = []
    nodes = K // 2
    while nodes >= 1:
        levels.append((nodes, nodes - 1))
        nodes //= 2
    return levels


def msb_gates(K: int) -> int:
    return sum(g + p for g, p in _msb_gates(K))


@protocol(
    "msb",
    rounds="1+log2(K)",
    comm="(N-1)*n*(K + 2*(2*K - 2 - log2(K)))",
    offline="n*(K + 2*K - 2 - log2(K))",
    ref="edaBits (Escudero et al., CRYPTO 2020); carry-only prefix tree (ABY3 Sec. 5.3; SPU msb_a2b)",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((s.input(np.linspace(-5, 5, 12).reshape(3, 4)),), {}),
    vars_doc="n = elements",
)
def msb(x: SharedTensor) -> SharedTensor:
    """The most significant bit of x (its sign in two's complement), as a boolean-shared bit.

    Steps:
      1. Dealer: an edaBit r. Open c = x + r (K bits per element).
      2. x = c + NOT(r) + 1: g = c & ~r, p = c ^ ~r local, carry-in folded into position 0.
      3. Only the carry into bit K-1 is needed: a tree over positions 0..K-1, with position K-1 padded by
         (G, P) = (0, 1), the identity, combines (G, P)_hi o (G, P)_lo = (G_hi ^ P_hi G_lo, P_hi P_lo);
         log2 K AND rounds, K - 1 G gates and K - 1 - log2 K P gates (P of the lowest group is never used).
      4. msb = c_{K-1} ^ ~r_{K-1} ^ carry (local).
    Rounds: 1 + log2 K. Comm: (N-1) n (K + 2 (2K - 2 - log2 K)) bits per party: 38 bytes per element for
    N = 2, K = 64. Offline: n (K + 2K - 2 - log2 K) bits. Leaks: nothing.
    Ref: edaBits (Escudero et al., CRYPTO 2020); carry-only trees as in ABY3 (Sec. 5.3) and SPU's msb_a2b.
    """
    g, p = _subtraction_signals(x)
    return carry_top_bit(xor(g, and_public(p, 1)), p, and_gates)  # carry-in 1 folded into position 0


def carry_top_bit(g: SharedTensor, p: SharedTensor, gates_fn) -> SharedTensor:
    """The top bit of a sum from its generate and propagate words (carry-in already folded into g's bit 0):
    p_(K-1) ^ (carry into K - 1), by the carry-only tree of ``msb`` with the scheme's AND ``gates_fn``."""
    x, y, rest = carry_tree_but_last(g, p, gates_fn)
    (last,) = gates_fn([(x, y)], [1])
    out = and_public(xor(rest, last), 1)
    out.width = 1
    return out


def carry_tree_but_last(g: SharedTensor, p: SharedTensor, gates_fn):
    """Every level of ``carry_top_bit``'s tree but the last, which is one AND gate per element: returns its
    operands x, y and the XOR term ``rest``, so that the top bit is bit 0 of rest ^ (x & y) (a scheme may
    fuse that gate with what follows)."""
    K = g.session.ring.bits
    top = np.uint64(1 << (K - 1))
    low = np.uint64((1 << (K - 1)) - 1)
    G = and_public(g, low)  # position K-1 cleared
    P = xor(and_public(p, low), top)  # position K-1 padded with P = 1
    s = 1
    levels = _msb_gates(K)
    for g_gates, p_gates in levels[:-1]:
        G_hi, P_hi = shift_right(G, s), shift_right(P, s)
        pairs, gates = [(P_hi, G)], [g_gates]
        if p_gates:
            pairs.append((P_hi, P))
            gates.append(p_gates)
        outs = gates_fn(pairs, gates)
        G = xor(G_hi, outs[0])
        if p_gates:
            P = outs[1]
        s *= 2
    if levels[-1] != (1, 0):
        raise AssertionError("the carry tree's last level is one G gate")
    top_bit = shift_right(p, K - 1)  # the operands' top bits XORed
    return shift_right(P, s), G, xor(top_bit, shift_right(G, s))
