"""Oblivious selection: one-hot encodings of secret indices, and gathering rows by them.

Two ways to turn a secret index i over a public range [0, n) into a secret one-hot vector:

* ``equality``: compare i with every position j (n equality tests per index: n (K + 2(K-1)) (N-1) bits per
  party and 1 + log2 K rounds, then one B2A round). Works for any encoding of i.
* ``rotation`` (default for integer-encoded indices): the dealer hands out, per index, the one-hot e_r of a
  fresh uniform r in [0, T), T = n rounded up to a power of two, and shares of r. The parties reduce their
  shares of r - i mod T (valid because T divides 2^K) and open only c = (r - i) mod T, log2 T bits each;
  then e_i[j] = e_r[(j + c) mod T] is a local rotation. Correct: e_r[(j + c) mod T] = 1 iff j + r - i = r
  (mod T) iff j = i. Secure: c is uniform on [0, T) whatever i is, because r is, and opening at full ring
  width would leak (r - i as an integer bounds i). Cost per index: log2 T bits per party online instead of
  n equality tests; the dealer ships T ring elements. An index outside [0, n) gives a wrong one-hot (a 1 at
  i mod T, or none if that is >= n): under ``check_domain=True`` (session option or argument) the share
  and ideal backends raise instead.
"""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor, _numel

from .arith import _rng_values, matmul_shapes
from .cost import Expr
from .registry import COMPOSED, call, protocol
from .reuse import MaskedOperand, matmul_reused
from .rotation import _check_index_domain, _index_example, _open_rotation, _pow2_at_least, _rotate, check_size


def rotation_range(index: SharedTensor, n, check_domain) -> tuple[int, int]:
    """A rotation one-hot's checks (an integer-encoded arithmetic index in [0, n)): (n, T = n rounded up to a
    power of two)."""
    if index.kind != "A" or index.frac != 0:
        raise ValueError("rotation one-hot needs an integer-encoded arithmetic index (frac_bits=0)")
    n = check_size(n, "one-hot range n")
    _check_index_domain(index, n, check_domain)
    return n, _pow2_at_least(n)


@protocol(
    "onehot_rotation",
    rounds="int(T > 1)",
    comm="(N-1)*m*log2(T)",
    offline="m*(K*T + log2(T))*int(T > 1)",
    leaks="nothing (c = (r - i) mod T is uniform)",
    ref="dealer-rotated one-hot (protocol-notes; cf. function secret sharing / 'rotation' tricks)",
    dims=lambda index, n, check_domain=None: {"m": index.size, "T": _pow2_at_least(n)},
    example=lambda s: ((_index_example(s), 8), {}),
    vars_doc="m = indices; T = n rounded up to a power of two",
)
def onehot_rotation(index: SharedTensor, n: int, check_domain: bool | None = None) -> SharedTensor:
    """One-hot of an integer-encoded secret index over [0, n), shape index.shape + (n,), integer (frac 0).

    Steps:
      1. Dealer: per index a fresh r uniform in [0, T) and shares of r and of the one-hot e_r (length T).
      2. Each party reduces its share of r - i mod T; open c = (r - i) mod T (log2 T bits per index).
      3. e_i[j] = e_r[(j + c) mod T] for j < n (local rotation).
    Rounds: 1 (0 when n = 1: the one-hot is constant). Comm: (N-1) m log2 T bits per party.
    Offline: m (K T + log2 T) bits.
    Leaks: nothing (c is uniform). Ref: the module docstring (correctness and security argument).
    """
    n, T = rotation_range(index, n, check_domain)
    session = index.session
    if T == 1:  # a range of one position: the one-hot is the constant 1
        return session.zeros(index.shape + (1,), frac_bits=0) + 1
    r, e_r = session.scheme.rotation_onehot(session, index.shape, T)  # additive: the dealer's
    _, c, depth = _open_rotation(index, r, T)
    shape = index.shape + (n,)
    if c is None:
        return SharedTensor(session, None, shape, 0, depth)
    return SharedTensor(session, _rotate(e_r, c, n), shape, 0, depth)


def onehot_equality(index: SharedTensor, n: int) -> SharedTensor:
    """One-hot by n equality tests per index, then B2A (any encoding of the index). Integer output."""
    positions = np.arange(check_size(n, "one-hot range n"), dtype=np.int64)
    public = positions if index.frac == 0 else positions.astype(np.float64)
    diff = index.reshape(index.shape + (1,)) - public
    return call("b2a_bit", call("eqz", diff))


def _uses_equality(index: SharedTensor, method: str) -> bool:
    return method == "equality" or (method == "auto" and index.frac != 0)


def _onehot_dims(index, n, method="auto", check_domain=None):
    return {"m": index.size, "n": n, "T": _pow2_at_least(n), "eq": int(_uses_equality(index, method))}


@protocol(
    "onehot",
    scheme=COMPOSED,
    cost=lambda d: ((d.eqz + d.b2a_bit).at(n="m*n") * Expr("eq") + d.onehot_rotation * Expr("1 - eq")),
    leaks="nothing beyond the output",
    ref="dealer-rotated one-hot (``onehot_rotation``) or n equality tests (``eqz`` + daBit B2A)",
    dims=_onehot_dims,
    example=lambda s: ((_index_example(s), 8), {}),
    vars_doc="m = indices; n = positions; T = n rounded up to a power of two; eq = 1 when the equality "
             "method runs (method='equality', or 'auto' with a fixed-point index)",
)
def onehot(index: SharedTensor, n: int, method: str = "auto", check_domain: bool | None = None) -> SharedTensor:
    """One-hot of a secret index over [0, n): shape index.shape + (n,), integer-encoded 0/1.

    ``method="auto"`` picks rotation (cheaper: log2 T bits vs n equality tests per index) for
    integer-encoded indices, and equality otherwise.
    Steps:
      1. rotation: ``onehot_rotation(index, n)`` (1 round; 0 when n = 1).
      2. equality: ``onehot_equality``: eqz(index - j) for every position j, then b2a_bit (1 round).
    Rounds: rotation 1; equality 2 + log2 K.
    Comm: rotation (N-1) m log2 T bits per party; equality (N-1) m n (3K - 1) (eqz: K + 2(K-1), B2A: 1).
    Offline: rotation m (K T + log2 T); equality m n (2K - 1 + K) bits.
    Leaks: nothing beyond the output (the rotation opens a uniform c, see the module docstring).
    Ref: the module docstring (rotation); equality tests as in CrypTen/SPU one-hot.
    """
    if method not in ("auto", "rotation", "equality"):
        raise ValueError(f"method must be 'auto', 'rotation' or 'equality', got {method!r}")
    n = check_size(n, "one-hot range n")
    if _uses_equality(index, method):
        _check_index_domain(index, n, check_domain)
        return onehot_equality(index, n)
    return onehot_rotation(index, n, check_domain=check_domain)


def _gather_kind(matrix, selector, kind: str) -> str:
    n = matrix.shape[-2]
    if kind == "auto":
        return "onehot" if selector.ndim >= 1 and selector.shape[-1] == n else "index"
    return kind


def _gather_dims(matrix, selector, kind="auto"):

    n = matrix.shape[-2]
    index = _gather_kind(matrix, selector, kind) == "index"
    oh_shape = selector.shape + (n,) if index else selector.shape
    xs = oh_shape if len(oh_shape) >= 2 else (1,) + oh_shape
    ys = matrix.shape if len(matrix.shape) >= 2 else matrix.shape + (1,)
    return {"m": selector.size, "T": _pow2_at_least(n), "ix": int(index), "nx": _numel(oh_shape),
            "ny": matrix.size, "no": _numel(matmul_shapes(xs, ys)), "sh": int(not isinstance(matrix, MaskedOperand))}


def _gather_example(s):
    return (_rng_values(s, (8, 3)), _index_example(s)), {"kind": "index"}


@protocol(
    "gather",
    rounds="1 + ix*int(T > 1)",
    comm="(N-1)*(ix*m*log2(T) + K*(nx + sh*ny))",
    offline="ix*m*(K*T + log2(T))*int(T > 1) + K*no",
    leaks="nothing beyond the output",
    ref="one-hot x matrix: onehot_rotation, then beaver_matmul (SecureML) or matmul_reused (masked operand)",
    dims=_gather_dims,
    example=_gather_example,
    vars_doc="ix = 1 for an index selector (m indices, T = n rounded up to a power of two), 0 for a one-hot; "
             "nx = one-hot elements; ny = matrix elements, sh = 1 for a SharedTensor matrix, 0 for a "
             "MaskedOperand; no = output elements",
)
def gather(matrix, selector: SharedTensor, kind: str = "auto") -> SharedTensor:
    """Rows of a secret matrix picked by secret one-hot vectors or indices: onehot @ matrix.

    ``selector`` is a one-hot of shape (..., n) (``kind="onehot"``) or an integer index tensor
    (``kind="index"``: ``onehot(selector, n)`` first), n = matrix.shape[-2]. ``kind="auto"`` takes a selector
    whose last axis has length n as a one-hot; pass ``kind`` when an index tensor could look like one.
    ``matrix`` may be a SharedTensor (Beaver matmul) or a reusable MaskedOperand (only the one-hot is opened).
    The one-hot is integer-encoded, so no truncation is needed.
    Steps:
      1. index selector: oh = onehot(selector, n) (rotation: 1 round); a one-hot selector is used as is.
      2. out = beaver_matmul(oh, matrix), or matmul_reused(oh, matrix) for a MaskedOperand (1 round).
    Rounds: 1 (one-hot) or 2 (index, n > 1).
    Comm: the rotation's (N-1) m log2 T, then K (N-1)(|oh| + |matrix|) bits per party (|oh| only when the
    matrix is a MaskedOperand). Offline: the rotation's m (K T + log2 T), then K |out| bits.
    Leaks: nothing beyond the output.
    Ref: one-hot times matrix (SecureML matrix triples, Mohassel-Zhang 2017); the rotation one-hot of the
    module docstring.
    """

    if kind not in ("auto", "onehot", "index"):
        raise ValueError(f"kind must be 'auto', 'onehot' or 'index', got {kind!r}")
    if selector.kind != "A" or selector.frac != 0:
        raise TypeError("gather takes an integer-encoded arithmetic one-hot or index")
    n = matrix.shape[-2]
    kind = _gather_kind(matrix, selector, kind)
    oh = selector if kind == "onehot" else onehot(selector, n)
    if isinstance(matrix, MaskedOperand):
        return matmul_reused(oh, matrix)
    return call("ring_matmul", oh, matrix)
