"""The plaintext numpy twin of MPCache: the same decisions as :class:`MPCachePolicy`, in float64, from the
same public plan (``policy.plan``, ``window``, ``static_budget``, ``alpha_fraction``). It is the reference the
policy tests, the policy matrix and the quality study (``mpcache.eval``) compare against: static importance
and keep set, per-level cluster extrema, the linear or max-based scores, the hierarchical top-k (exact ties
to the lower index) and float attention over the attended tokens."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .select import chooses


@dataclass
class TwinStep:
    """One decode step of the twin (the fields of the dynamic baselines' ``TwinSelection``): attended positions
    per KV head (h, n) ascending, the chosen finest-level clusters (h, k) ascending (empty when dense), the
    finest-level candidate scores (h, n_c; -inf where not a child of a level-1 pick) or None, and the float
    attention output (h, g, d)."""

    positions: np.ndarray
    chosen: np.ndarray
    scores: np.ndarray | None
    context: np.ndarray


class MPCacheTwin:
    """The plaintext numpy twin of :class:`MPCachePolicy`: the same decisions in float64.

    * ``twin(q, keys, values, scale) -> TwinStep``: one decode step over a cache (h, L, d) holding this
      step's token (after static eviction), as the dynamic baselines' twins;
    * ``importance(keys, queries)``, ``query_importance(keys, queries)`` and ``static_keep(keys, queries)``:
      the static index (sorted positions);
    * ``summaries(keys)``: per level (r_max, r_min), (kv_heads, G, d);
    * ``select(q, keys)``: the finest-level clusters chosen per KV head (kv_heads, k), sorted, excluding the
      always-kept first and last; None when no selection runs (dense, or first and last cluster only);
    * ``tokens(clusters, length)``: the attended token positions per KV head;
    * ``attend(q, keys, values, scale, clusters)``: float attention over those tokens.

    Exact ties are broken by lower index (as ``topk(method="max")``); the linear scores use alpha as the
    same fraction num/den and are den times the paper's, like the MPC ones.
    """

    def __init__(self, policy):  # an MPCachePolicy (not imported: policy.py imports this module)
        self.policy = policy

    def attention(self, keys, queries):
        """The window's attention (kv_heads, group w, T) with the policy's scaling and mask, and the number of
        query heads."""
        p = self.policy
        keys, queries = np.asarray(keys, float), np.asarray(queries, float)
        T, d = keys.shape[1], keys.shape[2]
        logits = queries @ keys.swapaxes(-1, -2)
        if p.static_scale:
            logits = logits / math.sqrt(d)
        if p.causal:
            logits = logits + p.eviction.causal_mask(queries.shape[1], T)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True), keys.shape[0] * (queries.shape[1] // p.window(T))

    def importance(self, keys, queries):
        """(T,): the window's attention summed over queries, averaged over heads (the fixed-ratio rule's)."""
        a, heads = self.attention(keys, queries)
        return a.sum(axis=(0, 1)) / heads

    def query_importance(self, keys, queries):
        """(w, T): each window query's attention averaged over heads (the threshold rule's Abar)."""
        a, heads = self.attention(keys, queries)
        hkv, rows, T = a.shape
        w = self.policy.window(T)
        return a.reshape(hkv, w, rows // w, T).sum(axis=(0, 2)) / heads

    def static_keep(self, keys, queries) -> np.ndarray:
        """The kept positions (ascending): threshold mode, every token some window query gives Abar > thr;
        top-k mode, the k_s most important (ties to the lower position)."""
        p = self.policy
        if p.static == "threshold":
            return np.flatnonzero((self.query_importance(keys, queries) > p.threshold).any(axis=0))
        imp = self.importance(keys, queries)
        T = len(imp)
        k = p.static_budget(T)
        return np.sort(np.argsort(-imp, kind="stable")[:k]) if k < T else np.arange(T)

    def summaries(self, keys):
        p = self.policy
        keys = np.asarray(keys, float)
        L = keys.shape[1]
        out = []
        for s in p.cluster_sizes:
            G = -(-L // s)
            rmax = np.stack([keys[:, g * s : (g + 1) * s].max(axis=1) for g in range(G)], axis=1)
            rmin = np.stack([keys[:, g * s : (g + 1) * s].min(axis=1) for g in range(G)], axis=1)
            out.append((rmax, rmin))
        return out

    def scores(self, q, rmax, rmin):
        """(kv_heads, C) similarity of q (kv_heads, group, d) to clusters with extrema (kv_heads, C, d)."""
        p = self.policy
        q = np.asarray(q, float)
        if p.similarity == "linear":
            num, den = p.alpha_fraction
            return np.einsum("hgd,hcd->hc", q, num * rmax + (den - num) * rmin)
        return np.maximum(q[:, :, None, :] * rmax[:, None], q[:, :, None, :] * rmin[:, None]).sum(axis=(1, 3))

    def __call__(self, q, keys, values, scale) -> TwinStep:
        L, h = np.asarray(keys).shape[1], np.asarray(keys).shape[0]
        chosen, scores = self.decide(q, keys)
        if chosen is None:
            levels = self.policy.plan(L)
            if levels is None:
                positions = np.tile(np.arange(L), (h, 1))
            else:
                s, G = levels[-1].size, levels[-1].G
                positions = np.tile(np.concatenate([np.arange(s), np.arange((G - 1) * s, L)]), (h, 1))
            chosen = np.zeros((h, 0), np.int64)
        else:
            positions = self.tokens(chosen, L)
        return TwinStep(positions, chosen, scores, self._attention(q, keys, values, scale, positions))

    def select(self, q, keys):
        return self.decide(q, keys)[0]

    def decide(self, q, keys):
        """(chosen finest clusters (h, k) ascending, or None; the finest candidate scores, -inf where not
        eligible, or None)."""
        p = self.policy
        L = np.asarray(keys).shape[1]
        levels = p.plan(L)
        if levels is None or levels[-1].k == 0:
            return None, None
        summ = self.summaries(keys)
        member = None  # None: every cluster of the previous level; else (h, G_prev) 0/1
        for i, lv in enumerate(levels):
            last = i == len(levels) - 1
            if not lv.runs_topk and not last:
                member = None if not chooses(lv) else self._sinks_only(q.shape[0], lv.G)
                continue
            cand = np.arange(1, lv.G - 1)
            x = self.scores(q, summ[i][0][:, cand], summ[i][1][:, cand])
            if member is not None:  # only children of the previous level's picks are candidates
                x = np.where(member[:, cand * lv.size // levels[i - 1].size] > 0, x, -np.inf)
            top = np.argsort(-x, axis=-1, kind="stable")[:, : lv.k]
            if last:
                return np.sort(top + 1, axis=-1), x
            member = np.zeros((q.shape[0], lv.G))
            np.put_along_axis(member, top + 1, 1.0, axis=-1)
            member[:, [0, lv.G - 1]] = 1.0
        raise AssertionError("unreachable")

    @staticmethod
    def _sinks_only(hkv, G):
        m = np.zeros((hkv, G))
        m[:, [0, G - 1]] = 1.0
        return m

    def tokens(self, clusters, length: int):
        """Attended positions per KV head: first cluster, the chosen clusters (in order), last cluster."""
        p = self.policy
        s = p.cluster_sizes[-1]
        G = -(-length // s)
        fixed_hi = np.arange((G - 1) * s, length)
        out = []
        for row in np.atleast_2d(clusters):
            mid = (row[:, None] * s + np.arange(s)).ravel()
            out.append(np.concatenate([np.arange(s), mid, fixed_hi]))
        return np.stack(out)

    def attend(self, q, keys, values, scale, clusters=None):
        """Float attention over the tokens of ``clusters`` (default: this step's own decision)."""
        if clusters is None:
            return self(q, keys, values, scale).context
        return self._attention(q, keys, values, scale, self.tokens(clusters, np.asarray(keys).shape[1]))

    @staticmethod
    def _attention(q, keys, values, scale, idx):
        q, keys, values = (np.asarray(a, float) for a in (q, keys, values))
        out = []
        for h in range(keys.shape[0]):
            logits = q[h] @ keys[h, idx[h]].T * scale
            e = np.exp(logits - logits.max(axis=-1, keepdims=True))
            out.append((e / e.sum(axis=-1, keepdims=True)) @ values[h, idx[h]])
        return np.stack(out)
