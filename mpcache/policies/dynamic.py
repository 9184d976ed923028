"""Dynamic selection policies: every decode step picks, from a secret query, which cached tokens to attend.

Two baselines of the MPCache paper (mpcache.md sections 4.1, 4.6, 10), both overriding ``attend``:

* ``quest`` (Tang et al., "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference", ICML 2024):
  pages of ``page`` consecutive tokens summarised by their per-dimension key max and min; each step scores
  the pages by the upper bound sum_i max(q_i r^max_i, q_i r^min_i) (MPCache's Eq. (2)), gathers the top
  pages and attends over them and the newest page.
* ``naive-dynamic`` (the strawman of MPCache Fig. 1(d)): token-level similarity q.K^T, top-k tokens,
  a token-level one-hot gather, attention over the gathered tokens.

Neither evicts: the cache keeps every token (positions stay public and contiguous); only the attended subset
changes per step. What is public: the cache length T, the page size, the budget and hence every count and
shape below. What stays secret: the scores, which pages or tokens win, and the gathered keys and values
(top-k returns secret one-hots, and gathering is a product with them). The attention weights returned by
``attend`` are over the gathered tokens in gather order, so they are not aligned with cache positions.

Notation for the costs: h = KV heads, g = query heads per KV head, H = h g, d = head dim, T = cache length
after this step's append, K = ring bits. One "comparison" is one element of the ``msb`` protocol.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import protocols as P
from mpsim.tensor import SharedTensor, concatenate, stack
from protocols.reuse import MaskedOperand
from protocols.topk import METHODS as TOPK_METHODS

from .base import KVPolicy, LayerKV, dense_attention, register

QUEST_BOUNDS = ("max", "sign")


# -- helpers on caches that are reusable masked operands or plain sharings -------------------------------------
@contextmanager
def _scope(session, *names):
    """Nested profiler scopes, e.g. ``_scope(s, "select", "topk")`` for the path .../select/topk."""
    if not names:
        yield
        return
    with session.scope(names[0]):
        with _scope(session, *names[1:]):
            yield


def _rows(cache, start: int, stop: int) -> SharedTensor:
    """Cache entries [start, stop) at public positions, as a sharing (local: a masked operand's D + B)."""
    if isinstance(cache, MaskedOperand):
        return cache.take(np.arange(start, stop), axis=1).tensor
    return cache[:, start:stop]


def _paged(cache, pages: int, page: int):
    """The first pages * page entries of a (h, T, d) cache viewed as (h, pages, page * d). Local.

    A masked cache is sliced and reshaped as a view (MaskedOperand's public indexing and reshape): the same
    slice and reshape apply to the opened D, to every party's share of the mask B and to the dealer's B, so
    the view is still W = D + B with each mask element padding exactly the value it padded before.
    """
    if isinstance(cache, MaskedOperand):
        return cache[:, : pages * page].reshape(cache.shape[0], pages, page * cache.shape[2])
    h, _, d = cache.shape
    return cache[:, : pages * page].reshape(h, pages, page * d)


def _check_budget(name: str, value, minimum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} ({what}), got {value!r}")


def _check_method(method) -> None:
    if method not in TOPK_METHODS:
        raise ValueError(f"topk_method must be one of {TOPK_METHODS}, got {method!r}")


# -- plaintext twins ---------------------------------------------------------------------------------------------
@dataclass
class TwinSelection:
    """What a plaintext twin decided for one step: attended token positions per KV head (ascending), the
    chosen candidates (pages for quest, tokens for naive-dynamic; ascending; empty when no selection ran),
    the candidates' scores (h, n) and the float attention output (h, g, d) over the attended tokens."""

    positions: np.ndarray
    chosen: np.ndarray
    scores: np.ndarray | None
    context: np.ndarray


def twin_attention(q: np.ndarray, keys: np.ndarray, values: np.ndarray, positions: np.ndarray,
                   scale: float) -> np.ndarray:
    """Float softmax(q K^T scale) V per KV head over the tokens at ``positions`` (h, n): (h, g, d)."""
    q, keys, values = (np.asarray(a, dtype=np.float64) for a in (q, keys, values))
    ks = np.take_along_axis(keys, positions[:, :, None], axis=1)
    vs = np.take_along_axis(values, positions[:, :, None], axis=1)
    s = scale * q @ ks.swapaxes(-1, -2)
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return w @ vs


def twin_topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores per row, ascending; ties go to the lower index (as topk "max")."""
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return np.sort(order, axis=-1)


def twin_page_summaries(keys: np.ndarray, page: int) -> tuple[np.ndarray, np.ndarray]:
    """Per page (and KV head) the elementwise max and min of the keys, (h, ceil(T/page), d) each; the last
    page may be partial (its summary covers only its real tokens)."""
    keys = np.asarray(keys, dtype=np.float64)
    h, T, d = keys.shape
    C = -(-T // page)
    idx = np.concatenate([np.arange(T), np.full(C * page - T, T - 1)]).astype(np.int64)
    paged = keys[:, idx].reshape(h, C, page, d)
    return paged.max(axis=2), paged.min(axis=2)


# -- Quest ---------------------------------------------------------------------------------------------------------
@register
@dataclass
class QuestPolicy(KVPolicy):
    """Quest: per-step page selection by the max-based bound of per-page key min/max (Tang et al., ICML 2024).

    Hyperparameters (public): ``page`` [16] tokens per page; ``budget`` [256] tokens attended per step,
    i.e. k_p = budget // page pages: the newest page plus the top k = k_p - 1 of the older ones;
    ``bound`` ["max"] how the bound is evaluated (below); ``topk_method`` ["auto"] (``protocols.topk``).

    Per-layer state (``kv.state``): ``quest_max`` and ``quest_min``, secret (h, P, d) with P = ceil(T/page)
    pages: page c's elementwise max and min of its keys (the last page's over its tokens so far).

    Pages at step t (cache of T tokens after the append): C = ceil(T / page); the newest page C - 1 holds
    positions [(C-1) page, T) (1 to page tokens) and is always attended, by public position; the candidates
    are the C' = C - 1 older pages, all full, so the gathered pages never need padding. When k >= C' every
    page is attended and the step is plain dense attention (no selection runs; public, since T is).

    MPC steps of ``attend`` (per layer):
      1. ``select/similarity``: for every query head and candidate page, s_c = sum over the query group and
         over i of max(q_i r^max_ci, q_i r^min_ci). ``bound="max"`` (the paper's accounting, Eq. (2)): the
         2 H C' d products q_i r_ci in one ``beaver_mul`` (ring level, scale 2f), ``protocols.maximum`` of
         the two (H C' d comparisons), a local sum over d and the group, one truncation per score.
         ``bound="sign"`` computes the same ring values with H d comparisons: since r^max >= r^min,
         max(q_i r^max_i, q_i r^min_i) = q_i^+ r^max_i + q_i^- r^min_i with q^+ = relu(q), q^- = q - q^+, so
         it is ``relu`` on q and one batched ``beaver_matmul`` [q^+; q^-] @ [r^max; r^min]^T.
      2. ``select/topk``: ``protocols.topk`` of the (h, C') scores, k per KV head: secret one-hots (h, k, C').
      3. ``select/gather``: the cache's first C' pages viewed as (h, C', page d) (a local reshape; for a
         reusable masked cache: a MaskedOperand view); ``protocols.gather`` one-hot @ view for keys and
         for values. With a masked cache each product opens only the one-hot; without reuse, the view too.
         The newest page is appended by public position (free).
      4. ``attention``: dense attention over the n = k page + r gathered tokens (r = T - (C-1) page): q @ Kg^T
         and weights @ Vg are plain Beaver products (the gathered operands are fresh each step), so the cost
         is proportional to the budget, not to T.
    ``update`` (``select/summary_update``): fold the new key into the newest page's summary. The older pages
    are fixed, so only that page changes; rather than recompute its max over up to page keys, keep the
    running max and min: one ``protocols.maximum`` of [r^max; -r^min] with [k; -k] (2 h d comparisons,
    one comparison layer; max is associative, so this equals the recomputation). A token that opens a new
    page is that page's summary (no comparison). ``prefill`` (``select/summary_update`` in ``setup``): one
    ``protocols.max`` tournament over the page axis of [K; -K] for every page; a partial last page is padded
    with copies of its own last key, which changes neither its max nor its min.

    Per-step cost, K = 64, N = 2, reuse on, k < C' (exact counts; rounds as the protocols declare):
      * summary_update: 2 h d comparisons and selects (0 when the token opens a page);
      * similarity ("max"): K (H d + 2 h C' d) opened bits, H C' d comparisons and selects;
        ("sign"): H d comparisons and selects, K (2 H d + 2 h C' d) opened bits;
      * topk: over h rows of C' candidates (``protocols.topk`` cost with rows = h, n = C');
      * gather: 2 K h k C' opened bits (the one-hot, once for keys and once for values: two calls at the
        same depth, 1 round on the critical path); without reuse also 2 K h C' page d;
      * attention: q K^T over n tokens (K (H d + h n d)), softmax over H rows of n, weights V
        (K (H n + h n d)).
    One-off, at prefill (in ``setup``): 2 h P d (page - 1) comparisons in ceil(log2 page) levels, P = pages.
    Selection grows with T only through C' = T / page (similarity H C' d, top-k over C', one-hot h k C');
    attention does not grow with T.

    Leaks: nothing beyond the public T, page and budget (every count above is a function of them); which
    pages win, the scores and the gathered keys stay secret.
    Ref: Tang, Zhao, Zhu, Xiao, Kasikci, Han, "Quest: Query-Aware Sparsity for Efficient Long-Context LLM
    Inference", ICML 2024; MPCache's Eq. (2) (mpcache.md 4.1) and its cost accounting H C d comparisons.
    """

    name: ClassVar[str] = "quest"
    page: int = 16
    budget: int = 256
    bound: str = "max"
    topk_method: str = "auto"

    def __post_init__(self):
        _check_budget("page", self.page, 1, "tokens per page")
        _check_budget("budget", self.budget, self.page, "at least one page of tokens")
        if self.bound not in QUEST_BOUNDS:
            raise ValueError(f"bound must be one of {QUEST_BOUNDS}, got {self.bound!r}")
        _check_method(self.topk_method)

    # -- public plan ---------------------------------------------------------------------------------------------
    def plan(self, length: int) -> tuple[int, int, int]:
        """(candidate pages C', pages chosen k, start of the newest page) for a cache of ``length`` tokens."""
        pages = -(-length // self.page)
        candidates = pages - 1
        return candidates, min(self.budget // self.page - 1, candidates), candidates * self.page

    # -- hooks ---------------------------------------------------------------------------------------------------
    def prefill(self, session, layer: int, kv: LayerKV, step: dict | None = None) -> LayerKV:
        keys = kv.keys.tensor if isinstance(kv.keys, MaskedOperand) else kv.keys
        h, T, d = keys.shape
        pages = -(-T // self.page)
        with _scope(session, "select", "summary_update"):
            idx = np.concatenate([np.arange(T), np.full(pages * self.page - T, T - 1)]).astype(np.int64)
            paged = keys[:, idx].reshape(h, pages, self.page, d)
            both = P.max(stack([paged, -paged]), axis=3)  # (2, h, pages, d): max of K and of -K
        return LayerKV(kv.keys, kv.values, kv.positions, {**kv.state, "quest_max": both[0], "quest_min": -both[1]})

    def _summaries(self, kv: LayerKV):
        if "quest_max" not in kv.state:
            raise ValueError("quest needs its page summaries: run the policy's prefill on the cache first")
        rmax, rmin = kv.state["quest_max"], kv.state["quest_min"]
        return rmax, rmin

    def similarity(self, q: SharedTensor, rmax: SharedTensor, rmin: SharedTensor) -> SharedTensor:
        """Page scores (h, C) at q's scale: sum over the query group and d of max(q r^max, q r^min)."""
        h, g, d = q.shape
        C = rmax.shape[1]
        summaries = stack([rmax, rmin])  # (2, h, C, d)
        if self.bound == "max":
            prods = P.beaver_mul(q.reshape(1, h, g, 1, d), summaries.reshape(2, h, 1, C, d))  # ring, scale 2f
            raw = P.maximum(prods[0], prods[1]).sum(axis=(1, 3))
        else:
            qp = P.relu(q)
            raw = P.beaver_matmul(stack([qp, q - qp]), summaries.swapaxes(-1, -2)).sum(axis=(0, 2))
        return P.truncate(raw, min(q.frac, rmax.frac))

    def select(self, session, q: SharedTensor, kv: LayerKV):
        """The keys and values this step attends, (h, n, d) each; None when every page is attended."""
        candidates, k, newest = self.plan(kv.length)
        if k >= candidates:
            return None
        parts_k, parts_v = [], []
        if k > 0:
            rmax, rmin = self._summaries(kv)
            if rmax.shape[1] < candidates:
                raise ValueError(f"quest summaries cover {rmax.shape[1]} pages, the cache has {candidates} full "
                                 "pages: the policy's update must run after every append")
            with _scope(session, "select", "similarity"):
                scores = self.similarity(q, rmax[:, :candidates], rmin[:, :candidates])
            with _scope(session, "select", "topk"):
                _, onehot = P.topk(scores, k, axis=-1, method=self.topk_method)  # (h, k, C')
            h, _, d = q.shape
            with _scope(session, "select", "gather"):
                for cache, parts in ((kv.keys, parts_k), (kv.values, parts_v)):
                    gathered = P.gather(_paged(cache, candidates, self.page), onehot, kind="onehot")
                    parts.append(gathered.reshape(h, k * self.page, d))
        parts_k.append(_rows(kv.keys, newest, kv.length))
        parts_v.append(_rows(kv.values, newest, kv.length))
        return concatenate(parts_k, axis=1), concatenate(parts_v, axis=1)

    def attend(self, session, layer: int, q, kv: LayerKV, scale: float, step: dict):
        chosen = self.select(session, q, kv)
        if chosen is None:
            return dense_attention(session, q, kv, scale)
        return dense_attention(session, q, LayerKV(*chosen), scale)

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        rmax, rmin = self._summaries(kv)
        T = kv.length
        newest, stored = (T - 1) // self.page, rmax.shape[1]
        with _scope(session, "select", "summary_update"):
            k_new = _rows(kv.keys, T - 1, T)  # (h, 1, d)
            if newest == stored:  # the token opens a new page: it is that page's summary
                rmax, rmin = concatenate([rmax, k_new], axis=1), concatenate([rmin, k_new], axis=1)
            elif newest == stored - 1:
                both = P.maximum(stack([rmax[:, newest:], -rmin[:, newest:]]), stack([k_new, -k_new]))
                rmax = concatenate([rmax[:, :newest], both[0]], axis=1)
                rmin = concatenate([rmin[:, :newest], -both[1]], axis=1)
            else:
                raise ValueError(f"quest summaries cover {stored} pages but the cache's newest page is {newest}: "
                                 "the policy's update must run after every append")
        return LayerKV(kv.keys, kv.values, kv.positions, {**kv.state, "quest_max": rmax, "quest_min": rmin})

    # -- plaintext twin ------------------------------------------------------------------------------------------
    def twin(self):
        """``twin(q, keys, values, scale) -> TwinSelection``: the same decisions in float numpy for a cache of
        keys/values (h, T, d) (after this step's append) and a query (h, g, d). Ties go to the lower page."""

        def run(q, keys, values, scale):
            q, keys = np.asarray(q, dtype=np.float64), np.asarray(keys, dtype=np.float64)
            h, T, _ = keys.shape
            candidates, k, newest = self.plan(T)
            if k >= candidates:
                positions = np.broadcast_to(np.arange(T), (h, T))
                return TwinSelection(positions, np.zeros((h, 0), np.int64), None,
                                     twin_attention(q, keys, values, positions, scale))
            rmax, rmin = twin_page_summaries(keys[:, : candidates * self.page], self.page)
            prods = q[:, :, None, :] * np.stack([rmax, rmin])[:, :, None, :, :]  # (2, h, g, C', d)
            scores = np.maximum(prods[0], prods[1]).sum(axis=(1, 3))
            chosen = twin_topk(scores, k) if k else np.zeros((h, 0), np.int64)
            pages = (chosen[:, :, None] * self.page + np.arange(self.page)).reshape(h, -1)
            positions = np.concatenate([pages, np.broadcast_to(np.arange(newest, T), (h, T - newest))], axis=1)
            return TwinSelection(positions, chosen, scores, twin_attention(q, keys, values, positions, scale))

        return run


# -- naive dynamic selection ---------------------------------------------------------------------------------------
@register
@dataclass
class NaiveDynamicPolicy(KVPolicy):
    """Token-level dynamic selection: the strawman of MPCache Fig. 1(d) (mpcache.md 2, 4.6).

    Hyperparameters (public): ``budget`` [256] tokens attended per step and KV head; ``topk_method``
    ["auto"]. No per-layer state. When T <= budget every token is attended (dense attention, no selection).

    MPC steps of ``attend`` (per layer):
      1. ``select/similarity``: q @ K^T over the whole cache (h, g, T) (a reused masked cache opens only q),
         summed over the query group: (h, T) scores.
      2. ``select/topk``: ``protocols.topk`` of k = budget tokens per KV head: one-hots (h, k, T).
      3. ``select/gather``: ``protocols.gather`` one-hot @ K and one-hot @ V (token-level: each opens the
         h k T one-hot with reuse, plus the cache without).
      4. ``attention``: dense attention over the k gathered tokens (Beaver products).
    Per-step cost, K = 64, N = 2, reuse on: similarity K H d opened bits (as full attention's q K^T);
    top-k over h rows of T (at least h (T - 1) comparisons for any method); gather 2 K h k T opened bits,
    which grows with k T, i.e. with T^2 at a fixed budget fraction; attention over k tokens.
    It pays full attention's q K^T plus a top-k over T plus a gather whose one-hot is k times the cache's
    length, to save a softmax over T - k tokens: under MPC it costs more than full attention (the paper's
    point, claim (b)). Deliberately not optimised beyond using the batched protocols.

    Leaks: nothing beyond the public T and budget; the chosen tokens, scores and gathered rows stay secret.
    Ref: MPCache (mpcache.md sections 2 and 4.6: token-level similarity, top-k and Algorithm 2's one-hot
    gather).
    """

    name: ClassVar[str] = "naive-dynamic"
    budget: int = 256
    topk_method: str = "auto"

    def __post_init__(self):
        _check_budget("budget", self.budget, 1, "tokens attended per step")
        _check_method(self.topk_method)

    def select(self, session, q: SharedTensor, kv: LayerKV):
        """The gathered keys and values (h, budget, d) each; None when T <= budget (every token attended)."""
        T = kv.length
        if T <= self.budget:
            return None
        with _scope(session, "select", "similarity"):
            scores = (q @ kv.keys.swapaxes(-1, -2)).sum(axis=1)  # (h, T)
        with _scope(session, "select", "topk"):
            _, onehot = P.topk(scores, self.budget, axis=-1, method=self.topk_method)  # (h, k, T)
        with _scope(session, "select", "gather"):
            return P.gather(kv.keys, onehot, kind="onehot"), P.gather(kv.values, onehot, kind="onehot")

    def attend(self, session, layer: int, q, kv: LayerKV, scale: float, step: dict):
        chosen = self.select(session, q, kv)
        if chosen is None:
            return dense_attention(session, q, kv, scale)
        return dense_attention(session, q, LayerKV(*chosen), scale)

    def twin(self):
        """``twin(q, keys, values, scale) -> TwinSelection`` in float numpy; ties go to the lower position."""

        def run(q, keys, values, scale):
            q, keys = np.asarray(q, dtype=np.float64), np.asarray(keys, dtype=np.float64)
            h, T, _ = keys.shape
            if T <= self.budget:
                positions = np.broadcast_to(np.arange(T), (h, T))
                return TwinSelection(positions, positions, None, twin_attention(q, keys, values, positions, scale))
            scores = (q @ keys.swapaxes(-1, -2)).sum(axis=1)
            chosen = twin_topk(scores, self.budget)
            return TwinSelection(chosen, chosen, scores, twin_attention(q, keys, values, chosen, scale))

        return run


__all__ = ["NaiveDynamicPolicy", "QuestPolicy", "TwinSelection", "twin_attention", "twin_page_summaries",
           "twin_topk"]
