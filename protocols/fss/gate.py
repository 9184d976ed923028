"""The FSS spline gate: one masked opening, one DCF key evaluated at every knot, and every piece's terms.

For public knots t_1 < ... < t_J the gate gives each party, locally after opening c = x + r, arithmetic
shares of g_j = [x >= t_j] and of g_j x for every j. The dealer's key (``FssKeys.gate_key``) is a DCF for
w(y) = 1{y < r mod 2^(K-1)} on K - 1 bits with the vector payload (1 - 2 r_(K-1), (1 - 2 r_(K-1)) r):

* (c - t_j) is x - t_j masked by r, so with T_j = the top bit of c - t_j and w_j = w((c - t_j) mod 2^(K-1))
  (the borrow into bit K - 1), msb(x - t_j) = T_j xor r_(K-1) xor w_j = T_j + (1 - 2 T_j) u_j with
  u_j = r_(K-1) xor w_j = r_(K-1) + w_j (1 - 2 r_(K-1)): the key's first output plus a share of r_(K-1);
* u_j r = r_(K-1) r + w_j (1 - 2 r_(K-1)) r: its second output plus a share of r_(K-1) r;
* g_j = 1 - msb(x - t_j), and g_j x = g_j (c - r) = c g_j - (r - T_j r - (1 - 2 T_j) u_j r).

Evaluating one key at many points is local and shows nothing more (each party computes on its own key and
public values). A spline is then linear: sum_j (db_j g_j + ds_j g_j x) with public jumps of the pieces'
intercepts and slopes, i.e. the chosen piece's b + s x, in 1 round and no product: the Sigma / LLAMA spline
gates (Gupta et al., PETS 2024, eprint 2023/1269; eprint 2022/793) with one comparison key for all knots,
as in the interval-containment gate of Boyle et al. (Eurocrypt 2021, eprint 2020/1392).
Domain: every x - t_j must lie in [-2^(K-1), 2^(K-1)) (ring units).
"""
from __future__ import annotations

import numpy as np

from mpsim.fss import eval_party
from mpsim.tensor import SharedTensor

from ..cost import Formula
from .compare import open_masked

REF = ("spline gate by one DCF key with vector payload at every knot (cf. Sigma, Gupta et al., PETS 2024, "
       "eprint 2023/1269; Boyle et al., Eurocrypt 2021, eprint 2020/1392)")


def gate_cost(n: str = "n") -> Formula:
    """The gate on n elements: the opening (K bits per element), the key (a DCF with a 2-element payload on
    K - 1 bits) to each party, the corrections of r_(K-1) and r_(K-1) r (2K bits) to party 0."""
    return Formula.of("1", "K*(N-1)*n", "2*K*n", shipped="n*(128 + (K - 1)*(2*K + 130) + 2*K)").at(n=n)


def gate_terms(x, knots: np.ndarray):
    """(g, gx, depth): payloads of shape (rows, *x.shape, J) holding shares of [x >= t_j] and of [x >= t_j] x
    for the ring-encoded knots t (J,), or (None, None, depth) under count."""
    session = x.session
    ring, K = session.ring, session.ring.bits
    knots = np.asarray(knots, dtype=np.uint64).reshape(1, -1)
    r, r_top, r_top_r, keys = session.keys.gate_key(x.shape)
    c, depth = open_masked(x, r)
    session._work("dcf_eval", elems=2 * (K - 1) * x.size * knots.size)
    if c is None:
        return None, None, depth
    c = np.asarray(c, dtype=np.uint64).reshape(-1, 1)
    shifted = ring.reduce(c - knots)  # (x - t_j) + r, public
    top = np.right_shift(shifted, np.uint64(K - 1))
    out = tuple(x.shape) + (knots.shape[1],)
    if keys is None:  # ideal: r = 0, so c = x and the terms are the functions themselves
        g = ring.reduce(np.uint64(1) - top)
        return g.reshape((1,) + out), ring.reduce(c * g).reshape((1,) + out), depth
    low = np.bitwise_and(shifted, np.uint64((1 << (K - 1)) - 1))
    coef = ring.reduce(np.uint64(1) - np.uint64(2) * top)
    gs, gxs = [], []
    for party in (0, 1):
        q = eval_party(keys, party, low)  # (elements, J, 2)
        mine = lambda a: np.asarray(a[party], dtype=np.uint64).reshape(-1, 1)  # noqa: E731
        u = ring.reduce(mine(r_top) + q[..., 0])
        ur = ring.reduce(mine(r_top_r) + q[..., 1])
        one = np.uint64(1 if party == 0 else 0)
        msb = ring.reduce(coef * u + top * one)
        g = ring.reduce(one - msb)
        gr = ring.reduce(mine(r) - top * mine(r) - coef * ur)  # g_j r
        gs.append(g.reshape(out))
        gxs.append(ring.reduce(c * g - gr).reshape(out))
    return np.stack(gs), np.stack(gxs), depth


def spline_raw(x, knots, slope_jumps, intercept_jumps, F: int):
    """The pieces' b + s x at scale f + F, untruncated (one gate): knots at x's scale, slope jumps at scale F
    and intercept jumps at scale f + F (Python integers; ring-encoded here)."""
    session = x.session
    ring = session.ring
    g, gx, depth = gate_terms(x, ring.from_ints(list(knots)))
    payload = None
    if g is not None:
        ds, db = ring.from_ints(list(slope_jumps)), ring.from_ints(list(intercept_jumps))
        payload = ring.reduce(np.sum(ring.reduce(g * db), axis=-1, dtype=np.uint64)
                              + np.sum(ring.reduce(gx * ds), axis=-1, dtype=np.uint64))
    return SharedTensor(session, payload, x.shape, x.frac + F, depth)


def gate_at_zero(d):
    """(g, g d) for g = [d >= 0], as tensors (g integer, g d at d's scale): the one-knot gate's two terms
    (ReLU is g d; the argmax tournament also needs g)."""
    g, gd, depth = gate_terms(d, np.zeros(1, dtype=np.uint64))
    first = (lambda t: None if t is None else t[..., 0])  # noqa: E731
    return (SharedTensor(d.session, first(g), d.shape, 0, depth),
            SharedTensor(d.session, first(gd), d.shape, d.frac, depth))
