"""Fixed-point products: a ring protocol followed by a truncation.

Written once over the session's scheme: the ring products are its ``ring_mul``, ``ring_square`` and
``ring_matmul`` protocols (additive: Beaver's; ABY3: replicated), the truncation its own. A product of
scales f1 and f2 sits at scale f1 + f2; it is truncated by min(f1, f2), so fixed point times
fixed point stays at f, and an integer-encoded operand (scale 0) never costs a truncation. Costs are the
sums of the parts (ring protocol + ``truncate``), which the tests check.
"""
from __future__ import annotations

import math
import numpy as np

from mpsim import kernels
from mpsim.tensor import SharedTensor, is_integer_public

from .arith import matmul_shapes
from .registry import call


class FixedPointProducts:
    """The fixed-point products every scheme of this package exposes to the engine (``mpsim.scheme.Scheme``):
    written once here over the scheme's ring products and truncation."""

    def mul(self, x, y):
        return mul(x, y)

    def mul_public(self, x, value):
        return mul_public(x, value)

    def matmul(self, x, y):
        return matmul(x, y)

    def matmul_public(self, x, value, public_on_left):
        return matmul_public(x, value, public_on_left=public_on_left)


def truncate(x: SharedTensor, shift: int) -> SharedTensor:
    """The session's scheme's truncation (additive: ``protocols.trunc.truncate``)."""
    return x.session.scheme.truncate(x, shift)


def mul(x: SharedTensor, y: SharedTensor, inspect=None) -> SharedTensor:
    """x * y for shared tensors; ``x * x`` on one tensor uses the (cheaper) square protocol. A scheme that
    fuses the truncation into the product (ABY3's ``rep_mul_trunc``) runs the fused protocol. ``inspect``
    sees the raw product before its truncation (debug checks that read values; nothing is sent)."""
    shift = min(x.frac, y.frac)
    fused = x.session.scheme.fused_product.get(x.session.trunc)
    if fused is not None and shift:
        return call(fused["mul"], x, y, shift, inspect=inspect)
    z = call("ring_square", x) if x is y else call("ring_mul", x, y)
    if inspect is not None:
        inspect(z)
    return truncate(z, shift)


def matmul(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    shift = min(x.frac, y.frac)
    fused = x.session.scheme.fused_product.get(x.session.trunc)
    if fused is not None and shift:
        return call(fused["matmul"], x, y, shift)
    return truncate(call("ring_matmul", x, y), shift)


def matmul_reused(x: SharedTensor, operand) -> SharedTensor:
    from .reuse import matmul_reused as ring_matmul_reused

    return truncate(ring_matmul_reused(x, operand), min(x.frac, operand.frac))


def mul_public(x: SharedTensor, value: np.ndarray) -> SharedTensor:
    """x times a public real array: local product at scale x.frac + f, then a truncation by min(x.frac, f)
    (none for an integer-encoded x, whose product is then a fixed-point real, as in numpy int * float)."""
    session = x.session
    f = session.frac_bits
    public = session.ring.encode(value, f)
    shape = x._broadcast_shape(public.shape)
    payload = session.backend.map(lambda p: kernels.ring_mul(p, public), x._payload_nd(len(shape)))
    return truncate(SharedTensor(session, payload, shape, x.frac + f, x.depth, calls=x.calls), min(x.frac, f))


def matmul_public(x: SharedTensor, value: np.ndarray, public_on_left: bool) -> SharedTensor:
    """x @ W or W @ x with W public: local per-share products; reals need one truncation by f."""
    session = x.session
    if value.ndim == 0 or x.ndim == 0:
        raise ValueError("matmul does not take 0-d operands; use *")
    integer = is_integer_public(value)
    f = 0 if integer else session.frac_bits
    public = session.ring.from_ints(value) if integer else session.ring.encode(value, f)
    squeeze = []
    left, right = (public, x) if public_on_left else (x, public)
    lshape = left.shape if len(left.shape) >= 2 else (1,) + tuple(left.shape)
    rshape = right.shape if len(right.shape) >= 2 else tuple(right.shape) + (1,)
    if len(left.shape) == 1:
        squeeze.append(-2)
    if len(right.shape) == 1:
        squeeze.append(-1)
    shape = matmul_shapes(lshape, rshape)
    session._work("local_matmul", macs=int(math.prod(shape)) * lshape[-1])
    payload = None
    if session.backend.has_data:
        xs = x.payload.reshape((x.payload.shape[0],) + (lshape if not public_on_left else rshape))
        pub = public.reshape(rshape if not public_on_left else lshape)
        rows = [kernels.ring_matmul(pub, row) if public_on_left else kernels.ring_matmul(row, pub) for row in xs]
        payload = session.ring.reduce(np.ascontiguousarray(np.stack(rows)))
    out = SharedTensor(session, payload, shape, x.frac + f, x.depth, calls=x.calls)
    if squeeze:
        out = out.squeeze(tuple(squeeze))
    return truncate(out, min(x.frac, f))
