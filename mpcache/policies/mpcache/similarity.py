"""MPCache stage 3, per step: the similarity of the query to each candidate cluster (``select/similarity``).
The default is the paper's linear approximation of the max-based (Quest) bound: q . (alpha r_max + (1 - alpha)
r_min), one product per level against a reusable operand and no comparison; the ablations compute the literal
bound (``"bound"``: H C d comparisons per level) or the same bound from the signs of q (``"bound-sign"``,
ours: H d comparisons once per step). This stage also says which scoring operands the cluster summaries carry
(:meth:`Similarity.rows`). Reference: shared/mpcache.md sections 4.1 and 8.2."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import protocols as P
from mpsim import SharedTensor, stack

from .clusters import Summary
from .operands import take
from .select import Level

SIMILARITIES = ("linear", "bound", "bound-sign")


@dataclass(frozen=True)
class Similarity:
    """The scoring of one policy: ``kind`` (the policy's ``similarity``) and alpha as the fraction num/den.

    ``linear``: per level one product q_sum @ c^T (q summed over the KV head's query group; c reusable:
    opens kv_heads d elements). Scores are den times the paper's, which changes no decision.
    ``bound``: the literal bound sum_i max(q_i rmax_i, q_i rmin_i): H C d products and **H C d comparisons**
    per level. ``bound-sign`` (ours): the same value as relu(q) . rmax + min(q, 0) . rmin: H d comparisons
    once per step, then two products per level with reusable r_max, r_min.
    """

    kind: str
    num: int
    den: int

    def combine(self, rmax, rmin):
        """c = num r_max + (den - num) r_min: products with public integers, local."""
        return rmax * self.num + rmin * (self.den - self.num)

    def rows(self, rmax, rmin) -> tuple:
        """The scoring operands of clusters with extrema (rmax, rmin), before masking: ``(c,)`` (linear),
        ``(rmax, rmin)`` (bound-sign), ``()`` (bound: it reads the extrema themselves)."""
        if self.kind == "linear":
            return (self.combine(rmax, rmin),)
        if self.kind == "bound-sign":
            return (rmax, rmin)
        return ()

    def query_parts(self, q) -> tuple:
        """What every level's scoring needs from q: q summed over the query group (linear: the score is
        linear in q), relu(q) and min(q, 0) summed over the group (bound-sign: H d comparisons, once), or q."""
        if self.kind == "linear":
            return (q.sum(axis=1, keepdims=True),)
        if self.kind == "bound-sign":
            qp = P.relu(q)
            return qp.sum(axis=1, keepdims=True), (q - qp).sum(axis=1, keepdims=True)
        return (q,)

    def scores(self, parts: tuple, summary: Summary, level: Level) -> SharedTensor:
        """Similarity of the query to the candidate clusters 1..G-2: (kv_heads, n_c)."""
        cand = np.arange(1, level.G - 1)
        q = parts[0]
        hkv = q.shape[0]
        if self.kind == "linear":
            ct = take(summary.ops[0], cand)
            return (q @ ct.swapaxes(-1, -2)).reshape(hkv, level.n_c)
        if self.kind == "bound-sign":
            smax = parts[0] @ take(summary.ops[0], cand).swapaxes(-1, -2)
            smin = parts[1] @ take(summary.ops[1], cand).swapaxes(-1, -2)
            return (smax + smin).reshape(hkv, level.n_c)
        # the literal bound: H C d products and H C d comparisons
        g, d = q.shape[1], q.shape[2]
        shape = (2, hkv, g, level.n_c, d)
        ext = stack([summary.rmax[:, cand], summary.rmin[:, cand]]).reshape(2, hkv, 1, level.n_c, d)
        prods = q.reshape(1, hkv, g, 1, d).broadcast_to(shape) * ext.broadcast_to(shape)
        return P.maximum(prods[0], prods[1]).sum(axis=(1, 3))

    def level_scores(self, q, summaries: tuple, levels: list, wanted: list) -> list:
        """Per level the candidate scores where ``wanted`` (the selection says which levels rank), else None."""
        parts = self.query_parts(q)
        return [self.scores(parts, summaries[i], lv) if want else None
                for i, (lv, want) in enumerate(zip(levels, wanted))]
