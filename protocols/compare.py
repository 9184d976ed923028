"""Comparisons, selection by a secret bit, and what is built from them (sign, abs, ReLU, min/max).

Comparisons return boolean-shared bits (``kind == "B"``, width 1); ``protocols.b2a_bit`` converts one to an
arithmetic 0/1, and ``where``/``select`` take either kind directly. Comparing x and y computes the sign of
x - y, so it is correct when |x - y| < 2^(K-1) as ring integers, i.e. |x - y| < 2^(K-1-f) as reals.
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor

from . import boolean
from .arith import _rng_values, beaver_mul
from .boolean import _bool, _masked_open, and_gates, b2a_bit, msb, not_, xor
from .registry import protocol


def _diff(x, y) -> SharedTensor:
    if isinstance(x, SharedTensor):
        return x - y
    if isinstance(y, SharedTensor):
        return (-y) + x
    raise TypeError("a comparison needs at least one SharedTensor")


def ltz(x: SharedTensor) -> SharedTensor:
    """[x < 0] as a boolean-shared bit: the MSB (see ``protocols.msb``: 1 + log2 K rounds)."""
    return msb(x)


def lt(x, y) -> SharedTensor:
    """[x < y] (boolean bit); either operand may be public."""
    return msb(_diff(x, y))


def gt(x, y) -> SharedTensor:
    """[x > y] (boolean bit)."""
    return msb(_diff(y, x))


def le(x, y) -> SharedTensor:
    """[x <= y] = NOT [x > y] (boolean bit)."""
    return not_(gt(x, y))


def ge(x, y) -> SharedTensor:
    """[x >= y] = NOT [x < y] (boolean bit)."""
    return not_(lt(x, y))


def _and_tree_gates(K: int) -> list[int]:
    levels, nodes = [], K // 2
    while nodes >= 1:
        levels.append(nodes)
        nodes //= 2
    return levels


@protocol(
    "eqz",
    rounds="1+log2(K)",
    comm="(N-1)*n*(K + 2*(K-1))",
    offline="n*(2*K-1)",
    ref="masked opening with an edaBit, then an AND tree (cf. ABY3; SPU equal)",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((s.input(np.array([[0.0, 1.0, -2.0], [0.0, 3e-5, 0.0]])),), {}),
    vars_doc="n = elements",
)
def eqz(x: SharedTensor) -> SharedTensor:
    """[x == 0] as a boolean-shared bit.

    Steps:
      1. Dealer: an edaBit r. Open c = x + r (K bits per element).
      2. x == 0 iff c == r iff every bit of w = NOT(c ^ r) is 1 (local: c public).
      3. AND tree: w &= w >> s for s = 1, 2, ..., K/2 (log2 K rounds, K - 1 gates in all).
    Rounds: 1 + log2 K. Comm: (N-1) n (K + 2 (K - 1)) bits per party: 23.75 bytes per element for N = 2,
    K = 64. Offline: n (2K - 1) bits. Leaks: nothing (c is padded by r).
    Ref: masked opening with edaBits (Escudero et al., CRYPTO 2020) and an AND tree.
    """
    session = x.session
    c, r_bool, depth = _masked_open(x)
    w = not_(xor(r_bool, c) if c is not None else r_bool)
    w.depth = depth
    s = 1
    for gates in _and_tree_gates(session.ring.bits):
        (w_and,) = and_gates([(boolean.shift_right(w, s), w)], [gates])
        w = w_and
        s *= 2
    out = boolean.and_public(w, 1)
    out.width = 1
    return out


def eq(x, y) -> SharedTensor:
    """[x == y] (boolean bit); either operand may be public."""
    return eqz(_diff(x, y))


@protocol(
    "bit_select",
    rounds="1",
    comm="(N-1)*(nb + K*ny)",
    offline="K*(nb + n)",
    ref="daBit-Beaver product of a boolean bit and a ring element (cf. protocol-notes; Escudero et al. 2020)",
    dims=lambda b, y: {"nb": b.size, "ny": y.size, "n": int(np.prod(np.broadcast_shapes(b.shape, y.shape)))},
    example=lambda s: ((boolean.bit_example(s), _rng_values(s, (3, 4))), {}),
    vars_doc="nb = bits; ny = elements of y; n = output elements",
)
def select(b: SharedTensor, y: SharedTensor) -> SharedTensor:
    """b * y for a boolean-shared bit b and an arithmetic y (broadcasting), in one round.

    Steps:
      1. Dealer: a daBit r (shaped like b), a uniform a (shaped like y) and [r a].
      2. Open c = b ^ r (1 bit per bit) and e = y - a (K bits per element) in one call.
      3. r y = e [r] + [r a]; b y = (c + r - 2 c r) y = c y + (1 - 2c)(e [r] + [r a]) (local).
    Rounds: 1. Comm: (N-1)(|b| + K |y|) bits per party. Offline: K (|b| + |out|) bits.
    Leaks: nothing (c padded by r, e by a). Ref: the daBit trick of Rotaru-Wood 2019 fused with a Beaver
    product, as suggested in protocol-notes.
    """
    if b.kind != "B":
        raise TypeError("select takes a boolean-shared bit; use where() for an arithmetic condition")
    if y.kind != "A":
        raise TypeError("select multiplies an arithmetic sharing; convert a boolean one with protocols.b2a")
    if b.ndim == 0 and y.ndim == 0:  # keep public arrays from collapsing to numpy scalars
        return select.__wrapped__(b.reshape(1), y.reshape(1)).reshape(())
    session = b.session
    shape = tuple(np.broadcast_shapes(b.shape, y.shape))
    nd = len(shape)
    b = b if b.ndim == nd else b.reshape((1,) * (nd - b.ndim) + b.shape)
    y = y if y.ndim == nd else y.reshape((1,) * (nd - y.ndim) + y.shape)
    r_arith, r_bool, a, ra = session.dealer.bit_select_triple(b.shape, y.shape)
    bit = boolean.and_public(b, 1)
    masked_bit = xor(bit, _bool(session, r_bool, b.shape, 0, 1))
    masked_bit.width = 1
    masked_y = y._like(None if y.payload is None else session.backend.map(lambda u, v: u - v, y.payload, a),
                       y.shape, frac=0)
    (c, e), depth = session._open("open", [masked_bit, masked_y])
    session._work("select_combine", elems=6 * int(np.prod(shape, dtype=np.int64)))
    if c is None:
        return SharedTensor(session, None, shape, y.frac, depth)
    ring = session.ring
    c = np.bitwise_and(c, np.uint64(1))
    backend = session.backend
    ry = backend.map(lambda r, t: r * e + t, r_arith, ra)  # e [r] + [r a]
    coef = ring.reduce(np.asarray(np.uint64(1) - np.uint64(2) * c, dtype=np.uint64))
    z = backend.map(lambda u, v: u * c + v * coef, y.payload, ry)
    return SharedTensor(session, z, shape, y.frac, depth)


def where(cond: SharedTensor, a, b) -> SharedTensor:
    """cond ? a : b, for a boolean bit (1 round via ``select``) or an arithmetic 0/1 (a Beaver product)."""
    if not isinstance(a, SharedTensor) and not isinstance(b, SharedTensor):
        raise TypeError("where needs a shared a or b (for two public branches, multiply the condition)")
    diff = _diff(a, b)
    base = b if isinstance(b, SharedTensor) else (diff * 0) + b
    if cond.kind == "B":
        return base + select(cond, diff)
    if cond.frac != 0:
        raise ValueError("an arithmetic condition must be integer-encoded 0/1 (frac_bits=0)")
    return base + beaver_mul(cond, diff)


def sign(x: SharedTensor) -> SharedTensor:
    """1 - 2 [x < 0] as an integer-encoded arithmetic tensor (0 maps to +1)."""
    return 1 - 2 * b2a_bit(msb(x))


def abs_(x: SharedTensor) -> SharedTensor:
    """|x| = x - 2 [x < 0] x (MSB, then one select)."""
    return x + select(msb(x), -2 * x)


def relu(x: SharedTensor) -> SharedTensor:
    """max(x, 0) = NOT[x < 0] * x (MSB, then one select)."""
    return select(not_(msb(x)), x)


def maximum(x: SharedTensor, y) -> SharedTensor:
    """Elementwise max: y + [x > y] (x - y)."""
    d = _diff(x, y)
    base = y if isinstance(y, SharedTensor) else (d * 0) + y
    return base + select(msb(-d), d)


def minimum(x: SharedTensor, y) -> SharedTensor:
    """Elementwise min: y + [x < y] (x - y)."""
    d = _diff(x, y)
    base = y if isinstance(y, SharedTensor) else (d * 0) + y
    return base + select(msb(d), d)
