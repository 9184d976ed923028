"""ABY3 cells of the rotation one-hot and of gather: the additive scheme's protocol code
(``protocols.oblivious``), written over the scheme's primitives, with ABY3's declarations.

The rotation's correlation is made by the three parties (``prf.Keys.rotation_onehot``); the opening of
c = (r - i) mod T sends each party the one component it lacks. The one-hot (either method) and argmax/argmin
are written once and compose these cells.
"""
from __future__ import annotations

from ..cost import Expr
from ..registry import CELLS, protocol
from .arith import ABY3_REF, PARTIES

_ROTATION = CELLS[("additive", "onehot_rotation")]
_GATHER = CELLS[("additive", "gather")]



@protocol(
    "onehot_rotation",
    scheme="aby3",
    rounds="int(T > 1)",
    comm="m*log2(T)",
    offline="K*T*m*int(T > 1)*(int(p == 0) + 2*int(p == 2))",
    leaks="nothing (c = (r - i) mod T is uniform)",
    ref=f"rotation one-hot ({ABY3_REF} sharing; correlation made by the parties, prf.Keys.rotation_onehot)",
    dims=_ROTATION.dims,
    example=_ROTATION.example,
    parties=lambda n: n == PARTIES,
    vars_doc=_ROTATION.vars_doc,
)
def onehot_rotation(index, n: int, check_domain: bool | None = None):
    """One-hot of an integer-encoded secret index over [0, n), shape index.shape + (n,), integer (frac 0).

    Steps:
      1. Offline, per index: replicated sharings of r = rho_0 + rho_1 + rho_2 mod T (no party knows all
         three) and of e_r, made by the parties (``prf.Keys.rotation_onehot``: 2 rounds, K T bits each).
      2. Each party reduces its components of r - i mod T; open c = (r - i) mod T (each party receives the
         one component it lacks: log2 T bits per index per party).
      3. e_i[j] = e_r[(j + c) mod T] for j < n (local rotation of every component).
    Rounds: 1 (0 when n = 1). Comm: m log2 T bits per party. Offline: 3 K T m bits among the parties (party
    0 receives K T m, party 2 twice that, party 1 none).
    Leaks: nothing (c is uniform, as r is to every party). Ref: the additive rotation one-hot
    (``protocols.oblivious``) over ABY3 (Mohassel-Rindal, CCS 2018) sharing.
    """
    return _ROTATION.fn.__wrapped__(index, n, check_domain)


@protocol(
    "gather",
    scheme="aby3",
    cost=lambda d: d.onehot_rotation * Expr("ix") + d.ring_matmul.at(nx="nx", ny="ny", n="no"),
    leaks="nothing beyond the output",
    ref="one-hot x matrix: onehot_rotation, then the replicated matrix product",
    dims=_GATHER.dims,
    example=_GATHER.example,
    parties=lambda n: n == PARTIES,
    vars_doc=_GATHER.vars_doc,
)
def gather(matrix, selector, kind: str = "auto"):
    """Rows of a secret matrix picked by secret one-hot vectors or indices: onehot @ matrix.

    Steps:
      1. index selector: oh = onehot(selector, n) (rotation: 1 round); a one-hot selector is used as is.
      2. out = rep_matmul(oh, matrix) (1 round; the one-hot is integer-encoded: no truncation).
    Rounds: 1 (one-hot) or 2 (index, n > 1). Comm: the rotation's m log2 T, then K |out| bits per party.
    Offline: the rotation's. Leaks: nothing beyond the output. ABY3 has no reusable masked operands: a
    replicated product reshares only its output, so there is no mask to reuse.
    Ref: one-hot times matrix; ABY3 (Mohassel-Rindal, CCS 2018), Sec. 5.1.
    """
    return _GATHER.fn.__wrapped__(matrix, selector, kind)
