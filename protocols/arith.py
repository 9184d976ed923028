"""Ring-level arithmetic protocols: input, reveal, Beaver multiplication, squaring and matrix products.

These know nothing of fixed point: a product of tensors at scales f1 and f2 comes out at scale f1 + f2, and
``protocols.fxp`` truncates. Shapes follow numpy broadcasting (elementwise) and numpy ``matmul`` rules.
"""
from __future__ import annotations

import math
import numpy as np

from mpsim.session import Unrevealed, check_frac_bits
from mpsim.tensor import SharedTensor, _numel

from .registry import declare_role, protocol


def _rng_values(session, shape, scale=2.0):
    rng = np.random.default_rng(0)
    return session.input(rng.uniform(-scale, scale, size=shape), owner=0)


@protocol(
    "input",
    rounds="0",
    comm="0",
    offline="0",
    ref="PRZS-style input sharing (Cramer-Damgard-Ishai, TCC 2005; CrypTen's default)",
    dims=lambda session, values, **kw: {"n": int(np.size(values))},
    example=lambda s: ((s, np.linspace(-3, 3, 12).reshape(3, 4)), {"owner": s.parties - 1}),
    vars_doc="n = elements",
)
def share_input(session, values, owner: int = 0, frac_bits: int | None = None) -> SharedTensor:
    """Secret-share an array held by party ``owner``.

    Steps:
      1. At setup each pair of parties agreed a PRG seed (a one-off, not charged).
      2. Every party derives a share of zero from its pairwise seeds (pseudo-random zero sharing).
      3. The owner adds its encoded value to its zero share.
    Rounds: 0. Comm: 0 bits. Offline: 0 bits.
    Leaks: nothing (every share, and any N - 1 of them, is uniformly random).
    Ref: pseudo-random secret sharing of zero, Cramer-Damgard-Ishai (TCC 2005); CrypTen ``_from_przs``.

    Real-valued input is encoded at ``frac_bits`` (default: the session's; like the session's, an integer f >= 0
    with 2f <= K - 2); pass ``frac_bits=0`` for exact integers (indices, counts). Encoding raises ``ValueError``
    for NaN, inf or out-of-range values, and complex values raise ``TypeError`` (under the count backend values
    are not encoded at all: only their shape is kept).
    """
    ring_values, shape, frac = encode_input(session, values, owner, frac_bits)
    payload = session.backend.split(ring_values, owner=int(owner))
    return SharedTensor(session, payload, shape, frac, depth=0)


def encode_input(session, values, owner, frac_bits):
    """Validate an input and encode it in the ring: (ring values or None under count, shape, scale). Every
    scheme's input protocol starts here, so every scheme refuses bad input with the same errors."""
    if isinstance(owner, bool) or not isinstance(owner, (int, np.integer)) or not 0 <= owner < session.parties:
        raise ValueError(f"owner must be a party index in 0..{session.parties - 1}, got {owner!r}")
    frac = session.frac_bits if frac_bits is None else check_frac_bits(frac_bits, session.ring.bits)
    if isinstance(values, SharedTensor):
        raise TypeError("values are already secret-shared")
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"input expects a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"input expects real values, got dtype {array.dtype}: the ring holds no imaginary part")
    if frac == 0 and not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        if session.backend.has_data and np.any(np.asarray(array, dtype=np.float64) % 1 != 0):
            raise ValueError("frac_bits=0 shares integers, but the values have fractional parts")
    if not session.backend.has_data:
        ring_values = None  # the count backend holds no data: only the shape is kept
    elif frac == 0 and np.issubdtype(array.dtype, np.integer):
        ring_values = session.ring.from_ints(array)
    else:
        ring_values = session.ring.encode(array, frac)
    return ring_values, array.shape, frac


@protocol(
    "reveal",
    leaked={"open": "output"},
    rounds="1",
    comm="K*n*((N-1) if to is None else int(p != to))",
    offline="0",
    ref="opening of additive shares",
    dims=lambda x, to=None: {"n": x.size, "to": to},
    example=lambda s: ((_rng_values(s, (4, 5)),), {}),
    vars_doc="n = elements; to = receiving party or None for all",
)
def reveal(x: SharedTensor, to: int | None = None):
    """Open a shared tensor to every party, or to party ``to`` only.

    Steps:
      1. to=None: every party sends its share to every other party; each sums the N shares.
         to=i: every party other than i sends its share to i.
    Rounds: 1. Comm: K (N-1) n bits per party (all), or K n bits per party other than i (to one).
    Leaks: the value, to its receivers.
    Ref: opening of additive shares.
    """
    session = x.session
    (value,), _ = session._open("open", [x], to=to)
    if value is None:
        return Unrevealed(x.shape)
    if x.frac == 0:
        return session.ring.to_signed(value).reshape(x.shape)
    return session.ring.decode(value, x.frac).reshape(x.shape)


def _lift(x: SharedTensor, ndim: int) -> SharedTensor:
    """Prepend singleton axes (local) so that broadcasting aligns party axes correctly."""
    return x if x.ndim == ndim else x.reshape((1,) * (ndim - x.ndim) + x.shape)


def _mul_dims(x, y):
    out = np.broadcast_shapes(x.shape, y.shape)
    return {"nx": x.size, "ny": y.size, "n": _numel(out)}


@protocol(
    "beaver_mul",
    rounds="1",
    comm="K*(N-1)*(nx+ny)",
    offline="K*n",
    ref="Beaver, CRYPTO 1991",
    dims=_mul_dims,
    example=lambda s: ((_rng_values(s, (3, 4)), _rng_values(s, (3, 4))), {}),
    vars_doc="nx, ny = operand elements; n = output elements",
)
def beaver_mul(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Elementwise product of two shared tensors (numpy broadcasting); output scale = x.frac + y.frac.

    Steps:
      1. Dealer: a shaped like x, b shaped like y, c = a * b (broadcast).
      2. Open e = x - a and f = y - b in one call.
      3. z = c + e * b + f * a, and party 0 adds e * f.
    Rounds: 1. Comm: K (N-1) (|x| + |y|) bits per party, i.e. 2K(N-1) per element for equal shapes.
    Offline: K |z| bits. Leaks: nothing (e and f are one-time padded by a and b).
    Ref: Beaver, "Efficient multiparty protocols using circuit randomization", CRYPTO 1991.
    """
    session = x.session
    shape = tuple(np.broadcast_shapes(x.shape, y.shape))
    x, y = _lift(x, len(shape)), _lift(y, len(shape))
    a, b, c = session.dealer.beaver_triple(x.shape, y.shape)
    ta = SharedTensor(session, a, x.shape, 0)
    tb = SharedTensor(session, b, y.shape, 0)
    (e, f), depth = session._open("open", [_ring_sub(x, ta), _ring_sub(y, tb)])
    z = session.backend.beaver_combine(c, a, b, e, f)
    session._work("combine", elems=6 * int(math.prod(shape)))
    return SharedTensor(session, z, shape, x.frac + y.frac, depth)


@protocol(
    "beaver_square",
    rounds="1",
    comm="K*(N-1)*n",
    offline="K*n",
    ref="Beaver squaring pair (CrypTen `square`)",
    dims=lambda x: {"n": x.size},
    example=lambda s: ((_rng_values(s, (5, 3)),), {}),
    vars_doc="n = elements",
)
def beaver_square(x: SharedTensor) -> SharedTensor:
    """Elementwise square with a square pair; output scale = 2 x.frac.

    Steps:
      1. Dealer: a shaped like x and c = a^2.
      2. Open e = x - a.
      3. z = c + 2 e a + e^2 (party 0 adds e^2): the Beaver combine with b = a, f = e.
    Rounds: 1. Comm: K (N-1) n bits per party (half of a general product). Offline: K n bits.
    Leaks: nothing. Ref: Beaver 1991; the square pair of CrypTen's trusted-third-party provider.
    """
    session = x.session
    a, c = session.dealer.square_pair(x.shape)
    (e,), depth = session._open("open", [_ring_sub(x, SharedTensor(session, a, x.shape, 0))])
    z = session.backend.beaver_combine(c, a, a, e, e)
    session._work("combine", elems=6 * x.size)
    return SharedTensor(session, z, x.shape, 2 * x.frac, depth)


def matmul_shapes(sx, sy):
    """numpy matmul output shape for operands of at least 2 dimensions; clear error otherwise."""
    if len(sx) < 2 or len(sy) < 2:
        raise ValueError("matmul operands must be promoted to 2-D first")
    if sx[-1] != sy[-2]:
        raise ValueError(f"matmul shapes {tuple(sx)} and {tuple(sy)} do not align: {sx[-1]} != {sy[-2]}")
    try:
        batch = np.broadcast_shapes(tuple(sx[:-2]), tuple(sy[:-2]))
    except ValueError:
        raise ValueError(f"matmul batch shapes {tuple(sx[:-2])} and {tuple(sy[:-2])} cannot broadcast") from None
    return tuple(batch) + (sx[-2], sy[-1])


def promote_matmul(x, y):
    """Promote 1-D operands as numpy does; returns (x2, y2, squeeze) where squeeze fixes the output."""
    squeeze = []
    if x.ndim == 1:
        x = x.reshape(1, x.shape[0])
        squeeze.append(-2)
    if y.ndim == 1:
        y = y.reshape(y.shape[0], 1)
        squeeze.append(-1)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError("matmul does not take 0-d operands; use *")
    return x, y, tuple(squeeze)


def _matmul_dims(x, y):
    xs = x.shape if x.ndim >= 2 else (1,) + x.shape
    ys = y.shape if y.ndim >= 2 else y.shape + (1,)
    return {"nx": x.size, "ny": y.size, "n": _numel(matmul_shapes(xs, ys))}


@protocol(
    "beaver_matmul",
    rounds="1",
    comm="K*(N-1)*(nx+ny)",
    offline="K*n",
    ref="Beaver matrix triples (Mohassel-Zhang, SecureML, S&P 2017)",
    dims=_matmul_dims,
    example=lambda s: ((_rng_values(s, (2, 3, 4)), _rng_values(s, (4, 5))), {}),
    vars_doc="nx, ny = operand elements; n = output elements",
)
def beaver_matmul(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Matrix product of shared tensors (numpy matmul semantics, batched over leading axes).

    Steps:
      1. Dealer: A shaped like x, B shaped like y, C = A @ B.
      2. Open E = X - A and F = Y - B in one call.
      3. Z = C + E @ B + A @ F, and party 0 adds E @ F.
    Rounds: 1. Comm: K (N-1) (|X| + |Y|) bits per party: K(N-1)(mk + kn) for (m,k) @ (k,n).
    Offline: K |Z| bits. Leaks: nothing.
    Ref: matrix Beaver triples, Mohassel-Zhang, "SecureML", S&P 2017, Sec. 4.
    """
    session = x.session
    x2, y2, squeeze = promote_matmul(x, y)
    shape = matmul_shapes(x2.shape, y2.shape)
    a, b, c = session.dealer.matmul_triple(x2.shape, y2.shape, shape)
    ta = SharedTensor(session, a, x2.shape, 0)
    tb = SharedTensor(session, b, y2.shape, 0)
    (e, f), depth = session._open("open", [_ring_sub(x2, ta), _ring_sub(y2, tb)])
    z = session.backend.matmul_combine(c, a, b, e, f)
    session._work("combine", macs=3 * _numel(shape) * x2.shape[-1], elems=3 * _numel(shape))
    out = SharedTensor(session, z, shape, x.frac + y.frac, depth)
    return out.squeeze(squeeze) if squeeze else out


def _ring_sub(x: SharedTensor, mask: SharedTensor) -> SharedTensor:
    """x - mask as raw ring elements (scales ignored: the mask is a uniformly random ring element)."""
    if mask.payload is None:
        return SharedTensor(x.session, None, x.shape, 0, x.depth, calls=x.calls)
    from mpsim import kernels

    payload = x.session.backend.map(kernels.ring_sub, x.payload, mask.payload)
    return SharedTensor(x.session, payload, x.shape, 0, x.depth, calls=x.calls)


declare_role("additive", "ring_mul", "beaver_mul")
declare_role("additive", "ring_square", "beaver_square")
declare_role("additive", "ring_matmul", "beaver_matmul")
