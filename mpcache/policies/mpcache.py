"""MPCache (Zeng et al., NeurIPS 2025) under MPC: look-once static eviction, hierarchical cluster selection with a
linear similarity, cluster-level gathering and cross-layer index sharing, every component switchable.

See :class:`MPCachePolicy` for the protocol (steps, costs, leaks) and :class:`MPCacheTwin` for the plaintext
numpy twin making the same decisions. Facts about the paper and its reference code come from
``shared/mpcache.md`` (sections 3, 4, 5, 8); the MPC design choices where the paper is silent are ours and are
marked as such.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np

import protocols as P
from mpsim import SharedTensor, concatenate, stack
from protocols.reuse import MaskedOperand, _concat
from protocols.oblivious import onehot_rotation
from protocols.topk import METHODS as TOPK_METHODS, pack_keys

from .base import KVPolicy, LayerKV, dense_attention, register

STATIC_MODES = (None, "topk", "threshold")
SIMILARITIES = ("linear", "bound", "bound-sign")
GATHERS = ("rotated", "cluster", "cluster-kv", "token")
ONEHOTS = ("rotation", "equality")
LARGE_PROMPT = 24000  # the reference code's LARGE_TOKEN_NUM: above it the window is 10% of the prompt
CAUSAL_PENALTY = 64.0  # added (negated) to future positions when causal=True: e^-64 is far below one ULP


@dataclass(frozen=True)
class Level:
    """One clustering level at cache length L (public): G clusters of ``size`` tokens, candidates 1..G-2
    (the first and last cluster are always kept), ``k`` of them chosen."""

    size: int
    G: int
    n_c: int
    k: int

    @property
    def runs_topk(self) -> bool:
        return 0 < self.k < self.n_c


@dataclass(frozen=True)
class Summary:
    """Per-cluster key extrema of one level, (kv_heads, G, d) each, and the scoring operands built from them
    (masked once and updated row by row when the cache is reusable): ``(ct,)`` for the linear similarity,
    ``(rmax, rmin)`` for bound-sign, ``()`` for the literal bound. The finest level covers every cluster
    (the last one possibly partial); coarser levels only complete clusters."""

    rmax: SharedTensor | None  # None: no complete cluster yet (a coarse level of a short cache)
    rmin: SharedTensor | None
    ops: tuple = ()
    reuse: bool = True

    @property
    def G(self) -> int:
        return 0 if self.rmax is None else self.rmax.shape[1]


def _chooses(lv: Level) -> bool:
    """Whether a level restricts the next one: it keeps fewer than all its candidates (possibly none)."""
    return 0 < lv.n_c and lv.k < lv.n_c


def _extras(parent: Level, size: int, G: int) -> np.ndarray:
    """Candidates (0-based among clusters 1..G-2 of size ``size``) whose parent is the first or last parent
    cluster, both always kept: public members of every selection."""
    cand = np.arange(1, G - 1)
    up = cand * size // parent.size
    return np.flatnonzero((up == 0) | (up == parent.G - 1))


def _is_masked(x) -> bool:
    return isinstance(x, MaskedOperand)


def _as_tensor(x) -> SharedTensor:
    return x.tensor if _is_masked(x) else x


def _operand(session, t: SharedTensor, reuse: bool):
    return session.reusable(t) if reuse else t


def _take(x, index, axis: int = 1):
    """Public positions along ``axis`` of a masked operand or a sharing (local)."""
    index = np.asarray(index, dtype=np.int64)
    if _is_masked(x):
        return x.take(index, axis=axis)
    return x[(slice(None),) * axis + (index,)]


def _join_last(a, b):
    """[a | b] along the last axis: a masked operand stays masked (each mask still pads one value)."""
    if _is_masked(a) and _is_masked(b):
        return _concat(a, b, axis=-1)
    return concatenate([_as_tensor(a), _as_tensor(b)], axis=-1)


def _replace_row(t, g: int, row: SharedTensor):
    """t with row g (axis 1) replaced: a masked operand masks the new row afresh (``update``)."""
    if _is_masked(t):
        return t.update([g], row, axis=1)
    parts = [p for p in (t[:, :g], row, t[:, g + 1 :]) if p.shape[1]]
    return concatenate(parts, axis=1)


def _append_row(t, row: SharedTensor):
    if _is_masked(t):
        return t.append(row, axis=1)
    return concatenate([t, row], axis=1)


def _cumsum_last(t: SharedTensor) -> SharedTensor:
    """Prefix sums along the last axis: linear, so each party sums its own shares (local)."""
    payload = t.session.backend.map(lambda p: np.cumsum(p, axis=-1, dtype=np.uint64), t.payload) \
        if t.payload is not None else None
    return t._like(payload, t.shape)


def _positive_int(name, value, minimum=1):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _ratio(name, value, allow_one=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        0 < value <= 1 and (allow_one or value < 1)
    if not ok:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


@register
@dataclass
class MPCachePolicy(KVPolicy):
    """MPCache: static eviction once at prefill, then per step a hierarchical cluster selection.

    All counts are public (they follow from the public sequence length and ratios); every index is secret.

    **Prefill, per layer** (``setup`` scope, one-off):

    1. Static eviction (``select/static``; ``static="topk"`` by default, ``"threshold"``, or None for off).
       Importance of token j: I_j = mean over heads of the sum over the last w prompt queries of
       softmax(q K^T)[., j], w = 20% of the prompt (10% above 24000 tokens). One index per layer, shared by
       all heads, as in the reference code. The reference's quirks: no 1/sqrt(d) and no causal mask. We scale
       by 1/sqrt(d) (``static_scale=True``) because that is the attention the prefill produces, so under a
       private prefill this step is a reuse ("look-once"): its sub-scope ``select/static/importance`` is what
       prefill already paid and can be subtracted; ``static_scale=False`` gives the reference's logits.
       ``causal=False`` follows the reference (window queries also see later window tokens); ``causal=True``
       adds -64 to those (public, local). The query row r of the window is position T - w + r // group
       (position-major, as ``KVPolicy.prompt_queries`` documents).
       a. logits = Qw @ K^T (K reusable: opens Qw only), scale; softmax over T; I = sum (local).
       b. topk: keep = sum of the one-hots of topk(I, k_s), k_s = int(keep_ratio * T) (public).
          threshold: keep_j = [I_j > thr] (T comparisons; the threshold is on I, mean attention mass per
          head summed over the window; the reference's union rule over single queries and its thresholds
          1e-8..1e-20 lie below the fixed-point resolution 2^-f). The kept count is opened: **a leak**,
          recorded in ``kv.state["leaks"]`` so reports can flag it (the count backend, which has no data,
          assumes k_s tokens).
       c. Order-preserving compaction with a public count k (ours): c = prefix sums of keep (local);
          idx_j = keep_j (c_j - 1 - k) + k (one product per token), so kept tokens get their rank and evicted
          ones the dump slot k; one rotation one-hot of idx_j over k + 1 slots per token (log2 T bits each);
          M = its first k columns, transposed: (k, T), row r = the r-th kept token in position order.
       d. [K | V]_kept = M @ [K | V] (one product, opens M once), then re-masked once (new content).
    2. Cluster summaries (``select/summary_update``): levels ``cluster_sizes`` (default 32 then 16, each a
       multiple of the next). Finest level: per cluster max and min of the keys over the cluster axis
       (``protocols.max`` of the stacked [K, -K], one tournament); the partial last cluster is padded with a
       copy of its own first token, which changes neither extremum (the reference pads with the previous
       cluster's tail, a quirk). Coarser levels, complete clusters only: elementwise max/min of their
       children's. The scoring
       operand of each level, c = num r_max + (den - num) r_min with alpha = num/den (0.6 = 3/5), is a local
       integer combination, masked once. Scores are den times the paper's, which changes no decision.

    **Decode step t, per layer** with cache length L (``step`` scope):

    1. Plan (public): per level G = ceil(L/s), candidates 1..G-2, k = min(int(G ratio), G - 2). When the
       finest level would keep every candidate: dense attention; when it keeps none (int(G ratio) = 0),
       attention over the first and last cluster only. Followers of a sharing group skip 2, 3 and the
       one-hot masking of 4.
    2. ``select/similarity``: per level one product q_sum @ c^T (q summed over the KV head's query group;
       c reusable: opens kv_heads d elements). ``similarity="bound"``: the literal bound
       sum_i max(q_i rmax_i, q_i rmin_i): H C d products and **H C d comparisons** per level;
       ``"bound-sign"`` (ours): the same value as relu(q) . rmax + min(q, 0) . rmin: H d comparisons once
       per step, then two products per level with reusable r_max, r_min.
    3. ``select/topk``: level 1 top-k over the coarse candidates (public k1). Level 2 (ours, the paper's
       hierarchy "the fine level decides only among the children of the picked ones" without secret
       indexing): the fine scores, viewed as a (coarse parent, child) block, are masked once (opens h n2
       elements) and the picked parents' rows gathered by ``gather_rotated`` (log2 P bits per pick); with the
       public children of the always-kept first and last coarse clusters they are the candidates, about
       k1 r + 2r instead of n2. Their cluster indices are secret, so each key packs its own index,
       x 2^b + (n2 - 1 - index): keys are distinct, ties go to the lower index whatever the list order, and
       the chosen indices are read back from the keys' low bits by a rotation one-hot. k2 = min(int(G2 r2),
       n2, candidates) (public). The first and last clusters are excluded from the candidates and added by
       public position at both levels. (The digest's other option, an additive penalty on non-members over
       all n2 fine candidates, costs a top-k over n2 instead of ~n2/2: with first-candidate quickselect pivots,
       7.44x instead of 7.92x less communication than full attention at 32768 tokens on ``mpcache-proxy``.)
    4. ``select/gather``, default ``gather="rotated"`` (ours): the candidate scores S_c (h, n_c, g 16) are masked
       once (opens h g (L - 16 - last)), rows picked by ``gather_rotated`` (log2 P bits per index, no one-hot
       opened; offline K P (16 g + 1) per index) and the weights scattered back by ``scatter_rotated`` (opens
       g 16 k2 per head). The one-hot gathers below build the one-hot of the chosen indices (``onehot``:
       rotation or equality). Ablation ``gather="cluster"``: the one-hot (kv_heads, k2, n_c) is masked ONCE
       (transposed, as a reusable operand: opens k2 n_c elements per KV head), then used twice without
       reopening: the selected clusters' scores are picked from s = q K^T (computed over the whole cache,
       which with a reusable K opens only q) by S_c @ oh^T (opens S_c: group L elements), and after the
       softmax the weights are scattered back by w @ oh (opens group 16 k2 elements), so the value product
       w_full @ V again opens only the weights. Gathering K and V themselves (``"cluster-kv"``, the
       reference's cluster-level gather: one-hot (kv_heads, k2, G2) @ the cache viewed as
       (kv_heads, G2, 16 d)) opens the one-hot too, and then the attention products must open the gathered
       keys and values (2 x 16 k2 d elements per KV head): several times more for d >= 32. ``"token"``
       gathers K and V token by token (one-hot over the candidate tokens: 256 x the cluster one-hot).
       Candidate clusters are all full (only the last cluster can be partial, and it is kept by position),
       so no padding is needed at gather time.
    5. ``attention/qk``, ``attention/softmax`` (over 16 (k2 + 1) + |last cluster| tokens), ``attention/av``.
    6. ``update`` hook (``select/summary_update``), off the step's critical path: the finest level's newest
       cluster is updated incrementally, r_max <- max(r_max, k_new), r_min likewise (one comparison call
       over 2 kv_heads d elements; exact, and 15 times cheaper than recomputing it from its 16 keys as the
       reference's ``max_in_tensor`` does); a new cluster starts at k_new without comparison. Coarser levels
       hold complete clusters only (the partial one is the last cluster, never a candidate): when the newest
       token completes one, its row is the max/min of its children's (2 kv_heads d more comparisons, once
       per 32 steps). Each changed scoring row is re-masked (fresh mask: ``MaskedOperand.update``/``append``:
       kv_heads d opened elements). Independent of L.

    **Cross-layer sharing** (``share_layers``, from layer ``share_from`` on, groups of ``share_group``, up to
    ``share_until``): the first layer of a group selects, the others reuse its masked one-hot from the
    ``step`` dict: no summary maintenance, similarity, top-k or one-hot opening; only their own score gather
    and weight scatter (linear in L). ``share_until=30`` gives the digest's Implementation A (18 of 32 layers
    select), the default its Implementation B (17). Static indices are not shared: the prefill hook has no
    cross-layer channel, so a follower evicts on its own with the same public budget (equal shapes), and the
    shared cluster indices address the follower's own retained tokens.

    **Costs** per decode step and selecting layer (N = 2, K = 64; h = kv_heads, H = query heads, L = cache
    length, n1, n2 = candidate counts, k1, k2 = picks, r = n2/n1): similarity: one product per level opening
    h d elements (``bound``: 2 H n d products opened and H n d comparisons per level; ``bound-sign``: H d
    comparisons); top-k over (h, n1), then the fine block masked (h n2 elements) and gathered (log2 n1 bits
    per pick), top-k over (h, k1 r + extras) and a rotation one-hot per pick (the two levels are
    sequential); score gather 64 H (L - 16 - last) bits; weight scatter 64 H 16 k2 bits; softmax over
    H x (16 (k2 + 1) + last) entries; w_full @ V 64 H L bits; summary update 2 h d comparisons and h d
    opened elements (twice that once per 32 steps). The score gather and the value product, 16 bytes per
    kept token and head, are the floor of this design: a gather by a secret index from a reusable operand
    needs either an opening of every row or a dealer table of every row per index. Measured on
    ``mpcache-proxy`` (count backend, N = 2, one step, exact softmax): 1.99 MB sent per party at 2048 tokens
    (full attention 9.16 MB, 4.60x less) and 16.35 MB at 32768 (133 MB, 8.14x less); with the reference
    scripts' softmax (``NonlinearConfig(softmax_method="puma")``) 6.26x and 10.23x. A one-level variant
    (``cluster_sizes=(16,)``, ``ratios=(0.2,)``) skips one top-k. The one-off setup is dominated by the
    importance softmax over (H, w, T) (``select/static/importance``: the prefill's own attention) and the
    k x T compaction one-hot.

    **Leaks**: nothing beyond public counts in the default configuration. ``static="threshold"`` opens the
    number of tokens kept per layer (``kv.state["leaks"]``). Near-ties (scores within the fixed-point error)
    may be decided differently from the twin, which breaks exact ties by lower index.
    """

    name: ClassVar[str] = "mpcache"
    static: str | None = "topk"
    keep_ratio: float = 0.3
    threshold: float = 1e-3
    static_window: float | None = None
    static_scale: bool = True
    causal: bool = False
    cluster_sizes: tuple = (32, 16)
    ratios: tuple = (0.5, 0.2)
    alpha: float = 0.6
    similarity: str = "linear"
    gather: str = "rotated"
    onehot: str = "rotation"
    topk_method: str = "auto"
    share_layers: bool = True
    share_from: int = 2
    share_group: int = 2
    share_until: int | None = None

    def __post_init__(self):
        for name in ("cluster_sizes", "ratios"):
            if not isinstance(getattr(self, name), (tuple, list)):
                raise ValueError(f"{name} must be a tuple, got {getattr(self, name)!r}")
        for name in ("static_scale", "causal", "share_layers"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self.cluster_sizes = tuple(self.cluster_sizes)
        self.ratios = tuple(self.ratios)
        if self.static not in STATIC_MODES:
            raise ValueError(f"static must be one of {STATIC_MODES}, got {self.static!r}")
        _ratio("keep_ratio", self.keep_ratio)
        if not isinstance(self.threshold, (int, float)) or isinstance(self.threshold, bool) or \
                not math.isfinite(self.threshold) or self.threshold <= 0:
            raise ValueError(f"threshold must be a positive number, got {self.threshold!r}")
        if self.static_window is not None:
            _ratio("static_window", self.static_window)
        if not self.cluster_sizes:
            raise ValueError("cluster_sizes needs at least one level")
        for s in self.cluster_sizes:
            _positive_int("cluster size", s)
        for a, b in zip(self.cluster_sizes, self.cluster_sizes[1:]):
            if a <= b or a % b:
                raise ValueError(f"cluster sizes must decrease, each a multiple of the next; got {self.cluster_sizes}")
        if len(self.ratios) != len(self.cluster_sizes):
            raise ValueError(f"one ratio per level: {len(self.cluster_sizes)} sizes, {len(self.ratios)} ratios")
        for r in self.ratios:
            _ratio("ratio", r)
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) or not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        for name, value, allowed in (("similarity", self.similarity, SIMILARITIES), ("gather", self.gather, GATHERS),
                                     ("onehot", self.onehot, ONEHOTS), ("topk_method", self.topk_method, TOPK_METHODS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        _positive_int("share_from", self.share_from, 0)
        _positive_int("share_group", self.share_group, 2)
        if self.share_until is not None:
            _positive_int("share_until", self.share_until, 0)

    # -- public plan ----------------------------------------------------------------------------------------
    @property
    def alpha_fraction(self) -> tuple[int, int]:
        """alpha as num/den (den <= 256): the scoring operand is num r_max + (den - num) r_min (local)."""
        fr = Fraction(self.alpha).limit_denominator(256)
        return fr.numerator, fr.denominator

    def window(self, seq_len: int) -> int:
        w = self.static_window if self.static_window is not None else (0.1 if seq_len > LARGE_PROMPT else 0.2)
        return max(1, int(seq_len * w))

    def prompt_queries(self, seq_len: int) -> int:
        return 0 if self.static is None else self.window(seq_len)

    def static_budget(self, seq_len: int) -> int:
        return max(1, int(self.keep_ratio * seq_len))

    def leader(self, layer: int) -> int:
        """The layer whose selection ``layer`` uses (itself unless it follows in a sharing group)."""
        if not self.share_layers or layer < self.share_from:
            return layer
        if self.share_until is not None and layer >= self.share_until:
            return layer
        return self.share_from + (layer - self.share_from) // self.share_group * self.share_group

    def is_follower(self, layer: int) -> bool:
        return self.leader(layer) != layer

    def keeps_summaries(self, layer: int) -> bool:
        # A follower never scores unless its shapes differ from its leader's, which only a threshold count can do.
        return not self.is_follower(layer) or self.static == "threshold"

    def plan(self, length: int) -> list[Level] | None:
        """Levels (coarse to fine) at cache length ``length``; None when every token is attended (dense).

        A level below one that chose picks among the children of its picks (and of the always-kept first and
        last parent): its k is capped by that count, so k_i = min(int(G_i r_i), n_c_i, children)."""
        levels: list[Level] = []
        for s, r in zip(self.cluster_sizes, self.ratios):
            G = -(-length // s)
            n_c = max(G - 2, 0)
            k = min(int(G * r), n_c)
            if levels and _chooses(levels[-1]):
                k = min(k, levels[-1].k * (levels[-1].size // s) + len(_extras(levels[-1], s, G)))
            levels.append(Level(s, G, n_c, k))
        fine = levels[-1]
        if fine.n_c == 0 or fine.k >= fine.n_c:
            return None
        return levels

    # -- prefill ----------------------------------------------------------------------------------------------
    def prefill(self, session, layer: int, kv: LayerKV) -> LayerKV:
        state = {key: value for key, value in kv.state.items() if key != "prompt_queries"}
        leaks = list(state.get("leaks", ()))
        if self.static is not None:
            queries = kv.state.get("prompt_queries")
            if queries is None:
                raise ValueError("static eviction needs kv.state['prompt_queries'] (see prompt_queries())")
            kv = self._static(session, kv, queries, leaks)
        state["leaks"] = tuple(leaks)
        if self.keeps_summaries(layer):
            state["summaries"] = self._build_summaries(session, kv)
        return LayerKV(kv.keys, kv.values, kv.positions, state)

    def _static(self, session, kv: LayerKV, queries: SharedTensor, leaks: list) -> LayerKV:
        T = kv.length
        hkv, rows, d = queries.shape
        if rows % self.window(T):
            raise ValueError(f"prompt queries hold {rows} rows per KV head, not a multiple of the window "
                             f"{self.window(T)}")
        heads = hkv * rows // self.window(T)  # query heads: importance is their mean
        reuse = _is_masked(kv.keys)
        with session.scope("select"), session.scope("static"):
            with session.scope("importance"):
                logits = queries @ kv.keys.swapaxes(-1, -2)  # (hkv, group w, T)
                if self.static_scale:
                    logits = logits * (1.0 / math.sqrt(d))
                if self.causal:
                    logits = logits + self._causal_mask(rows, T)
                importance = P.softmax(logits, axis=-1).sum(axis=(0, 1))  # (T,): heads x mean
            if self.static == "topk":
                k = self.static_budget(T)
                if k >= T:
                    return kv
                with session.scope("topk"):
                    _, oh = P.topk(importance.reshape(1, T), k, method=self.topk_method)
                    keep = oh.sum(axis=1).reshape(T)
            else:
                with session.scope("threshold"):
                    keep = P.b2a_bit(P.gt(importance, self.threshold * heads))
                    count = P.reveal(keep.sum())
                has_data = session.backend.has_data
                k = int(count) if has_data else self.static_budget(T)
                leaks.append({"scope": "select/static", "what": "tokens kept by the static threshold",
                              "value": k if has_data else None, "assumed": None if has_data else k})
                if k == 0:
                    raise ValueError(f"static threshold {self.threshold} keeps no token; lower it")
                if k >= T:
                    return kv
            with session.scope("compact"):
                rank = _cumsum_last(keep)
                slot = keep * (rank - (1 + k)) + k  # rank - 1 for kept tokens, the dump slot k otherwise
                method = "equality" if self.onehot == "equality" else "rotation"
                M = P.onehot(slot, k + 1, method=method)[:, :k].swapaxes(0, 1)  # (k, T)
            with session.scope("gather"):
                kept = M @ _join_last(kv.keys, kv.values)  # (hkv, k, 2d)
            with session.scope("remask"):
                keys = _operand(session, kept[..., :d], reuse)
                values = _operand(session, kept[..., d:], reuse)
        return LayerKV(keys, values, None, dict(kv.state))

    def _causal_mask(self, rows: int, T: int) -> np.ndarray:
        w = self.window(T)
        pos = T - w + np.arange(rows) // (rows // w)  # position-major rows (see mpcache/policies/base.py)
        return np.where(np.arange(T)[None, :] > pos[:, None], -CAUSAL_PENALTY, 0.0)

    def _build_summaries(self, session, kv: LayerKV) -> tuple[Summary, ...]:
        keys = _as_tensor(kv.keys)
        hkv, L, d = keys.shape
        reuse = _is_masked(kv.keys)
        sizes = self.cluster_sizes
        out: list = [None] * len(sizes)
        with session.scope("select"), session.scope("summary_update"):
            s = sizes[-1]
            G = -(-L // s)
            idx = np.concatenate([np.arange(L), np.full(G * s - L, (G - 1) * s)])
            x = keys[:, idx].reshape(hkv, G, s, d)
            ext = P.max(stack([x, -x]), axis=3)
            out[-1] = (ext[0], -ext[1])
            for lv in range(len(sizes) - 2, -1, -1):
                r = sizes[lv] // sizes[lv + 1]
                Gc = L // sizes[lv]  # complete coarse clusters only
                if Gc == 0 or out[lv + 1] is None:
                    continue
                fmax, fmin = out[lv + 1]
                y = stack([fmax[:, : Gc * r], -fmin[:, : Gc * r]]).reshape(2, hkv, Gc, r, d)
                ext = P.max(y, axis=3)
                out[lv] = (ext[0], -ext[1])
            return tuple(Summary(None, None, (), reuse) if pair is None else
                         Summary(pair[0], pair[1], self._ops(session, pair[0], pair[1], reuse), reuse) for pair in out)

    def _ops(self, session, rmax, rmin, reuse: bool) -> tuple:
        if self.similarity == "linear":
            return (_operand(session, self._combine(rmax, rmin), reuse),)
        if self.similarity == "bound-sign":
            return (_operand(session, rmax, reuse), _operand(session, rmin, reuse))
        return ()

    def _combine(self, rmax, rmin):
        num, den = self.alpha_fraction
        return rmax * num + rmin * (den - num)  # products with public integers: local

    # -- decode step --------------------------------------------------------------------------------------------
    def attend(self, session, layer: int, q, kv: LayerKV, scale: float, step: dict):
        L = kv.length
        levels = self.plan(L)
        records = step.setdefault("mpcache", {})
        if levels is None:
            records[layer] = {"L": L, "dense": True}
            return dense_attention(session, q, kv, scale)
        fine = levels[-1]
        if fine.k == 0:  # only the first and last cluster: public positions
            records[layer] = {"L": L, "dense": False, "k": 0}
            keep = np.concatenate([np.arange(fine.size), np.arange((fine.G - 1) * fine.size, L)])
            return dense_attention(session, q, kv.take(keep), scale)
        record = None
        if self.is_follower(layer):
            lead = records.get(self.leader(layer))
            if lead is not None and lead.get("L") == L and lead.get("k") == fine.k:
                record = dict(lead, shared_from=self.leader(layer))
            elif "summaries" not in kv.state:
                raise RuntimeError(f"layer {layer} shares layer {self.leader(layer)}'s selection but this step "
                                   "holds no matching record; run the layers of a step in order")
        if record is None:
            record = self._select(session, q, kv, levels)
        records[layer] = record
        return self._attend_selected(session, q, kv, scale, fine, record)

    def _query_parts(self, q):
        """What every level's scoring needs from q: q summed over the query group (linear: the score is
        linear in q), relu(q) and min(q, 0) summed over the group (bound-sign: H d comparisons, once), or q."""
        if self.similarity == "linear":
            return (q.sum(axis=1, keepdims=True),)
        if self.similarity == "bound-sign":
            qp = P.relu(q)
            return qp.sum(axis=1, keepdims=True), (q - qp).sum(axis=1, keepdims=True)
        return (q,)

    def _scores(self, session, parts, summary: Summary, level: Level) -> SharedTensor:
        """Similarity of the query to the candidate clusters 1..G-2: (kv_heads, n_c)."""
        cand = np.arange(1, level.G - 1)
        q = parts[0]
        hkv = q.shape[0]
        if self.similarity == "linear":
            ct = _take(summary.ops[0], cand)
            return (q @ ct.swapaxes(-1, -2)).reshape(hkv, level.n_c)
        if self.similarity == "bound-sign":
            smax = parts[0] @ _take(summary.ops[0], cand).swapaxes(-1, -2)
            smin = parts[1] @ _take(summary.ops[1], cand).swapaxes(-1, -2)
            return (smax + smin).reshape(hkv, level.n_c)
        # the literal bound: H C d products and H C d comparisons
        g, d = q.shape[1], q.shape[2]
        shape = (2, hkv, g, level.n_c, d)
        ext = stack([summary.rmax[:, cand], summary.rmin[:, cand]]).reshape(2, hkv, 1, level.n_c, d)
        prods = q.reshape(1, hkv, g, 1, d).broadcast_to(shape) * ext.broadcast_to(shape)
        return P.maximum(prods[0], prods[1]).sum(axis=(1, 3))

    def _select(self, session, q, kv: LayerKV, levels: list[Level]) -> dict:
        summaries = kv.state["summaries"]
        fine = levels[-1]
        with session.scope("select"):
            with session.scope("similarity"):
                parts = self._query_parts(q)
                scores = [self._scores(session, parts, summaries[i], lv) if lv.runs_topk or i == len(levels) - 1
                          else None for i, lv in enumerate(levels)]
            with session.scope("topk"):
                picks = None  # the previous level's picks: None (every cluster), () (none) or secret (kv_heads, k)
                for i, lv in enumerate(levels):
                    if i < len(levels) - 1 and not lv.runs_topk:
                        picks = None if not _chooses(lv) else ()
                        continue
                    picks = self._pick(session, scores[i], levels[i - 1] if i else None, lv, picks)
                index = picks
            with session.scope("gather"):
                oh = None
                if self.gather != "rotated":
                    oh = P.onehot(index, fine.n_c, method=self.onehot)
                record = {"L": kv.length, "dense": False, "k": fine.k, "onehot": oh, "index": index}
                if self.gather == "cluster":
                    record["operand"] = _operand(session, oh.swapaxes(-1, -2), _is_masked(kv.keys))
        return record

    def _pick(self, session, x, parent: Level | None, lv: Level, picks) -> SharedTensor:
        """Top-k of one level: the secret indices (kv_heads, k) of the chosen candidates (0-based among 1..G-2).

        Every cluster a candidate (first level, or a parent level that keeps all): one top-k, ties to the
        lower index. Below a level that chose (ours, the paper's hierarchy without secret indexing): the
        candidates are the children of the parent's picks, their scores gathered by ``gather_rotated`` from the
        masked (parent, child) score block (opens kv_heads n_c elements), plus the public children of the
        always-kept first and last parent. Their indices are secret, so they are packed into the keys,
        key = x 2^b + (n_c - 1 - index) (b = ceil(log2 n_c)): distinct, ties to the lower index whatever the
        list order, and the index is read back from the chosen keys' low bits by a rotation one-hot
        (log2 n_c bits each). Requires |x| < 2^(K - 2 - f - b - b'), b' = ceil(log2 of the list length).
        """
        hkv = x.shape[0]
        if picks is None:
            _, _, index = P.topk(x, lv.k, axis=-1, method=self.topk_method, return_index=True)
            return index
        R = parent.size // lv.size
        extras = _extras(parent, lv.size, lv.G)
        b = max(1, (lv.n_c - 1).bit_length())
        keys = [pack_keys(x[:, extras], lv.n_c - 1 - extras, b)] if len(extras) else []
        if isinstance(picks, SharedTensor):
            block = x[:, R - 1 : R - 1 + parent.n_c * R].reshape(hkv, parent.n_c, R)
            rows = P.gather_rotated(P.mask_operand(block), picks).reshape(hkv, -1)  # (hkv, k_parent R)
            child = (picks.reshape(hkv, -1, 1) * R + np.arange(R - 1, 2 * R - 1).reshape(1, 1, R)).reshape(hkv, -1)
            keys.append(pack_keys(rows, child * -1 + (lv.n_c - 1), b))
        keys = keys[0] if len(keys) == 1 else concatenate(keys, axis=1)
        chosen, _ = P.topk(keys, lv.k, axis=-1, method=self.topk_method)
        backwards = onehot_rotation(chosen, lv.n_c, check_domain=False)  # low b bits: n_c - 1 - index
        return backwards @ np.arange(lv.n_c - 1, -1, -1, dtype=np.int64)

    def _attend_selected(self, session, q, kv: LayerKV, scale: float, fine: Level, record: dict):
        if self.gather == "rotated":
            return self._attend_rotated(session, q, kv, scale, fine, record)
        if self.gather == "cluster":
            return self._attend_scores(session, q, kv, scale, fine, record)
        return self._attend_gathered(session, q, kv, scale, fine, record)

    def _attend_scores(self, session, q, kv, scale, fine: Level, record):
        """Cluster gather of scores and scatter of weights by the once-masked one-hot (module docstring)."""
        s, G, n_c, k = fine.size, fine.G, fine.n_c, fine.k
        hkv, g = q.shape[0], q.shape[1]
        ohT = record["operand"]  # (hkv, n_c, k): masked once, or a sharing when reuse is off
        with session.scope("attention"), session.scope("qk"):
            s_all = q @ kv.keys.swapaxes(-1, -2)  # (hkv, g, L)
        with session.scope("select"), session.scope("gather"):
            S_c = s_all[:, :, s : s * (G - 1)].reshape(hkv, g, n_c, s).swapaxes(-1, -2).reshape(hkv, g * s, n_c)
            picked = (S_c @ ohT).reshape(hkv, g, s, k).swapaxes(-1, -2).reshape(hkv, g, k * s)
        scores = concatenate([s_all[:, :, :s], picked, s_all[:, :, s * (G - 1) :]], axis=-1)
        with session.scope("attention"), session.scope("softmax"):
            weights = P.softmax(scores * scale, axis=-1)
        with session.scope("select"), session.scope("gather"):
            w_mid = weights[:, :, s : s + k * s].reshape(hkv, g, k, s).swapaxes(-1, -2).reshape(hkv, g * s, k)
            spread = (w_mid @ ohT.swapaxes(-1, -2)).reshape(hkv, g, s, n_c).swapaxes(-1, -2).reshape(hkv, g, n_c * s)
        w_full = concatenate([weights[:, :, :s], spread, weights[:, :, s + k * s :]], axis=-1)
        with session.scope("attention"), session.scope("av"):
            return w_full @ kv.values, weights

    def _attend_rotated(self, session, q, kv, scale, fine: Level, record):
        """Default gather (ours): the candidate scores, masked once as a reusable operand (h, n_c, g s), are
        gathered by the secret cluster indices with ``gather_rotated`` (log2 P bits per index), and after the
        softmax the weights go back with ``scatter_rotated`` (opens the g s k weights); no one-hot is opened."""
        s, G, n_c, k = fine.size, fine.G, fine.n_c, fine.k
        hkv, g = q.shape[0], q.shape[1]
        index = record["index"]  # (hkv, k), integer, in [0, n_c)
        with session.scope("attention"), session.scope("qk"):
            s_all = q @ kv.keys.swapaxes(-1, -2)  # (hkv, g, L): a reusable K opens only q
        with session.scope("select"), session.scope("gather"):
            S_c = s_all[:, :, s : s * (G - 1)].reshape(hkv, g, n_c, s).swapaxes(1, 2).reshape(hkv, n_c, g * s)
            rows = P.gather_rotated(P.mask_operand(S_c), index)  # (hkv, k, g s)
            picked = rows.reshape(hkv, k, g, s).swapaxes(1, 2).reshape(hkv, g, k * s)
        scores = concatenate([s_all[:, :, :s], picked, s_all[:, :, s * (G - 1) :]], axis=-1)
        with session.scope("attention"), session.scope("softmax"):
            weights = P.softmax(scores * scale, axis=-1)
        with session.scope("select"), session.scope("gather"):
            w_mid = weights[:, :, s : s + k * s].reshape(hkv, g, k, s).swapaxes(1, 2).reshape(hkv, k, g * s)
            spread = P.scatter_rotated(w_mid, index, n_c).reshape(hkv, n_c, g, s).swapaxes(1, 2) \
                .reshape(hkv, g, n_c * s)
        w_full = concatenate([weights[:, :, :s], spread, weights[:, :, s + k * s :]], axis=-1)
        with session.scope("attention"), session.scope("av"):
            return w_full @ kv.values, weights

    def _attend_gathered(self, session, q, kv, scale, fine: Level, record):
        """Gather the selected clusters' keys and values (cluster or token one-hot), then attend over
        [first cluster | gathered | last cluster]; fixed parts stay reusable operands."""
        s, G, n_c, k = fine.size, fine.G, fine.n_c, fine.k
        hkv, d = q.shape[0], q.shape[2]
        L = kv.length
        cand = np.arange(s, s * (G - 1))
        kvc = _join_last(_take(kv.keys, cand), _take(kv.values, cand))  # (hkv, n_c s, 2d)
        with session.scope("select"), session.scope("gather"):
            oh = record["onehot"]
            if self.gather == "cluster-kv":
                rows = oh @ kvc.reshape(hkv, n_c, s * 2 * d)  # (hkv, k, s 2d): a local view, masks alike
            else:
                if self.onehot == "equality":
                    tok = record["index"].reshape(hkv, k, 1) * s + np.arange(s).reshape(1, 1, s)
                    oh_tok = P.onehot(tok, n_c * s, method="equality").reshape(hkv, k * s, n_c * s)
                else:  # one-hot of cluster c expanded to its s tokens: oh (x) I_s (local)
                    oh_tok = (oh.reshape(hkv, k, 1, n_c, 1) * np.eye(s, dtype=np.int64).reshape(1, 1, s, 1, s)
                              ).reshape(hkv, k * s, n_c * s)
                rows = oh_tok @ kvc  # (hkv, k s, 2d)
            rows = rows.reshape(hkv, k * s, 2 * d)
        k_g, v_g = rows[..., :d], rows[..., d:]
        fixed = np.concatenate([np.arange(s), np.arange(s * (G - 1), L)])
        k_f, v_f = _take(kv.keys, fixed), _take(kv.values, fixed)
        with session.scope("attention"):
            with session.scope("qk"):
                scores = concatenate([q @ k_f.swapaxes(-1, -2), q @ k_g.swapaxes(-1, -2)], axis=-1)
            with session.scope("softmax"):
                weights = P.softmax(scores * scale, axis=-1)
            with session.scope("av"):
                nf = len(fixed)
                return weights[..., :nf] @ v_f + weights[..., nf:] @ v_g, weights

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        """Fold the newest token into the summaries (cost independent of the cache length).

        Finest level: r_max <- max(r_max, k_new), r_min likewise, on the newest cluster (one comparison call
        over 2 kv_heads d elements), or a new cluster starting at k_new (no comparison). Coarser levels hold
        complete clusters only (a partial one is the last cluster, never a candidate): when the newest token
        completes a coarse cluster, its row is the max/min of its children's (one more comparison call).
        Every changed scoring row is masked afresh (``MaskedOperand.update``/``append``).
        """
        summaries = kv.state.get("summaries")
        if summaries is None:
            return kv
        sizes = self.cluster_sizes
        p = kv.length - 1
        k_new = _as_tensor(_take(kv.keys, [p]))  # (hkv, 1, d)
        out = list(summaries)
        with session.scope("select"), session.scope("summary_update"):
            fine, s = summaries[-1], sizes[-1]
            g = p // s
            if p % s == 0:
                out[-1] = self._with_row(session, fine, g, k_new, k_new)
            else:
                ext = P.maximum(stack([fine.rmax[:, g : g + 1], -fine.rmin[:, g : g + 1]]), stack([k_new, -k_new]))
                out[-1] = self._with_row(session, fine, g, ext[0], -ext[1])
            for lv in range(len(sizes) - 2, -1, -1):
                if (p + 1) % sizes[lv]:
                    break  # a coarser cluster cannot complete when this one does not
                g, r = p // sizes[lv], sizes[lv] // sizes[lv + 1]
                child = out[lv + 1]
                kids = stack([child.rmax[:, g * r : (g + 1) * r], -child.rmin[:, g * r : (g + 1) * r]])
                ext = P.max(kids, axis=2)  # (2, hkv, d)
                out[lv] = self._with_row(session, out[lv], g, ext[0].reshape(ext.shape[1], 1, -1),
                                         -ext[1].reshape(ext.shape[1], 1, -1))
        return LayerKV(kv.keys, kv.values, kv.positions, {**kv.state, "summaries": tuple(out)})

    def _with_row(self, session, summ: Summary, g: int, rmax_row, rmin_row) -> Summary:
        """The summary with cluster g set (appended when g is the next row); scoring rows masked afresh."""
        rows = self._op_rows(rmax_row, rmin_row)
        if summ.rmax is None:
            if g != 0:
                raise AssertionError(f"summary row {g} of an empty level")
            return Summary(rmax_row, rmin_row, tuple(_operand(session, r, summ.reuse) for r in rows), summ.reuse)
        if g == summ.G:
            return Summary(_append_row(summ.rmax, rmax_row), _append_row(summ.rmin, rmin_row),
                           tuple(_append_row(op, row) for op, row in zip(summ.ops, rows)), summ.reuse)
        if g > summ.G:
            raise AssertionError(f"summary row {g} skipped (the level holds {summ.G})")
        return Summary(_replace_row(summ.rmax, g, rmax_row), _replace_row(summ.rmin, g, rmin_row),
                       tuple(_replace_row(op, g, row) for op, row in zip(summ.ops, rows)), summ.reuse)

    def _op_rows(self, rmax_row, rmin_row) -> tuple:
        if self.similarity == "linear":
            return (self._combine(rmax_row, rmin_row),)
        if self.similarity == "bound-sign":
            return (rmax_row, rmin_row)
        return ()

    def twin(self) -> "MPCacheTwin":
        return MPCacheTwin(self)


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
    * ``importance(keys, queries)`` and ``static_keep(keys, queries)``: the static index (sorted positions);
    * ``summaries(keys)``: per level (r_max, r_min), (kv_heads, G, d);
    * ``select(q, keys)``: the finest-level clusters chosen per KV head (kv_heads, k), sorted, excluding the
      always-kept first and last; None when no selection runs (dense, or first and last cluster only);
    * ``tokens(clusters, length)``: the attended token positions per KV head;
    * ``attend(q, keys, values, scale, clusters)``: float attention over those tokens.

    Exact ties are broken by lower index (as ``topk(method="max")``); the linear scores use alpha as the
    same fraction num/den and are den times the paper's, like the MPC ones.
    """

    def __init__(self, policy: MPCachePolicy):
        self.policy = policy

    def importance(self, keys, queries):
        p = self.policy
        keys, queries = np.asarray(keys, float), np.asarray(queries, float)
        T, d = keys.shape[1], keys.shape[2]
        logits = queries @ keys.swapaxes(-1, -2)
        if p.static_scale:
            logits = logits / math.sqrt(d)
        if p.causal:
            logits = logits + p._causal_mask(queries.shape[1], T)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        a = e / e.sum(axis=-1, keepdims=True)
        heads = keys.shape[0] * (queries.shape[1] // p.window(T))
        return a.sum(axis=(0, 1)) / heads

    def static_keep(self, keys, queries) -> np.ndarray:
        p = self.policy
        imp = self.importance(keys, queries)
        T = len(imp)
        if p.static == "threshold":
            return np.flatnonzero(imp > p.threshold)
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
                member = None if not _chooses(lv) else self._sinks_only(q.shape[0], lv.G)
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
