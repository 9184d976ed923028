"""ABY3 arithmetic: input, reveal, products and matrix products with one reshare, share truncation.

Party i holds components i and i + 1 of x = x_0 + x_1 + x_2 (indices mod 3); the payload's rows are the
components. Products follow numpy broadcasting, matrix products numpy matmul; scales add as in
``protocols.arith`` (``protocols.fxp`` truncates).
"""
from __future__ import annotations

import numpy as np

from mpsim import kernels
from mpsim.session import Unrevealed
from mpsim.tensor import SharedTensor, _numel

from ..arith import _lift, _matmul_dims, _mul_dims, _rng_values, encode_input, matmul_shapes, promote_matmul
from ..registry import declare_offline_per_party, declare_role, declare_truncation, protocol
from ..registry import CELLS
from ..trunc import _example_trunc, check_shift

_TRUNC_PR = CELLS[("additive", "trunc_pr")]
from .prf import only_row

PARTIES = 3
ABY3_REF = "Mohassel-Rindal, ABY3, CCS 2018"


def _parents(*tensors) -> list[int]:
    return [c for t in tensors if t.depth > 0 for c in t.calls]


def reshare(session, op: str, payload, shape, depth_in: int, parents, kind: str = "A", width=None) -> int:
    """Party i sends its new component z_i to party i - 1, so every party again holds two (one call).

    ``width`` bits per element (default K; a boolean AND sends only the bits it needs). Returns the depth.
    """
    bits = (session.ring.bits if width is None else width) * _numel(shape)
    sends = [(i, (i - 1) % PARTIES, bits) for i in range(PARTIES)]
    return session.channel.exchange(op, sends, depth_in, parents, contents=payload, kind=kind,
                                   reconstructs=False)


def send_component(session, op: str, src: int, dst: int, payload, shape, depth_in: int, parents,
                   kind: str = "A", width=None) -> int:
    """One party sends one component to the one party that lacks it (an input, a truncation)."""
    bits = (session.ring.bits if width is None else width) * _numel(shape)
    return session.channel.exchange(op, [(src, dst, bits)], depth_in, parents, contents=payload, kind=kind,
                                   reconstructs=False)


def _components(session, value, owner: int, shape, xor: bool = False):
    """The payload of a fresh replicated sharing of ``value`` (known to ``owner``): component owner+1 from
    the key the owner shares with party owner+1, component owner+2 from the common key, component owner the
    correction (sent to party owner+2, the one other holder). Also returns the correction's row alone."""
    backend = session.backend
    if not backend.has_data:
        return None, None
    if backend.rows == 1:
        return np.asarray(value, dtype=np.uint64)[None].copy(), None
    mask_next = session.keys.pair_mask(shape)
    mask_common = session.keys.common_mask(shape)
    value = np.broadcast_to(np.asarray(value, dtype=np.uint64), shape)
    if xor:
        own = np.bitwise_xor(np.bitwise_xor(value, mask_next), mask_common)
    else:
        own = session.ring.reduce(kernels.ring_sub(kernels.ring_sub(value, mask_next), mask_common))
    out = np.empty((PARTIES,) + tuple(shape), dtype=np.uint64)
    out[owner], out[(owner + 1) % PARTIES], out[(owner + 2) % PARTIES] = own, mask_next, mask_common
    return out, only_row(own, owner)  # only the owner's row travels


def input_from(session, value, owner: int, shape, frac: int, depth_in: int = 0, parents=(), kind: str = "A",
               width=None, op: str = "input") -> SharedTensor:
    """Share ring values known to party ``owner`` alone (1 round; K bits per element from the owner)."""
    payload, sent = _components(session, value, owner, shape, xor=kind == "B")
    depth = send_component(session, op, owner, (owner + 2) % PARTIES, sent, shape, depth_in, parents, kind, width)
    return SharedTensor(session, payload, shape, frac, depth, kind=kind, width=width)


@protocol(
    "input",
    scheme="aby3",
    rounds="1",
    comm="K*n*int(p == owner)",
    offline="0",
    ref=f"replicated input sharing ({ABY3_REF}, Sec. 2.2)",
    dims=lambda session, values, owner=0, **kw: {"n": int(np.size(values)), "owner": owner},
    example=lambda s: ((s, np.linspace(-3, 3, 12).reshape(3, 4)), {"owner": s.parties - 1}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements; owner = the party holding the values",
)
def share_input(session, values, owner: int = 0, frac_bits: int | None = None) -> SharedTensor:
    """Secret-share an array held by party ``owner`` (o) as a replicated sharing.

    Steps:
      1. Component o + 1 from the key o shares with party o + 1, component o + 2 from the common key.
      2. Component o = x - (the two) mod 2^K; the owner sends it to party o + 2, its other holder.
    Rounds: 1. Comm: K n bits from the owner. Offline: 0.
    Leaks: nothing (party o + 1 sees two key outputs; party o + 2 sees component o, padded by component
    o + 1, which it lacks). Ref: ABY3 (Mohassel-Rindal, CCS 2018), Sec. 2.2. Encoding and its errors as
    ``protocols.arith.share_input``.
    """
    ring_values, shape, frac = encode_input(session, values, owner, frac_bits)
    return input_from(session, ring_values, int(owner), shape, frac)


def open_route(to):
    """Who sends to whom in an opening: party i lacks component i + 2, which party i + 1 holds."""
    receivers = range(PARTIES) if to is None else [int(to)]
    return [((i + 1) % PARTIES, i) for i in receivers]


def open_values(session, op: str, tensors, to=None, widths=None, simulate=None):
    """Open replicated sharings in one call (each receiver gets the one component it lacks)."""
    if to is not None and not (isinstance(to, (int, np.integer)) and 0 <= to < PARTIES):
        raise ValueError(f"cannot open to party {to!r}: parties are 0..{PARTIES - 1}")
    # Party q sends component q + 1 (its second); the watchers see, per party, the row it sends.
    return session._open(op, tensors, widths=widths, route=open_route(to), rows=lambda p: np.roll(p, -1, axis=0),
                         simulate=simulate)


@protocol(
    "reveal",
    scheme="aby3",
    leaked={"open": "output"},
    rounds="1",
    comm="K*n*(1 if to is None else int(p == (to + 1) % 3))",
    offline="0",
    ref=f"opening of replicated shares ({ABY3_REF})",
    dims=lambda x, to=None: {"n": x.size, "to": to},
    example=lambda s: ((_rng_values(s, (4, 5)),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements; to = receiving party or None for all",
)
def reveal(x: SharedTensor, to: int | None = None):
    """Open a replicated sharing to every party, or to party ``to`` only.

    Steps:
      1. Party i + 1 sends component i + 2 to party i (the one component party i lacks).
    Rounds: 1. Comm: K n bits per party (to all), or K n bits from party to + 1 (to one).
    Leaks: the value, to its receivers. Ref: ABY3 (Mohassel-Rindal, CCS 2018).
    """
    session = x.session
    (value,), _ = open_values(session, "open", [x], to=to)
    if value is None:
        return Unrevealed(x.shape)
    if x.frac == 0:
        return session.ring.to_signed(value).reshape(x.shape)
    return session.ring.decode(value, x.frac).reshape(x.shape)


def _product(session, x, y, shape, product, macs: int, op: str = "reshare") -> tuple:
    """Local cross terms plus a zero sharing, then one reshare: (payload, depth)."""
    z = cross_shares(session, x.payload, y.payload, shape, product)
    session._work("replicated_cross", macs=macs, elems=4 * _numel(shape))
    depth = reshare(session, op, z, shape, max(x.depth, y.depth), _parents(x, y))
    return z, depth


@protocol(
    "rep_mul",
    scheme="aby3",
    rounds="1",
    comm="K*n",
    offline="0",
    ref=f"{ABY3_REF}, Sec. 2.2 (Araki et al., CCS 2016)",
    dims=_mul_dims,
    example=lambda s: ((_rng_values(s, (3, 4)), _rng_values(s, (3, 4))), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="nx, ny = operand elements; n = output elements",
)
def rep_mul(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Elementwise product of two replicated sharings (numpy broadcasting); output scale = x.frac + y.frac.

    Steps:
      1. Party i: z_i = x_i y_i + x_i y_(i+1) + x_(i+1) y_i + a_i, with a_i its zero share (``prf``).
      2. Party i sends z_i to party i - 1 (reshare): party i then holds (z_i, z_(i+1)).
    Rounds: 1. Comm: K |z| bits per party. Offline: 0 (no triple: the zero sharing comes from PRF keys).
    Leaks: nothing (z_i is padded by F(k_(i+1)), which its receiver lacks).
    Ref: ABY3 (Mohassel-Rindal, CCS 2018), Sec. 2.2; Araki, Furukawa, Lindell, Nof, Ohara, CCS 2016.
    """
    session = x.session
    shape = tuple(np.broadcast_shapes(x.shape, y.shape))
    x, y = _lift(x, len(shape)), _lift(y, len(shape))
    z, depth = _product(session, x, y, shape, kernels.ring_mul, 3 * _numel(shape))
    return SharedTensor(session, z, shape, x.frac + y.frac, depth)


@protocol(
    "rep_square",
    scheme="aby3",
    rounds="1",
    comm="K*n",
    offline="0",
    ref=f"{ABY3_REF}, Sec. 2.2",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((_rng_values(s, (5, 3)),), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements",
)
def rep_square(x: SharedTensor) -> SharedTensor:
    """Elementwise square; output scale = 2 x.frac. As ``rep_mul`` with y = x (no cheaper form: the cost is
    one reshared element per output either way).

    Rounds: 1. Comm: K n bits per party. Offline: 0. Leaks: nothing. Ref: ABY3, Sec. 2.2.
    """
    session = x.session
    z, depth = _product(session, x, x, x.shape, kernels.ring_mul, 3 * x.size)
    return SharedTensor(session, z, x.shape, 2 * x.frac, depth)


def _lead_batch(payload, ndim: int):
    """Insert batch axes after the party axis so both operands have ``ndim`` dimensions besides it."""
    if payload is None:
        return None
    missing = ndim - (payload.ndim - 1)
    return payload.reshape(payload.shape[:1] + (1,) * missing + payload.shape[1:])


def _matmul_operands(x: SharedTensor, y: SharedTensor):
    """(x, y promoted as numpy matmul does and lifted to one number of batch axes, output shape, the axes
    to squeeze afterwards)."""
    x2, y2, squeeze = promote_matmul(x, y)
    shape = matmul_shapes(x2.shape, y2.shape)
    nd = max(x2.ndim, y2.ndim)
    a = x2._like(_lead_batch(x2.payload, nd), (1,) * (nd - x2.ndim) + x2.shape)
    b = y2._like(_lead_batch(y2.payload, nd), (1,) * (nd - y2.ndim) + y2.shape)
    return a, b, shape, squeeze


@protocol(
    "rep_matmul",
    scheme="aby3",
    rounds="1",
    comm="K*n",
    offline="0",
    ref=f"{ABY3_REF}, Sec. 5.1 (matrix products reshare only the output)",
    dims=_matmul_dims,
    example=lambda s: ((_rng_values(s, (2, 3, 4)), _rng_values(s, (4, 5))), {}),
    parties=lambda n: n == PARTIES,
    vars_doc="nx, ny = operand elements; n = output elements",
)
def rep_matmul(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Matrix product of replicated sharings (numpy matmul semantics, batched over leading axes).

    Steps:
      1. Party i: Z_i = X_i Y_i + X_i Y_(i+1) + X_(i+1) Y_i + A_i (local matrix products, zero share A_i).
      2. Reshare Z: only the output travels, whatever the inner dimension.
    Rounds: 1. Comm: K |Z| bits per party: K mn for (m, k) @ (k, n). Offline: 0. Leaks: nothing.
    Ref: ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.1.
    """
    session = x.session
    a, b, shape, squeeze = _matmul_operands(x, y)
    z, depth = _product(session, a, b, shape, kernels.ring_matmul, 3 * _numel(shape) * a.shape[-1])
    out = SharedTensor(session, z, shape, x.frac + y.frac, depth)
    return out.squeeze(squeeze) if squeeze else out


@protocol(
    "trunc_rep",
    scheme="aby3",
    rounds="1",
    comm="K*n*int(p == 0)",
    offline="0",
    leaks="nothing; fails (error ~2^(K-d)) with probability ~2^(l+1-K) for abs(x) < 2^l",
    ref=f"{ABY3_REF}, Sec. 5.1.1 (share truncation, Pi_trunc1); Mohassel-Zhang, S&P 2017, Thm. 1",
    dims=lambda x, shift: {"n": x.size},
    example=_example_trunc,
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements",
)
def trunc_rep(x: SharedTensor, shift: int) -> SharedTensor:
    """ABY3 share truncation: x / 2^d as a 2-out-of-2 sharing truncated locally, then replicated again.

    Steps:
      1. Party 0 holds a = x_0 + x_1; parties 1 and 2 hold x_2; a + x_2 = x, and a is uniform.
      2. Party 0: y' = a >> d; parties 1 and 2: y_2 = -((-x_2) >> d) (SecureML's local truncation).
      3. Component 1 is a mask m from the key of parties 0 and 1; party 0 sends y_0 = y' - m to party 2.
    Rounds: 1. Comm: K n bits from party 0 (none from the others). Offline: 0.
    Correctness: as SecureML's, floor(x / 2^d) or one more, except with probability about 2^(l+1-K) for
    |x| < 2^l, when it is off by about 2^(K-d). Leaks: nothing (y_0 is padded by m, which party 2 lacks;
    y_2 is a function of party 2's own component).
    Ref: ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.1.1; Mohassel-Zhang, "SecureML", S&P 2017, Thm. 1.
    """
    session = x.session
    shift = check_shift(x, shift, session.ring.bits - 1, "trunc_rep")
    backend, ring = session.backend, session.ring
    session._work("trunc_rep", elems=3 * x.size)
    payload = sent = None
    if backend.has_data and backend.rows == 1:
        payload = backend.trunc_local(x.payload, shift)
    elif backend.has_data:
        high, low = _split_truncation(ring, x.payload, shift)
        mask = session.keys.pair_mask(x.shape)
        payload = np.stack([ring.reduce(kernels.ring_sub(high, mask)), mask, low])
        sent = only_row(payload[0], 0)
    depth = send_component(session, "trunc", 0, 2, sent, x.shape, x.depth, _parents(x))
    return SharedTensor(session, payload, x.shape, x.frac - shift, depth)


@protocol(
    "trunc_pr",
    scheme="aby3",
    rounds="1",
    comm="K*n",
    offline="2*K*K*n",
    leaks="nothing; requires abs(x) < 2^(K-2)",
    ref="Escudero et al., CRYPTO 2020 (eprint 2020/338), Sec. 5, with the pair made by the parties from daBits",
    dims=lambda x, shift: {"n": x.size},
    example=_example_trunc,
    parties=lambda n: n == PARTIES,
    vars_doc="n = elements; offline: bits party p receives",
)
def trunc_pr(x: SharedTensor, shift: int) -> SharedTensor:
    """Probabilistic truncation with MSB correction (``protocols.trunc.trunc_pr``'s steps), its pair made by
    the three parties: never off by more than one unit for |x| < 2^(K-2), where share truncation
    (``trunc_rep``) fails with probability about 2^(l+1-K).

    Steps:
      1. Offline: K daBits b_i (``correlations.trunc_pair``): r = sum 2^i b_i, r' = sum_(d<=i<K-1) 2^(i-d) b_i
         and r_(K-1) = b_(K-1), all arithmetic and linear in the bits.
      2. Open c = x + 2^(K-2) + r: each party receives the one component it lacks (K bits).
      3. y = (c mod 2^(K-1)) >> d - r' + (c_(K-1) xor r_(K-1)) 2^(K-1-d) - 2^(K-2-d) (local).
    Rounds: 1. Comm: K n bits per party. Offline: K daBits per element, 2K^2 n bits to each party.
    Leaks: nothing (c is padded by r, uniform and unknown to every party).
    Ref: Escudero, Ghosh, Keller, Rachuri, Scholl, CRYPTO 2020 (eprint 2020/338), Sec. 5; daBits
    (Rotaru-Wood, INDOCRYPT 2019).
    """
    return _TRUNC_PR.fn.__wrapped__(x, shift)


def truncate(x: SharedTensor, shift: int) -> SharedTensor:
    """Divide by 2^shift with ABY3's share truncation; the scale drops by ``shift``."""
    shift = check_shift(x, shift, x.session.ring.bits - 2, "truncate")
    return x if shift == 0 else trunc_rep(x, shift)


def cross_shares(session, x_payload, y_payload, shape, product):
    """A 3-out-of-3 sharing of the product: each party's local cross terms plus its zero share."""
    z = session.backend.replicated_cross(x_payload, y_payload, product)
    if z is None:
        return None
    return session.ring.reduce(kernels.ring_add(z, session.keys.zero_sharing(shape)))


def _split_truncation(ring, rows, shift: int):
    """SecureML's local truncation of the 2-out-of-2 sharing (rows_0 + rows_1, rows_2) of a value:
    (rows_0 + rows_1) >> d for party 0 and -((-rows_2) >> d) for the holders of rows_2."""
    high = np.right_shift(ring.reduce(kernels.ring_add(rows[0], rows[1])), np.uint64(shift))
    negated = ring.reduce(kernels.ring_sub(np.zeros_like(rows[2]), rows[2]))
    low = ring.reduce(kernels.ring_sub(np.zeros_like(negated), np.right_shift(negated, np.uint64(shift))))
    return high, low


def _product_truncated(session, x, y, shape, product, shift: int, macs: int, inspect=None) -> SharedTensor:
    """The fused product and truncation (``rep_mul_trunc``): (payload, depth) of the truncated product."""
    backend, ring, K = session.backend, session.ring, session.ring.bits
    z = cross_shares(session, x.payload, y.payload, shape, product)
    if inspect is not None:  # a debug check of the raw product (check_domain): reads values, sends nothing
        inspect(SharedTensor(session, z, shape, x.frac + y.frac, max(x.depth, y.depth)))
    session._work("replicated_cross", macs=macs, elems=6 * _numel(shape))
    bits = K * _numel(shape)
    first = sent = None
    if z is not None and backend.rows == 3:
        first = only_row(z[1], 1)
    depth = session.channel.exchange("mul_trunc", [(1, 0, bits)], max(x.depth, y.depth), _parents(x, y),
                                     contents=first, reconstructs=False)
    payload = None
    if z is not None and backend.rows == 1:
        payload = backend.trunc_local(z, shift)
    elif z is not None:
        high, low = _split_truncation(ring, z, shift)  # party 0 after receiving z_1, and party 2
        c1, c2 = session.keys.pair_mask(shape), session.keys.pair_mask(shape)
        to_two, to_zero = ring.reduce(kernels.ring_sub(high, c1)), ring.reduce(kernels.ring_sub(low, c2))
        payload = np.stack([ring.reduce(kernels.ring_add(to_two, to_zero)), c1, c2])
        sent = np.zeros_like(payload)
        sent[0], sent[2] = to_two, to_zero
    depth = session.channel.exchange("mul_trunc", [(0, 2, bits), (2, 0, bits)], depth,
                                     session.channel.frontier(depth), contents=sent, reconstructs=False)
    return SharedTensor(session, payload, shape, x.frac + y.frac - shift, depth)


_TRUNC_STEPS = """    Steps:
      1. Party i: z_i = x_i y_i + x_i y_(i+1) + x_(i+1) y_i + a_i (a 3-out-of-3 sharing of the product).
      2. Party 1 sends z_1 to party 0: party 0 holds a = z_0 + z_1 (uniform), party 2 holds z_2.
      3. SecureML's local truncation of the 2-out-of-2 sharing (a, z_2): a' = a >> d, b' = -((-z_2) >> d).
      4. Components 1 and 2 are masks m_1 (keys of parties 0, 1) and m_2 (parties 1, 2); in one call party 0
         sends a' - m_1 to party 2 and party 2 sends b' - m_2 to party 0; both form component 0.
    Rounds: 2. Comm: K n bits per party (one element each; party 1 in the first round), the same bits as
    the product alone: the truncation costs one round and no bits. Offline: 0.
    Correctness: as SecureML's (floor(z / 2^d) or one more, failure probability about 2^(l+1-K) for
    |z| < 2^l). Leaks: nothing (z_1 is padded by F(k_2), which party 0 lacks; a' - m_1 and b' - m_2 by the
    masks their receivers lack).
    Ref: ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.1.1 (truncation fused with the multiplication);
    Mohassel-Zhang, "SecureML", S&P 2017, Thm. 1."""


def _mul_trunc_example(s):
    return (_rng_values(s, (3, 4)), _rng_values(s, (3, 4)), s.frac_bits), {}


# The fused product's declaration: two rounds, one element per output per party.
_FUSED = dict(scheme="aby3", rounds="2", comm="K*n", offline="0", ref=f"{ABY3_REF}, Sec. 5.1.1",
              parties=lambda n: n == PARTIES, vars_doc="nx, ny = operand elements; n = output elements",
              leaks="nothing; fails (error ~2^(K-d)) with probability ~2^(l+1-K) for abs(product) < 2^l")


@protocol("rep_mul_trunc", dims=lambda x, y, shift: _mul_dims(x, y), example=_mul_trunc_example, **_FUSED)
def rep_mul_trunc(x: SharedTensor, y: SharedTensor, shift: int, inspect=None) -> SharedTensor:
    """Elementwise product truncated by 2^shift in one protocol (``x * y`` of fixed-point tensors); a square
    when x is y (the same cost)."""
    session = x.session
    shape = tuple(np.broadcast_shapes(x.shape, y.shape))
    x, y = (_lift(x, len(shape)), _lift(y, len(shape))) if x is not y else (x, x)
    shift = check_shift(x._like(None, shape, frac=x.frac + y.frac), shift, session.ring.bits - 1, "rep_mul_trunc")
    return _product_truncated(session, x, y, shape, kernels.ring_mul, shift, 3 * _numel(shape), inspect)


rep_mul_trunc.__doc__ += "\n\n" + _TRUNC_STEPS


def _matmul_trunc_example(s):
    return (_rng_values(s, (2, 3, 4)), _rng_values(s, (4, 5)), s.frac_bits), {}


@protocol("rep_matmul_trunc", dims=lambda x, y, shift: _matmul_dims(x, y), example=_matmul_trunc_example, **_FUSED)
def rep_matmul_trunc(x: SharedTensor, y: SharedTensor, shift: int, inspect=None) -> SharedTensor:
    """Matrix product truncated by 2^shift in one protocol (``x @ y`` of fixed-point tensors): only the
    output travels, once."""
    session = x.session
    a, b, shape, squeeze = _matmul_operands(x, y)
    shift = check_shift(x._like(None, shape, frac=x.frac + y.frac), shift, session.ring.bits - 1, "rep_matmul_trunc")
    out = _product_truncated(session, a, b, shape, kernels.ring_matmul, shift,
                             3 * _numel(shape) * a.shape[-1], inspect)
    return out.squeeze(squeeze) if squeeze else out


rep_matmul_trunc.__doc__ += "\n\n" + _TRUNC_STEPS


# TR, TC, TO of one truncation per element, for composite formulas; truncating a product's output adds one
# round and no bits (``rep_mul_trunc``).
declare_offline_per_party("aby3")  # offline formulas: bits party p receives from the others
declare_truncation("aby3", "local", "1", "K*int(p == 0)", "0", after_product=("1", "0", "0"))
declare_truncation("aby3", "pair", "1", "K", "2*K*K")
declare_role("aby3", "ring_mul", "rep_mul")
declare_role("aby3", "ring_square", "rep_square")
declare_role("aby3", "ring_matmul", "rep_matmul")
