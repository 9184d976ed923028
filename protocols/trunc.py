"""Truncation: dividing a shared value by 2^d after a fixed-point product.

Two protocols, selectable per session (``Session(trunc=...)``; see mpsim/session.py for the failure
analysis): SecureML local truncation for N = 2 and dealer-assisted probabilistic truncation with MSB
correction for any N. Both return a value within one unit (of the result's last place) of floor(x / 2^d).
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor

from .arith import _rng_values
from .registry import declare_truncation, protocol


def check_shift(x: SharedTensor, shift, top: int, name: str) -> int:
    """``shift`` as an int; ValueError unless an integer in [0, top] (the protocol's bound) and at most x's
    scale (the result, at scale x.frac - shift, cannot have a negative number of fractional bits)."""
    K = x.session.ring.bits
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or not 0 <= shift <= top:
        raise ValueError(f"{name}: the shift must be an integer in [0, {top}] for a {K}-bit ring, got {shift!r}")
    if shift > x.frac:
        raise ValueError(f"{name}: cannot shift a tensor at scale 2^{x.frac} by {shift} bits (the result's scale "
                         f"would be 2^{x.frac - shift}); the shift must be in [0, {min(top, x.frac)}]")
    return int(shift)


def truncate(x: SharedTensor, shift: int) -> SharedTensor:
    """Divide by 2^shift with the session's truncation protocol; the scale drops by ``shift``."""
    shift = check_shift(x, shift, x.session.ring.bits - 2, "truncate")
    if shift == 0:
        return x
    if x.session.trunc == "local":
        return trunc_local(x, shift)
    return trunc_pr(x, shift)


def _example_trunc(s):
    x = _rng_values(s, (4, 6))
    return (x, s.frac_bits or 1), {}


@protocol(
    "trunc_local",
    rounds="0",
    comm="0",
    offline="0",
    leaks="nothing; fails (error ~2^(K-d)) with probability ~2^(l+1-K) for abs(x) < 2^l",
    ref="Mohassel-Zhang, SecureML, S&P 2017, Thm. 1",
    dims=lambda x, shift: {"n": x.size},
    example=_example_trunc,
    parties=lambda n: n == 2,
    vars_doc="n = elements",
)
def trunc_local(x: SharedTensor, shift: int) -> SharedTensor:
    """SecureML share-wise truncation (two parties only); the shift d is an integer in [0, K - 1], at most x.frac.

    Steps:
      1. Party 0 computes x0 >> d; party 1 computes -((-x1) >> d), logical shifts of K-bit values.
    Rounds: 0. Comm: 0. Offline: 0.
    Correctness: for |x| < 2^l the result is floor(x / 2^d) or that plus one, except with probability
    about 2^(l+1-K), when it is off by about 2^(K-d) (Mohassel-Zhang, S&P 2017, Thm. 1).
    Leaks: nothing. Ref: Mohassel-Zhang, "SecureML", S&P 2017.
    """
    if x.session.parties != 2:
        raise ValueError("local truncation is only correct for two parties")
    shift = check_shift(x, shift, x.session.ring.bits - 1, "trunc_local")
    x.session._work("trunc_local", elems=2 * x.size)
    payload = x.session.backend.trunc_local(x.payload, shift)
    return SharedTensor(x.session, payload, x.shape, x.frac - shift, x.depth, calls=x.calls)


@protocol(
    "trunc_pr",
    rounds="1",
    comm="K*(N-1)*n",
    offline="2*K*n",
    leaks="nothing; requires abs(x) < 2^(K-2)",
    ref="Escudero et al., CRYPTO 2020 (eprint 2020/338), Sec. 5",
    dims=lambda x, shift: {"n": x.size},
    example=_example_trunc,
    vars_doc="n = elements",
)
def trunc_pr(x: SharedTensor, shift: int) -> SharedTensor:
    """Probabilistic truncation with MSB correction, any number of parties.

    Requires x in [-2^(K-2), 2^(K-2)) (signed) and an integer shift d in [0, K - 2], at most x.frac.
    Write x' = x + 2^(K-2), which lies in [0, 2^(K-1)).
    Steps:
      1. Dealer (the scheme's ``trunc_pair``): r uniform in Z_2^K; shares of r, of
         r' = (r mod 2^(K-1)) >> d and of r_{K-1} (top bit).
      2. Open c = x' + r (one call).
      3. Locally: c' = (c mod 2^(K-1)) >> d and c_{K-1}; v = c_{K-1} xor r_{K-1}
         = c_{K-1} + r_{K-1} - 2 c_{K-1} r_{K-1} (linear in the shares of r_{K-1}, c public).
      4. y = c' - r' + v 2^(K-1-d) - 2^(K-2-d).
    Why: x' + (r mod 2^(K-1)) < 2^K, so its top bit is v and its low K-1 bits are c mod 2^(K-1);
    hence x' = (c mod 2^(K-1)) - (r mod 2^(K-1)) + v 2^(K-1), and dividing the two low parts separately by
    2^d loses at most one borrow: y = floor(x / 2^d) or floor(x / 2^d) + 1, never a large error.
    Rounds: 1. Comm: K (N-1) n bits per party. Offline: 2K n bits (r' and r_{K-1}; r is seeded).
    Leaks: nothing (c is x' padded by a uniform r).
    Ref: Escudero, Ghosh, Keller, Rachuri, Scholl, "Improved primitives for MPC over mixed
    arithmetic-binary circuits", CRYPTO 2020 (eprint 2020/338), Sec. 5; SPU's ``TruncAPr``.
    """
    shift = check_shift(x, shift, x.session.ring.bits - 2, "trunc_pr")  # 2^(K-2-d) below needs d <= K - 2
    if x.ndim != 1:  # work on a flat view so public arrays never collapse to numpy scalars
        return trunc_pr.__wrapped__(x.reshape(-1), shift).reshape(x.shape)
    session = x.session
    ring = session.ring
    K = ring.bits
    r, r_low, r_top = session.scheme.trunc_pair(session, x.shape, shift)
    masked = SharedTensor(session, r, x.shape, 0, x.depth, calls=x.calls)
    shifted = x._like(x.payload, x.shape, frac=0) + ring.const(1 << (K - 2))  # public constant: party 0 adds
    opened = shifted._like(_add_payload(session, shifted.payload, masked.payload), x.shape)
    (c,), depth = session.scheme.open(session, "open", [opened])
    out_frac = x.frac - shift
    session._work("trunc_combine", elems=8 * x.size)
    if c is None:
        return SharedTensor(session, None, x.shape, out_frac, depth)
    low = np.bitwise_and(c, ring.const((1 << (K - 1)) - 1))
    c_shift = np.right_shift(low, np.uint64(shift))
    c_top = np.right_shift(c, np.uint64(K - 1))
    backend = session.backend
    # v = c_top + r_top * (1 - 2 c_top), with c_top added by party 0 only.
    coef = ring.reduce(np.uint64(1) - np.uint64(2) * c_top)
    v = backend.add_public(backend.map(lambda t: t * coef, r_top), c_top)
    scaled_v = backend.map(lambda t: t * ring.const(1 << (K - 1 - shift)), v)
    y = backend.map(lambda a, b: a - b, scaled_v, r_low)
    y = backend.add_public(y, ring.reduce(c_shift - ring.const(1 << (K - 2 - shift))))
    return SharedTensor(session, y, x.shape, out_frac, depth)


def _add_payload(session, a, b):
    if a is None:
        return None
    return session.backend.map(lambda u, v: u + v, a, b)


# The per-element cost terms TR, TC, TO of this scheme's truncation, for composite formulas (registry).
declare_truncation("additive", "local", "0", "0", "0")
declare_truncation("additive", "dealer", "1", "K*(N-1)", "2*K")
