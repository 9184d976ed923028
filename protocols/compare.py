"""Comparisons, selection by a secret bit, and what is built from them (sign, abs, ReLU, min/max).

Comparisons return boolean-shared bits (``kind == "B"``, width 1); ``protocols.b2a_bit`` converts one to an
arithmetic 0/1, and ``where``/``select`` take either kind directly. Comparing x and y computes the sign of
x - y, so it is correct when |x - y| < 2^(K-1) as ring integers, i.e. |x - y| < 2^(K-1-f) as reals.
"""
from __future__ import annotations

import math
import numpy as np

from mpsim.tensor import SharedTensor, _numel

from . import boolean
from .arith import _rng_values
from .boolean import _bool, _masked_open, and_gates, not_, xor
from .cost import Expr
from .registry import COMPOSED, call, composed_except, protocol

BOTH = COMPOSED  # written once over the primitives: a cell per scheme


def _diff(x, y) -> SharedTensor:
    if isinstance(x, SharedTensor):
        return x - y
    if isinstance(y, SharedTensor):
        return (-y) + x
    raise TypeError("a comparison needs at least one SharedTensor")


def _shape(v) -> tuple:
    return v.shape if isinstance(v, SharedTensor) else np.shape(v)


def _pair_dims(x, y) -> dict:
    """n = elements of the broadcast difference x - y (what the MSB or equality test runs on)."""
    return {"n": _numel(np.broadcast_shapes(_shape(x), _shape(y)))}


def _pair_example(s):
    a = s.input(np.array([[1.5, -2.0, 0.0], [3.25, 0.5, -0.5]]))
    b = s.input(np.array([[1.5, 2.0, -0.25], [-3.0, 0.5, 0.75]]), owner=s.parties - 1)
    return (a, b), {}


def _unary_example(s):
    return (s.input(np.array([[1.5, -2.0, 0.0, -0.0], [3.25, -0.5, 7.0, -7.75]])),), {}


# Declarations composed from the scheme's cells (``msb``, ``bit_select``).
_MSB = {"scheme": BOTH, "cost": lambda d: d.msb}
# msb, then a bit_select of one element per bit
_MSB_SELECT = {"scheme": BOTH, "cost": lambda d: d.msb + d.bit_select.at(nb="n", ny="n")}
# relu, maximum and minimum: the FSS suite's are one-knot spline gates (protocols/fss/spline.py)
_MSB_SELECT_NOT_FSS = {**_MSB_SELECT, "scheme": composed_except("fss")}
_CMP_REF = "edaBits (Escudero et al., CRYPTO 2020); carry-only prefix tree (ABY3 Sec. 5.3; SPU msb_a2b)"


@protocol(
    "ltz",
    **_MSB,
    ref=_CMP_REF,
    dims=lambda x: {"n": x.size},
    example=_unary_example,
    vars_doc="n = elements",
)
def ltz(x: SharedTensor) -> SharedTensor:
    """[x < 0] as a boolean-shared bit: the MSB, right on the whole ring.

    Steps:
      1. b = msb(x) (``protocols.msb``).
    Rounds: 1 + log2 K. Comm: (N-1) n (K + 2(2K - 2 - log2 K)) bits per party (one msb per element).
    Leaks: nothing beyond the output. Ref: as ``msb`` (edaBits, Escudero et al. 2020; carry-only prefix tree).
    """
    return call("msb", x)


@protocol(
    "lt",
    **_MSB,
    ref=_CMP_REF,
    dims=_pair_dims,
    example=_pair_example,
    vars_doc="n = elements of the broadcast difference",
)
def lt(x, y) -> SharedTensor:
    """[x < y] (boolean bit); either operand may be public.

    Steps:
      1. d = x - y (local; broadcast; a public operand is added by party 0).
      2. b = msb(d).
    Rounds: 1 + log2 K. Comm: one msb per element of d: (N-1) n (K + 2(2K - 2 - log2 K)) bits per party.
    Leaks: nothing beyond the output. Right when |x - y| < 2^(K-1-f) (module docstring).
    Ref: comparison as the sign of the difference (ABY3 Sec. 5.3) with ``msb``.
    """
    return call("msb", _diff(x, y))


@protocol(
    "gt",
    **_MSB,
    ref=_CMP_REF,
    dims=_pair_dims,
    example=_pair_example,
    vars_doc="n = elements of the broadcast difference",
)
def gt(x, y) -> SharedTensor:
    """[x > y] (boolean bit); either operand may be public.

    Steps:
      1. d = y - x (local). 2. b = msb(d).
    Rounds: 1 + log2 K. Comm: one msb per element of d (as ``lt``).
    Leaks: nothing beyond the output. Ref: as ``lt``.
    """
    return call("msb", _diff(y, x))


@protocol(
    "le",
    **_MSB,
    ref=_CMP_REF,
    dims=_pair_dims,
    example=_pair_example,
    vars_doc="n = elements of the broadcast difference",
)
def le(x, y) -> SharedTensor:
    """[x <= y] = NOT [x > y] (boolean bit); either operand may be public.

    Steps:
      1. d = y - x (local). 2. b = msb(d). 3. NOT b (local: party 0 flips its share).
    Rounds: 1 + log2 K. Comm: one msb per element of d (as ``lt``).
    Leaks: nothing beyond the output. Ref: as ``lt``.
    """
    return not_(call("msb", _diff(y, x)))


@protocol(
    "ge",
    **_MSB,
    ref=_CMP_REF,
    dims=_pair_dims,
    example=_pair_example,
    vars_doc="n = elements of the broadcast difference",
)
def ge(x, y) -> SharedTensor:
    """[x >= y] = NOT [x < y] (boolean bit); either operand may be public.

    Steps:
      1. d = x - y (local). 2. b = msb(d). 3. NOT b (local).
    Rounds: 1 + log2 K. Comm: one msb per element of d (as ``lt``).
    Leaks: nothing beyond the output. Ref: as ``lt``.
    """
    return not_(call("msb", _diff(x, y)))


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
    c, r_bool, depth = _masked_open(x)
    w = not_(xor(r_bool, c) if c is not None else r_bool)
    w.depth = depth
    return all_ones(w, and_gates)


def all_ones(w: SharedTensor, gates_fn) -> SharedTensor:
    """[every bit of the K-bit word w is 1], by an AND tree with the scheme's AND ``gates_fn``
    (log2 K rounds, K - 1 gates)."""
    s = 1
    for gates in _and_tree_gates(w.session.ring.bits):
        (w,) = gates_fn([(boolean.shift_right(w, s), w)], [gates])
        s *= 2
    out = boolean.and_public(w, 1)
    out.width = 1
    return out


@protocol(
    "eq",
    scheme=BOTH,
    cost=lambda d: d.eqz,
    ref="eqz of the difference: masked opening with an edaBit, then an AND tree",
    dims=_pair_dims,
    example=_pair_example,
    vars_doc="n = elements of the broadcast difference",
)
def eq(x, y) -> SharedTensor:
    """[x == y] (boolean bit); either operand may be public.

    Steps:
      1. d = x - y (local). 2. b = eqz(d) (``protocols.eqz``).
    Rounds: 1 + log2 K. Comm: one eqz per element of d: (N-1) n (K + 2(K-1)) bits per party.
    Offline: n (2K - 1) bits. Leaks: nothing beyond the output.
    Ref: as ``eqz`` (masked opening with edaBits, Escudero et al. 2020, and an AND tree).
    """
    return call("eqz", _diff(x, y))


def select_dims(b, y) -> dict:
    """nb = bits, ny = elements of y, n = output elements (every scheme's bit_select)."""
    return {"nb": b.size, "ny": y.size, "n": _numel(np.broadcast_shapes(b.shape, y.shape))}


def check_select_operands(b, y):
    """Validate a selection's operands (a boolean-shared bit, an arithmetic sharing) and lift both to the
    broadcast rank: (b, y, output shape). Every scheme's bit_select starts here."""
    if not isinstance(b, SharedTensor):
        raise TypeError(f"select takes a secret bit, got a public {type(b).__name__}; a public 0/1 bit c selects "
                        "locally: y * c, with c an integer array")
    if not isinstance(y, SharedTensor):
        raise TypeError(f"select multiplies a SharedTensor, got a public {type(y).__name__}; share it with "
                        "session.input first")
    if b.kind != "B":
        raise TypeError("select takes a boolean-shared bit; use where() for an arithmetic condition")
    if y.kind != "A":
        raise TypeError("select multiplies an arithmetic sharing; convert a boolean one with protocols.b2a")
    shape = tuple(np.broadcast_shapes(b.shape, y.shape))
    nd = len(shape)
    b = b if b.ndim == nd else b.reshape((1,) * (nd - b.ndim) + b.shape)
    y = y if y.ndim == nd else y.reshape((1,) * (nd - y.ndim) + y.shape)
    return b, y, shape


@protocol(
    "bit_select",
    kinds={"b": "B"},
    rounds="1",
    comm="(N-1)*(nb + K*ny)",
    offline="K*(nb + n)",
    ref="daBit-Beaver product of a boolean bit and a ring element (cf. protocol-notes; Escudero et al. 2020)",
    dims=select_dims,
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
    if isinstance(b, SharedTensor) and isinstance(y, SharedTensor) and b.ndim == 0 and y.ndim == 0:
        # keep public arrays from collapsing to numpy scalars
        return select.__wrapped__(b.reshape(1), y.reshape(1)).reshape(())
    b, y, shape = check_select_operands(b, y)
    session = b.session
    r_arith, r_bool, a, ra = session.dealer.bit_select_triple(b.shape, y.shape)
    bit = boolean.and_public(b, 1)
    masked_bit = xor(bit, _bool(session, r_bool, b.shape, 0, 1))
    masked_bit.width = 1
    masked_y = y._like(None if y.payload is None else session.backend.map(lambda u, v: u - v, y.payload, a),
                       y.shape, frac=0)
    (c, e), depth = session._open("open", [masked_bit, masked_y])
    session._work("select_combine", elems=6 * int(math.prod(shape)))
    if c is None:
        return SharedTensor(session, None, shape, y.frac, depth)
    ring = session.ring
    c = np.bitwise_and(c, np.uint64(1))
    backend = session.backend
    ry = backend.map(lambda r, t: r * e + t, r_arith, ra)  # e [r] + [r a]
    coef = ring.reduce(np.asarray(np.uint64(1) - np.uint64(2) * c, dtype=np.uint64))
    z = backend.map(lambda u, v: u * c + v * coef, y.payload, ry)
    return SharedTensor(session, z, shape, y.frac, depth)


def _where_dims(cond, a, b):
    nd = _numel(np.broadcast_shapes(_shape(a), _shape(b)))
    out = _numel(np.broadcast_shapes(cond.shape, _shape(a), _shape(b)))
    return {"nc": cond.size, "nd": nd, "n": out, "bc": int(cond.kind == "B")}


def _where_example(s):
    (a, b), _ = _pair_example(s)
    return (lt(a, b), a, b), {}


@protocol(
    "where",
    kinds={"cond": "AB"},
    scheme=BOTH,
    cost=lambda d: (d.bit_select.at(nb="nc", ny="nd") * Expr("bc")
                    + d.ring_mul.at(nx="nc", ny="nd") * Expr("1 - bc")),
    ref="bit_select (daBit-Beaver, Rotaru-Wood 2019) or a Beaver product (Beaver 1991) on a - b",
    dims=_where_dims,
    example=_where_example,
    vars_doc="nc = condition elements; nd = elements of a - b; n = output elements; bc = 1 for a boolean "
             "condition, 0 for an arithmetic 0/1",
)
def where(cond: SharedTensor, a, b) -> SharedTensor:
    """cond ? a : b, for a boolean bit (``bit_select``) or an arithmetic 0/1 (a Beaver product).

    Steps:
      1. d = a - b (local; either branch may be public, not both).
      2. boolean cond: t = bit_select(cond, d); arithmetic cond (integer-encoded 0/1): t = beaver_mul(cond, d).
      3. out = b + t (local).
    Rounds: 1. Comm: boolean (N-1)(|cond| + K |d|), arithmetic K (N-1)(|cond| + |d|) bits per party.
    Offline: K (|out| + |cond|) boolean, K |out| arithmetic.
    Leaks: nothing beyond the output.
    Ref: ``bit_select`` (the daBit trick of Rotaru-Wood 2019 fused with a Beaver product); Beaver, CRYPTO 1991.
    """
    if not isinstance(cond, SharedTensor):
        raise TypeError(f"where takes a secret condition, got a public {type(cond).__name__}; a public 0/1 "
                        "condition c selects locally: b + (a - b) * c, with c an integer array")
    if not isinstance(a, SharedTensor) and not isinstance(b, SharedTensor):
        raise TypeError("where needs a shared a or b (for two public branches, multiply the condition)")
    diff = _diff(a, b)
    base = b if isinstance(b, SharedTensor) else (diff * 0) + b
    if cond.kind == "B":
        return base + call("bit_select", cond, diff)
    if cond.frac != 0:
        raise ValueError("an arithmetic condition must be integer-encoded 0/1 (frac_bits=0)")
    return base + call("ring_mul", cond, diff)


@protocol(
    "sign",
    scheme=BOTH,
    cost=lambda d: d.msb + d.b2a_bit,
    ref="msb (edaBits, Escudero et al. 2020) and a daBit B2A (Rotaru-Wood 2019)",
    dims=lambda x: {"n": x.size},
    example=_unary_example,
    vars_doc="n = elements",
)
def sign(x: SharedTensor) -> SharedTensor:
    """1 - 2 [x < 0] as an integer-encoded arithmetic tensor (0 maps to +1).

    Steps:
      1. b = msb(x). 2. a = b2a_bit(b) (1 round). 3. out = 1 - 2a (local).
    Rounds: 2 + log2 K. Comm: (N-1) n (K + 2(2K - 2 - log2 K) + 1) bits per party.
    Offline: n (3K - 2 - log2 K + K) bits. Leaks: nothing beyond the output.
    Ref: ``msb`` then ``b2a_bit`` (daBits, Rotaru-Wood, INDOCRYPT 2019).
    """
    return 1 - 2 * call("b2a_bit", call("msb", x))


_SELECT_REF = "msb (edaBits, Escudero et al. 2020) then bit_select (daBit-Beaver, Rotaru-Wood 2019)"


@protocol(
    "abs",
    **_MSB_SELECT,
    ref=_SELECT_REF,
    dims=lambda x: {"n": x.size},
    example=_unary_example,
    vars_doc="n = elements",
)
def abs_(x: SharedTensor) -> SharedTensor:
    """|x| = x - 2 [x < 0] x (registered as "abs").

    Steps:
      1. b = msb(x). 2. t = bit_select(b, -2x) (1 round). 3. out = x + t (local).
    Rounds: 2 + log2 K. Comm: (N-1) n (K + 2(2K - 2 - log2 K) + 1 + K) bits per party.
    Offline: n (3K - 2 - log2 K + 2K) bits. Leaks: nothing beyond the output.
    Ref: ``msb`` then ``bit_select``.
    """
    return x + call("bit_select", call("msb", x), -2 * x)


@protocol(
    "relu",
    **_MSB_SELECT_NOT_FSS,
    ref=_SELECT_REF,
    dims=lambda x: {"n": x.size},
    example=_unary_example,
    vars_doc="n = elements",
)
def relu(x: SharedTensor) -> SharedTensor:
    """max(x, 0) = NOT[x < 0] * x.

    Steps:
      1. b = NOT msb(x) (NOT is local). 2. out = bit_select(b, x) (1 round).
    Rounds: 2 + log2 K. Comm: (N-1) n (K + 2(2K - 2 - log2 K) + 1 + K) bits per party.
    Offline: n (3K - 2 - log2 K + 2K) bits. Leaks: nothing beyond the output.
    Ref: ``msb`` then ``bit_select`` (as CrypTen/SPU ReLU, with a daBit selection).
    """
    return call("bit_select", not_(call("msb", x)), x)


@protocol(
    "maximum",
    **_MSB_SELECT_NOT_FSS,
    ref=_SELECT_REF,
    dims=_pair_dims,
    example=_pair_example,
    vars_doc="n = elements of the broadcast difference",
)
def maximum(x: SharedTensor, y) -> SharedTensor:
    """Elementwise max: y + [x > y] (x - y); either operand may be public.

    Steps:
      1. d = x - y (local). 2. b = msb(-d) = [x > y]. 3. out = y + bit_select(b, d) (1 round).
    Rounds: 2 + log2 K. Comm: (N-1) n (K + 2(2K - 2 - log2 K) + 1 + K) bits per party, n = |d|.
    Offline: n (3K - 2 - log2 K + 2K) bits. Leaks: nothing beyond the output (|x - y| < 2^(K-1-f)).
    Ref: ``msb`` then ``bit_select``.
    """
    d = _diff(x, y)
    base = y if isinstance(y, SharedTensor) else (d * 0) + y
    return base + call("bit_select", call("msb", -d), d)


@protocol(
    "minimum",
    **_MSB_SELECT_NOT_FSS,
    ref=_SELECT_REF,
    dims=_pair_dims,
    example=_pair_example,
    vars_doc="n = elements of the broadcast difference",
)
def minimum(x: SharedTensor, y) -> SharedTensor:
    """Elementwise min: y + [x < y] (x - y); either operand may be public.

    Steps:
      1. d = x - y (local). 2. b = msb(d) = [x < y]. 3. out = y + bit_select(b, d) (1 round).
    Rounds: 2 + log2 K. Comm: as ``maximum`` (offline too). Leaks: nothing beyond the output.
    Ref: ``msb`` then ``bit_select``.
    """
    d = _diff(x, y)
    base = y if isinstance(y, SharedTensor) else (d * 0) + y
    return base + call("bit_select", call("msb", d), d)
