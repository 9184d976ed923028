"""Function secret sharing: distributed point and comparison functions over Z_2^K (two parties).

A key pair for a function f lets party b compute y_b = Eval(b, k_b, x) from its key and a public x alone,
with y_0 + y_1 = f(x) mod 2^K; each key alone reveals nothing about f's secret parameters. Two families:

* DPF, f = beta 1{x == alpha} (Boyle, Gilboa, Ishai, "Function Secret Sharing: Improvements and
  Extensions", CCS 2016, Fig. 1): a GGM tree over the n input bits; at each level one seed correction and
  two control-bit corrections keep the two parties' seeds equal off the path to alpha and independent on
  it. Key: lambda + n (lambda + 2) + K bits.
* DCF, f = beta 1{x < alpha} (unsigned n-bit inputs; Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee,
  "Function Secret Sharing for Mixed-Mode and Fixed-Point Secure Computation", Eurocrypt 2021, eprint
  2020/1392, Fig. 3): the same tree with a value correction per level, so that the values collected on the
  way down sum to beta exactly when x leaves alpha's path to the left. Key: lambda + n (lambda + K + 2) + K
  bits.

The output may be a vector: beta in (Z_2^K)^d costs d K-bit value corrections per level (DCF) and d output
corrections, and one tree walk gives all d shares (the spline gates of ``protocols.fss`` use d = 2).

Key sizes are those of the real construction with an AES-128-based length-doubling PRG (lambda = 128).
The simulator evaluates its tree PRG with a SplitMix64-style mixing of the 128-bit seed: statistically
uniform, not cryptographic (as the session PRG, ``mpsim.prg``); the protocol logic, the correction words
and what each party computes from its own key are the construction's.

Keys are held as arrays, one key per element: ``seed`` (m, 2) uint64 per party, and the correction words
``scw`` (m, n, 2), ``tl``/``tr`` (m, n) uint8, ``vcw`` (m, n, d) uint64 (DCF only) and ``last`` (m, d)
uint64, which both parties' keys share. Bits of x and alpha are read from the most significant of the n down.
The numba kernels are private; the functions here validate their arguments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

LAMBDA = 128  # security parameter whose key sizes are declared


def dpf_key_bits(n: int, K: int, lam: int = LAMBDA, d: int = 1) -> int:
    """Bits of one DPF key over n input bits with output in (Z_2^K)^d: seed, n (seed + 2 control-bit)
    corrections, the output corrections."""
    return lam + n * (lam + 2) + d * K


def dcf_key_bits(n: int, K: int, lam: int = LAMBDA, d: int = 1) -> int:
    """Bits of one DCF key: as the DPF's, plus d K-bit value corrections per level."""
    return lam + n * (lam + d * K + 2) + d * K


@dataclass
class Keys:
    """Key pairs for m elements (see the module docstring); ``seed[b]`` is party b's own part."""

    kind: str  # "dpf" or "dcf"
    n: int
    K: int
    seed: np.ndarray  # (2, m, 2) uint64
    scw: np.ndarray  # (m, n, 2) uint64
    tl: np.ndarray  # (m, n) uint8
    tr: np.ndarray  # (m, n) uint8
    vcw: np.ndarray  # (m, n, d) uint64 (zeros for a DPF)
    last: np.ndarray  # (m, d) uint64
    vector: bool = False  # beta was given as (m, d): outputs carry a trailing axis of d

    @property
    def d(self) -> int:
        return self.last.shape[1]

    @property
    def key_bits(self) -> int:
        """Bits of one party's key for one element, as declared (lambda = 128)."""
        return (dcf_key_bits if self.kind == "dcf" else dpf_key_bits)(self.n, self.K, d=self.d)


# -- the tree PRG ---------------------------------------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _word(lo, hi, j):
    """Word j of the expansion of seed (lo, hi)."""
    return _mix(lo + np.uint64(j + 1) * np.uint64(0x9E3779B97F4A7C15) ^ _mix(hi ^ np.uint64(j)))


@numba.njit(cache=True, inline="always")
def _value_word(k, right):
    """The expansion word of output component k's value (left or right child): 4, 5 for k = 0, then from 8."""
    if k == 0:
        return 5 if right else 4
    return 8 + 3 * (k - 1) + (1 if right else 0)


@numba.njit(cache=True, inline="always")
def _convert(lo, hi, mask, k):
    """A seed to a uniform element of Z_2^K for output component k (words 7, then 10, 13, ...: never a tree
    or value word)."""
    return _word(lo, hi, 7 if k == 0 else 10 + 3 * (k - 1)) & mask


# -- key generation -------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _gen(alpha, beta, seeds, n, mask, comparison, scw, tl, tr, vcw, last):
    """Fill the correction words for every element (DPF or DCF); ``seeds`` (2, m, 2) are the roots and
    ``beta`` (m, d) the payloads."""
    m, d = beta.shape
    v_alpha = np.zeros(d, dtype=np.uint64)
    for e in range(m):
        s0l, s0h, s1l, s1h = seeds[0, e, 0], seeds[0, e, 1], seeds[1, e, 0], seeds[1, e, 1]
        t0, t1 = np.uint64(0), np.uint64(1)
        v_alpha[:] = 0
        for i in range(n):
            a = (alpha[e] >> np.uint64(n - 1 - i)) & np.uint64(1)
            # expansions: left seed words 0, 1; right 2, 3; control bits 6; values ``_value_word``
            w0 = (_word(s0l, s0h, 0), _word(s0l, s0h, 1), _word(s0l, s0h, 2), _word(s0l, s0h, 3))
            w1 = (_word(s1l, s1h, 0), _word(s1l, s1h, 1), _word(s1l, s1h, 2), _word(s1l, s1h, 3))
            c0, c1 = _word(s0l, s0h, 6), _word(s1l, s1h, 6)
            tl0, tr0 = c0 & np.uint64(1), (c0 >> np.uint64(1)) & np.uint64(1)
            tl1, tr1 = c1 & np.uint64(1), (c1 >> np.uint64(1)) & np.uint64(1)
            if a == 0:  # keep left, lose right
                cw_l, cw_h = w0[2] ^ w1[2], w0[3] ^ w1[3]
                keep0_l, keep0_h, keep1_l, keep1_h = w0[0], w0[1], w1[0], w1[1]
            else:
                cw_l, cw_h = w0[0] ^ w1[0], w0[1] ^ w1[1]
                keep0_l, keep0_h, keep1_l, keep1_h = w0[2], w0[3], w1[2], w1[3]
            t_lcw = tl0 ^ tl1 ^ a ^ np.uint64(1)
            t_rcw = tr0 ^ tr1 ^ a
            scw[e, i, 0], scw[e, i, 1] = cw_l, cw_h
            tl[e, i], tr[e, i] = np.uint8(t_lcw), np.uint8(t_rcw)
            if comparison:
                sign = mask if t1 else np.uint64(1)  # (-1)^t1 mod 2^K
                for k in range(d):
                    lose, keep = _value_word(k, a == 0), _value_word(k, a == 1)
                    vlose0, vlose1 = _word(s0l, s0h, lose) & mask, _word(s1l, s1h, lose) & mask
                    vkeep0, vkeep1 = _word(s0l, s0h, keep) & mask, _word(s1l, s1h, keep) & mask
                    v = (vlose1 - vlose0 - v_alpha[k]) * sign
                    if a == 1:  # lose = left: x going left here is below alpha
                        v = v + beta[e, k] * sign
                    v = v & mask
                    vcw[e, i, k] = v
                    v_alpha[k] = (v_alpha[k] - vkeep1 + vkeep0 + sign * v) & mask
            t_keep_cw = t_lcw if a == 0 else t_rcw
            tk0 = tl0 if a == 0 else tr0
            tk1 = tl1 if a == 0 else tr1
            if t0:
                keep0_l, keep0_h = keep0_l ^ cw_l, keep0_h ^ cw_h
            if t1:
                keep1_l, keep1_h = keep1_l ^ cw_l, keep1_h ^ cw_h
            nt0 = tk0 ^ (t0 & t_keep_cw)
            nt1 = tk1 ^ (t1 & t_keep_cw)
            s0l, s0h, s1l, s1h, t0, t1 = keep0_l, keep0_h, keep1_l, keep1_h, nt0, nt1
        sign = mask if t1 else np.uint64(1)
        for k in range(d):
            conv0, conv1 = _convert(s0l, s0h, mask, k), _convert(s1l, s1h, mask, k)
            if comparison:
                last[e, k] = ((conv1 - conv0 - v_alpha[k]) * sign) & mask
            else:
                last[e, k] = ((beta[e, k] - conv0 + conv1) * sign) & mask


@numba.njit(cache=True)
def _eval(party, seed, scw, tl, tr, vcw, last, x, n, mask, comparison, out):
    """Party ``party``'s output shares (elements, points, d) from its own seed, the correction words and
    public x of shape (elements, points): one key evaluated at each of its element's points."""
    m, points = x.shape
    d = last.shape[1]
    sign = mask if party else np.uint64(1)
    v = np.zeros(d, dtype=np.uint64)
    for idx in range(m * points):
        e, j = idx // points, idx % points
        sl, sh = seed[e, 0], seed[e, 1]
        t = np.uint64(party)
        v[:] = 0
        for i in range(n):
            right = (x[e, j] >> np.uint64(n - 1 - i)) & np.uint64(1)
            c = _word(sl, sh, 6)
            if right == 0:
                nl, nh, nt = _word(sl, sh, 0), _word(sl, sh, 1), c & np.uint64(1)
                tcw = np.uint64(tl[e, i])
            else:
                nl, nh, nt = _word(sl, sh, 2), _word(sl, sh, 3), (c >> np.uint64(1)) & np.uint64(1)
                tcw = np.uint64(tr[e, i])
            if comparison:
                for k in range(d):
                    val = _word(sl, sh, _value_word(k, right == 1)) & mask
                    v[k] = (v[k] + sign * (val + t * vcw[e, i, k])) & mask
            if t:
                nl, nh, nt = nl ^ scw[e, i, 0], nh ^ scw[e, i, 1], nt ^ tcw
            sl, sh, t = nl, nh, nt
        for k in range(d):
            out[e, j, k] = (v[k] + sign * (_convert(sl, sh, mask, k) + t * last[e, k])) & mask


# -- validating wrappers --------------------------------------------------------------------------------------
def _check(n: int, K: int) -> np.uint64:
    if not (isinstance(K, (int, np.integer)) and 1 <= K <= 64):
        raise ValueError(f"output ring bits K must be in [1, 64], got {K!r}")
    if not (isinstance(n, (int, np.integer)) and 1 <= n <= 64):
        raise ValueError(f"input bits n must be in [1, 64], got {n!r}")
    return np.uint64((1 << K) - 1) if K < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)


def _elements(values, n: int, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(values, dtype=np.uint64).reshape(-1))
    if n < 64 and arr.size and int(arr.max()) >> n:
        raise ValueError(f"{what} must be n = {n}-bit unsigned integers")
    return arr


def gen(kind: str, alpha, beta, n: int, K: int, rng: np.random.Generator) -> Keys:
    """Key pairs for beta 1{x == alpha} ("dpf") or beta 1{x < alpha} ("dcf"), one per element of alpha,
    with root seeds drawn from ``rng`` (the dealer's). beta is a scalar or one value per element (broadcast),
    or an (elements, d) array for a vector payload in (Z_2^K)^d."""
    if kind not in ("dpf", "dcf"):
        raise ValueError(f"kind must be 'dpf' or 'dcf', got {kind!r}")
    mask = _check(n, K)
    alpha = _elements(alpha, n, "alpha")
    m = alpha.size
    beta = np.asarray(beta, dtype=np.uint64)
    vector = beta.ndim == 2
    if vector and (beta.shape[0] != m or beta.shape[1] < 1):
        raise ValueError(f"a vector payload must have shape (elements, d) = ({m}, d >= 1), got {beta.shape}")
    if not vector:
        beta = np.broadcast_to(beta, alpha.shape).reshape(m, 1)
    beta = np.ascontiguousarray(beta) & mask
    d = beta.shape[1]
    seeds = rng.integers(0, 2**64, size=(2, m, 2), dtype=np.uint64)
    scw = np.zeros((m, n, 2), dtype=np.uint64)
    tl = np.zeros((m, n), dtype=np.uint8)
    tr = np.zeros((m, n), dtype=np.uint8)
    vcw = np.zeros((m, n, d), dtype=np.uint64)
    last = np.zeros((m, d), dtype=np.uint64)
    _gen(alpha, beta, seeds, n, mask, kind == "dcf", scw, tl, tr, vcw, last)
    return Keys(kind, n, K, seeds, scw, tl, tr, vcw, last, vector)


def eval_party(keys: Keys, party: int, x) -> np.ndarray:
    """Party ``party``'s output shares (uint64) at public inputs x (n-bit unsigned), from its own seed and the
    correction words only: x has one entry per key, or shape (keys, points) to evaluate each key at several
    points (the output has x's shape, and a trailing axis of d for a vector payload). Evaluating a key at
    more points is local and reveals nothing more."""
    if party not in (0, 1):
        raise ValueError(f"FSS keys are for parties 0 and 1, got {party!r}")
    mask = _check(keys.n, keys.K)
    shape = np.shape(x)
    m = keys.last.shape[0]
    points = _elements(x, keys.n, "x")
    if len(shape) > 2 or (shape[0] if shape else 1) != m or points.size % max(m, 1):
        raise ValueError(f"inputs of shape {shape} for {m} keys: give one input per key, or (keys, points)")
    points = points.reshape(m, -1)
    out = np.empty(points.shape + (keys.d,), dtype=np.uint64)
    _eval(party, np.ascontiguousarray(keys.seed[party]), keys.scw, keys.tl, keys.tr, keys.vcw, keys.last, points,
          keys.n, mask, keys.kind == "dcf", out)
    return out.reshape(shape + ((keys.d,) if keys.vector else ()))
