"""The MPCache KV policy: the dataclass of hyperparameters (validated in ``__post_init__``), the public plan,
and the three ``KVPolicy`` hooks (``prefill``, ``attend``, ``update``) composing the stages of this package:
static eviction (``static.py``), cluster summaries (``clusters.py``), similarity (``similarity.py``),
hierarchical selection (``select.py``), gather and attention (``gather.py``) and cross-layer index sharing
(``sharing.py``). Each stage is a small frozen dataclass built from the policy's fields on demand (the
``eviction``, ``clustering``, ``scoring``, ``selection``, ``gathering`` and ``sharing`` properties); per-layer
state lives in ``LayerKV.state`` and the step dict, never on the policy."""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np

from protocols.topk import METHODS as TOPK_METHODS

from ..base import KVPolicy, LayerKV, dense_attention, register
from .clusters import Clustering
from .gather import GATHERS, ONEHOTS, Gather
from .operands import is_masked
from .select import Level, Selection, fixed_tokens
from .sharing import Sharing
from .similarity import SIMILARITIES, Similarity
from .static import STATIC_MODES, StaticEviction
from .twin import MPCacheTwin


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

    1. Static eviction (``select/static``; ``static="topk"`` by default, ``"threshold"``, or None for off):
       importance from the last prompt queries' attention; keep the top ``keep_ratio`` (summed attention),
       or, the reference's rule, every token some window query gives a head-averaged attention above
       ``threshold``; order-preserving compaction (:class:`~.static.StaticEviction`). A follower of a
       sharing group takes its leader's selection instead (the same positions; only the compaction).
    2. Cluster summaries (``select/summary_update``): per level of ``cluster_sizes`` the keys' max and min per
       cluster and the scoring operands, masked once (:meth:`~.clusters.Clustering.build`).

    **Decode step t, per layer** with cache length L (``step`` scope):

    1. Plan (public, :meth:`plan`): per level G = ceil(L/s), candidates 1..G-2, k picks. Dense attention
       when the finest level would keep every candidate; the first and last cluster only when it keeps none.
       Followers of a sharing group skip 2, 3 and the one-hot masking of 4.
    2. ``select/similarity``: one product per level, linear in q (:class:`~.similarity.Similarity`).
    3. ``select/topk``: top-k per level, the finer among the children of the coarser picks
       (:class:`~.select.Selection`).
    4. ``select/gather``: the picked clusters' scores gathered and weights scattered back, or their keys and
       values gathered (:class:`~.gather.Gather`).
    5. ``attention/qk``, ``attention/softmax`` (over 16 (k2 + 1) + |last cluster| tokens), ``attention/av``.
    6. ``update`` hook (``select/summary_update``), off the step's critical path: the newest token folded into
       the summaries, independent of L (:meth:`~.clusters.Clustering.update`).

    **Cross-layer sharing** (``share_layers``, from layer ``share_from`` on, groups of ``share_group``, up to
    ``share_until``): the first layer of a group selects, the others reuse its static index at prefill and
    its selection record at each step, so they attend its original positions, as in the reference
    (:class:`~.sharing.Sharing`).

    **Differences from the reference code** (shared/mpcache.md): the static rule defaults to the fixed-ratio
    variant (section 3.3; ``static="threshold"`` is the reference's union rule, whose count is a leak) with
    scaled logits (``static_scale=False`` for the reference's unscaled ones); the partial last cluster is
    padded with a copy of its own first token, not the previous cluster's tail; the level-2 candidates are
    the children of the level-1 picks gathered by secret index (the reference masks the others with -inf,
    same picks); the reference tests ``T' % 32`` for the last cluster at both levels, we keep the last
    finest cluster whenever it exists; summaries are updated token by token (the same extrema).

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

    # -- the stages, built from the fields (nothing stored: vars(policy) stays the hyperparameters) -----------
    @property
    def eviction(self) -> StaticEviction:
        return StaticEviction(self.static, self.keep_ratio, self.threshold, self.static_window, self.static_scale,
                              self.causal, self.onehot, self.topk_method)

    @property
    def scoring(self) -> Similarity:
        return Similarity(self.similarity, *self.alpha_fraction)

    @property
    def clustering(self) -> Clustering:
        return Clustering(self.cluster_sizes, self.scoring.rows)

    @property
    def selection(self) -> Selection:
        return Selection(self.cluster_sizes, self.ratios, self.topk_method)

    @property
    def gathering(self) -> Gather:
        return Gather(self.gather, self.onehot)

    @property
    def sharing(self) -> Sharing:
        return Sharing(self.share_layers, self.share_from, self.share_group, self.share_until)

    # -- public plan ----------------------------------------------------------------------------------------
    @property
    def alpha_fraction(self) -> tuple[int, int]:
        """alpha as num/den (den <= 256): the scoring operand is num r_max + (den - num) r_min (local)."""
        fr = Fraction(self.alpha).limit_denominator(256)
        return fr.numerator, fr.denominator

    def window(self, seq_len: int) -> int:
        return self.eviction.window(seq_len)

    def prompt_queries(self, seq_len: int) -> int:
        return 0 if self.static is None else self.window(seq_len)

    def static_budget(self, seq_len: int) -> int:
        return self.eviction.budget(seq_len)

    def leader(self, layer: int) -> int:
        """The layer whose selection ``layer`` uses (itself unless it follows in a sharing group)."""
        return self.sharing.leader(layer)

    def is_follower(self, layer: int) -> bool:
        return self.sharing.is_follower(layer)

    def keeps_summaries(self, layer: int) -> bool:
        return not self.is_follower(layer)

    def plan(self, length: int) -> list[Level] | None:
        """Levels (coarse to fine) at cache length ``length``; None when every token is attended (dense).
        See :meth:`~.select.Selection.plan`."""
        return self.selection.plan(length)

    # -- the KVPolicy hooks ---------------------------------------------------------------------------------------
    def prefill(self, session, layer: int, kv: LayerKV, step: dict | None = None) -> LayerKV:
        state = {key: value for key, value in kv.state.items() if key != "prompt_queries"}
        leaks = list(state.get("leaks", ()))
        if self.static is not None:
            records = self.sharing.records({} if step is None else step)
            lead = self.sharing.static_record(records, layer)
            if lead is not None:  # a follower keeps its leader's positions (the reference's index sharing)
                kv = self.eviction.reuse(session, kv, lead)
            else:
                queries = kv.state.get("prompt_queries")
                if queries is None:
                    raise ValueError("static eviction needs kv.state['prompt_queries'] (see prompt_queries())")
                kv, leak, records[layer] = self.eviction.evict(session, kv, queries)
                if leak is not None:
                    leaks.append(leak)
        state["leaks"] = tuple(leaks)
        if self.keeps_summaries(layer):
            state["summaries"] = self.clustering.build(session, kv.keys)
        return LayerKV(kv.keys, kv.values, kv.positions, state)

    def attend(self, session, layer: int, q, kv: LayerKV, scale: float, step: dict):
        L = kv.length
        levels = self.plan(L)
        sharing = self.sharing
        records = sharing.records(step)
        if levels is None:
            records[layer] = {"L": L, "dense": True}
            return dense_attention(session, q, kv, scale)
        fine = levels[-1]
        if fine.k == 0:  # only the first and last cluster: public positions
            records[layer] = {"L": L, "dense": False, "k": 0}
            return dense_attention(session, q, kv.take(fixed_tokens(fine, L)), scale)
        record = sharing.shared(records, layer, L, fine.k, can_select="summaries" in kv.state)
        if record is None:
            record = self._select(session, q, kv, levels)
        records[layer] = record
        return self.gathering.attend(session, q, kv, scale, fine, record)

    def _select(self, session, q, kv: LayerKV, levels: list[Level]) -> dict:
        """Similarity, top-k and the gather's preparation of one selecting layer: its record (the picks)."""
        selection, fine = self.selection, levels[-1]
        with session.scope("select"):
            with session.scope("similarity"):
                scores = self.scoring.level_scores(q, kv.state["summaries"], levels, selection.scored(levels))
            with session.scope("topk"):
                index = selection.choose(scores, levels)
            with session.scope("gather"):
                prepared = self.gathering.prepare(session, index, fine.n_c, is_masked(kv.keys))
        return {"L": kv.length, "dense": False, "k": fine.k, **prepared}

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        """Fold the newest token into the summaries (cost independent of the cache length); see
        :meth:`~.clusters.Clustering.update`."""
        summaries = kv.state.get("summaries")
        if summaries is None:
            return kv
        summaries = self.clustering.update(session, summaries, kv.keys)
        return LayerKV(kv.keys, kv.values, kv.positions, {**kv.state, "summaries": summaries})

    def twin(self) -> MPCacheTwin:
        return MPCacheTwin(self)
