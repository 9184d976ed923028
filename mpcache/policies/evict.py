"""Eviction policies with secret decisions: H2O and TOVA evict a secret slot every decode step, SnapKV keeps a
secret top-k of the prompt once at prefill.

What the three share, and why it is sound under MPC (semi-honest, trusted dealer):

* Budgets and kept counts are public; which entries are kept stays secret. Whether an eviction happens is
  decided by the cache length alone (public), never by a secret.
* Scoring: attention weights (the step's own, from ``attend``; or the prompt's last queries at prefill)
  summed over the query heads of a KV head (local), so every decision is per KV head.
* One-shot selection (prefill): ``protocols.topk`` gives secret values and a secret one-hot (kv_heads, k, n);
  the kept rows are gathered once (one-hot @ K and one-hot @ V: ``protocols.gather``, which opens only the
  one-hot when the cache is a reusable masked operand), and the gathered rows, being new content, get fresh
  masks (``mask_operand``). Rows kept at public positions (SnapKV's window, H2O's recent window) keep their
  masks (``MaskedOperand.take``: a mask still pads exactly one value). Positions become secret
  (``kv.positions = None``).
* Removing one secret slot (per step): ``protocols.argmin`` over the candidate slots [0, m) gives a secret
  one-hot e (ties to the lower slot); its prefix sum c_j = [j >= slot] is local (a product with a public
  0/1 triangle); then slot j < m - 1 takes X[j] + c_j (X[j+1] - X[j]) (one ``beaver_mul`` of the integer c
  with the fixed-point differences: no truncation), and slots from m - 1 on take X[j+1] (a public shift:
  free). X stacks K, V (and H2O's scores) so one product moves them all. The m - 1 shifted slots may all
  hold new content, and which did is secret, so a reusable cache re-masks exactly those slots
  (``mask_operand`` of K's and V's new rows, in parallel); the public tail keeps its masks. With reuse off
  the cache stays plain sharings and nothing is re-masked.

Every policy has a plaintext twin (:class:`EvictionTwin`, ``policy.twin()``): the same decisions on float64
arrays, per KV head, tracking original positions, so tests can check the MPC selection against it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

import protocols as P
from mpsim import SharedTensor, concatenate
from protocols.reuse import MaskedOperand, mask_operand
from protocols.topk import METHODS as TOPK_METHODS

from .base import KVPolicy, LayerKV, register


# -- shared MPC machinery ------------------------------------------------------------------------------------
@contextmanager
def _scope(session, *names):
    if not names:
        yield
        return
    with session.scope(names[0]), _scope(session, *names[1:]):
        yield


def _as_tensor(cache) -> SharedTensor:
    return cache.tensor if isinstance(cache, MaskedOperand) else cache


def _rows(cache, lo: int, hi: int):
    """Slots [lo, hi) of a cache at public positions (free; a masked cache's masks move with their rows)."""
    if isinstance(cache, MaskedOperand):
        return cache.take(np.arange(lo, hi), axis=1)
    return cache[:, lo:hi]


def _join(head: SharedTensor, tail, reuse: bool):
    """The cache [head, tail]: head is new content (fresh masks when reused), tail keeps its masks."""
    if head.shape[1] == 0:
        return tail
    if not reuse:
        return head if tail is None or tail.shape[1] == 0 else concatenate([head, tail], axis=1)
    if tail is None or tail.shape[1] == 0:
        return mask_operand(head)
    t, h = tail.shape[1], head.shape[1]
    # append masks only the new rows; a public reordering then puts them first (masks move with content)
    return tail.append(head, axis=1).take(np.r_[t : t + h, 0:t], axis=1)


def _weights_per_head(weights: SharedTensor) -> SharedTensor:
    """(kv_heads, rows, T) attention weights summed over the rows (query heads, window queries): local."""
    return weights.sum(axis=1)


def _causal_softmax(logits: SharedTensor, visible: np.ndarray) -> SharedTensor:
    """Softmax of each row over its visible entries only (public 0/1 mask ``visible``, (rows, T)).

    max over the visible entries (the others pushed 2^12 below: local), d = (x - max) on visible entries and
    -64 elsewhere (local), e = exp(d) times the mask (exactly 0 where masked, whatever exp gives outside its
    domain), one reciprocal of the row sum per row, one product. The protocols and the domain of
    ``protocols.softmax`` (which cannot take a mask) on the visible entries; the visible spread must stay
    below 2^12.
    """
    vis = np.asarray(visible, dtype=np.int64)
    m = P.max(logits + (vis - 1) * 4096, axis=-1)
    d = (logits - m.reshape(m.shape + (1,))) * vis + (vis - 1) * 64
    e = P.exp(d) * vis
    r = P.reciprocal(e.sum(axis=-1))
    return e * r.reshape(r.shape + (1,))


def _prompt_scores(queries: SharedTensor, keys, scale: float, visible: np.ndarray | None = None) -> SharedTensor:
    """Attention of prompt queries (kv_heads, R, d) over ``keys`` (kv_heads, n, d), summed over the R rows."""
    logits = (queries @ keys.swapaxes(-1, -2)) * scale
    weights = P.softmax(logits, axis=-1) if visible is None else _causal_softmax(logits, visible)
    return _weights_per_head(weights)


def _keep_topk(kv: LayerKV, scores: SharedTensor, k: int, n: int, method: str, state: dict):
    """Keep, per KV head, the top-k of slots [0, n) by ``scores`` (kv_heads, n), then slots [n, T) as they are.

    Returns the new LayerKV (positions secret) and the top-k values (kv_heads, k), aligned with the kept rows.
    """
    session = scores.session
    reuse = isinstance(kv.keys, MaskedOperand)
    T = kv.length
    with _scope(session, "select", "topk"):
        values, onehot = P.topk(scores, k, axis=-1, method=method)
    with _scope(session, "select", "gather"):
        caches = []
        for cache in (kv.keys, kv.values):
            rows = P.gather(_rows(cache, 0, n), onehot, kind="onehot")  # (kv_heads, k, d): one-hot opened
            caches.append(_join(rows, _rows(cache, n, T), reuse))
    return LayerKV(caches[0], caches[1], None, state), values


def _evict_one(kv: LayerKV, scores: SharedTensor, m: int, extra: SharedTensor | None = None):
    """Remove, per KV head, the candidate slot in [0, m) with the lowest ``scores`` (kv_heads, m).

    ``extra`` (kv_heads, T), if given, is a per-slot secret (H2O's accumulated scores) moved along with the
    cache. Returns (LayerKV with T - 1 slots and secret positions, extra with T - 1 slots or None).
    """
    session = scores.session
    reuse = isinstance(kv.keys, MaskedOperand)
    hkv, T, d = kv.keys.shape
    with _scope(session, "select", "evict"):
        _, onehot = P.argmin(scores, axis=-1)  # (kv_heads, m), integer 0/1, ties to the lower slot
        parts = [_as_tensor(kv.keys), _as_tensor(kv.values)]
        if extra is not None:
            parts.append(extra.reshape(hkv, T, 1))
        X = concatenate(parts, axis=2)  # (kv_heads, T, w)
        head = X[:, : m - 1]
        if m > 1:
            c = onehot @ np.triu(np.ones((m, m - 1), dtype=np.int64))  # c_j = [j >= slot], j < m - 1: local
            head = head + P.beaver_mul(c.reshape(hkv, m - 1, 1), X[:, 1:m] - X[:, : m - 1])
        keys = _join(head[..., :d], _rows(kv.keys, m, T), reuse)
        values = _join(head[..., d : 2 * d], _rows(kv.values, m, T), reuse)
        if extra is not None:
            extra = concatenate([head[..., 2 * d], extra[:, m:]], axis=1)
    return LayerKV(keys, values, None, dict(kv.state)), extra


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_method(method) -> None:
    if method not in TOPK_METHODS:
        raise ValueError(f"method must be one of {TOPK_METHODS}, got {method!r}")


def _prompt_queries(kv: LayerKV, policy: str) -> SharedTensor:
    q = kv.state.get("prompt_queries")
    if q is None:
        raise ValueError(f"{policy} prefill needs kv.state['prompt_queries'] (prepare shares them)")
    return q


def _without_queries(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "prompt_queries"}


# -- H2O -----------------------------------------------------------------------------------------------------
@register
@dataclass
class H2OPolicy(KVPolicy):
    """H2O, the Heavy-Hitter Oracle (Zhang et al., NeurIPS 2023): keep ``heavy`` entries with the largest
    accumulated attention plus the ``recent`` most recent, evicting one entry per step.

    State: ``kv.state["scores"]``, secret (kv_heads, T): every entry's accumulated attention, the weights of
    every query that saw it summed over the query heads of its KV head. The cache is kept as [heavy slots,
    recent window in position order]; the newest ``recent`` slots are never candidates.

    Prefill (``setup``; ``prompt_queries`` asks for the last ``prompt_window`` prompt queries, all of them when
    None): scores = causal attention of those queries over the prompt (rows are position-major: row r is
    position T - w + r // group), summed over rows (``select/summary_update``; a causal softmax: max, exp, one
    reciprocal per row, one product). H2O's reference accumulates over every prompt query; a window of the
    last w is the one-off cost knob (O(w T) instead of O(T^2)). If T > heavy + recent: per KV head the top
    ``heavy`` of the non-recent slots [0, T - recent) (``protocols.topk``, ``select/topk``), gathered once
    with their scores (top-k values) and re-masked (``select/gather``); the recent window is kept at public
    positions.

    Per step (``update``, after dense attention over the cache with the new token appended):
      1. ``select/summary_update``: scores <- [scores, 0] + this step's weights summed over the query group.
         Local: no communication.
      2. If T > heavy + recent (always, once the budget is reached), ``select/evict``: argmin of the scores
         over the m = T - recent candidate slots (m = heavy + 1 in steady state), then the shift of slots
         [0, m - 1) by c = prefix sum of the one-hot, moving K, V and the scores (w = 2d + 1 per slot), and
         re-masking the m - 1 = heavy shifted slots of K and V (reuse only).
    Cost per step of ``select/evict`` (H = kv_heads, L = ceil(log2 m), M = m rounded up to a power of 2):
      argmin: m - 1 comparisons per head (msb + a bit_select of value and index): (N-1) H (m-1)
      (K + 2(2K - 2 - log2 K) + 1 + 2K) bits, L (2 + log2 K) rounds; its rotation one-hot: (N-1) H log2 M
      bits, 1 round. Shift: one beaver_mul, K (N-1) H (m-1)(1 + w) bits, 1 round. Re-mask: two mask_operand
      in parallel, 2 K (N-1) H (m-1) d bits, 1 round (reuse only). Rounds: L (2 + log2 K) + 3 with reuse,
      L (2 + log2 K) + 2 without. For N = 2, K = 64: 433 bits per comparison. Independent of T: it depends
      on the budget only.
    Leaks: nothing beyond the public budgets and cache lengths; evicted slots and kept positions stay secret
    (the comparisons, products and the rotation one-hot open only masked values and a uniform offset).
    """

    name: ClassVar[str] = "h2o"
    heavy: int = 128
    recent: int = 128
    prompt_window: int | None = 32
    method: str = "auto"  # top-k method at prefill (protocols.topk)

    def __post_init__(self):
        _check_int("heavy", self.heavy, 1)
        _check_int("recent", self.recent, 0)
        if self.prompt_window is not None:
            _check_int("prompt_window", self.prompt_window, 1)
        _check_method(self.method)

    @property
    def budget(self) -> int:
        return self.heavy + self.recent

    def prompt_queries(self, seq_len: int) -> int:
        return seq_len if self.prompt_window is None else min(self.prompt_window, seq_len)

    def prefill(self, session, layer: int, kv: LayerKV, step: dict | None = None) -> LayerKV:
        q = _prompt_queries(kv, self.name)
        T, w = kv.length, self.prompt_queries(kv.length)
        group = q.shape[1] // w
        rows = T - w + np.arange(q.shape[1]) // group
        visible = np.arange(T)[None, :] <= rows[:, None]
        with _scope(session, "select", "summary_update"):
            scores = _prompt_scores(q, kv.keys, 1.0 / np.sqrt(kv.keys.shape[-1]), visible)
        state = _without_queries(kv.state)
        if T <= self.budget:
            state["scores"] = scores
            return LayerKV(kv.keys, kv.values, kv.positions, state)
        n = T - self.recent
        new, top = _keep_topk(kv, scores[:, :n], self.heavy, n, self.method, state)
        new.state["scores"] = concatenate([top, scores[:, n:]], axis=1)
        return new

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        hkv, T = kv.keys.shape[0], kv.length
        with _scope(session, "select", "summary_update"):
            old = kv.state.get("scores")
            if old is None:
                raise ValueError("h2o update needs kv.state['scores'] (run prefill first)")
            fresh = session.zeros((hkv, T - old.shape[1]), frac_bits=old.frac)
            scores = concatenate([old, fresh], axis=1) + _weights_per_head(weights)
        while T > self.budget:
            m = T - self.recent
            kv, scores = _evict_one(kv, scores[:, :m], m, extra=scores)
            T -= 1
        state = dict(kv.state)
        state["scores"] = scores
        return LayerKV(kv.keys, kv.values, kv.positions, state)

    def twin(self, frac_bits: int | None = None, config=None):
        return EvictionTwin(self, frac_bits, config)


# -- TOVA ----------------------------------------------------------------------------------------------------
@register
@dataclass
class TOVAPolicy(KVPolicy):
    """TOVA (Oren et al., 2024, "Transformers are Multi-State RNNs"): a fixed ``budget``; every step the entry
    with the lowest current-step attention (summed over the query group of its KV head) is evicted. No
    state, no recent window: the newest entry is a candidate too.

    Prefill (``setup``): if T > budget, one-shot: the last prompt query's attention over the whole prompt
    (it sees every position, so no causal mask), summed over the query group; per KV head the top ``budget``
    (``select/topk``), gathered once and re-masked (``select/gather``). (TOVA run over the prompt token by
    token would evict T - budget times in sequence; the one-shot keep is what its last step ranks highest.)

    Per step (``update``): if T > budget (always, after the append): ``select/evict`` on m = T = budget + 1
    candidates, w = 2d per slot (K and V), the m - 1 = budget shifted slots re-masked (reuse only).
    Cost per step of ``select/evict`` (H = kv_heads, L = ceil(log2 m), M = m rounded up to a power of 2):
    argmin (N-1) H (m-1)(K + 2(2K - 2 - log2 K) + 1 + 2K) + (N-1) H log2 M bits in L (2 + log2 K) + 1
    rounds; shift K (N-1) H (m-1)(1 + 2d) bits, 1 round; re-mask 2 K (N-1) H (m-1) d bits, 1 round (reuse
    only). Rounds: L (2 + log2 K) + 3 with reuse, L (2 + log2 K) + 2 without.
    Leaks: nothing beyond the public budget and lengths (as H2O).
    """

    name: ClassVar[str] = "tova"
    budget: int = 256
    method: str = "auto"  # top-k method at prefill (protocols.topk)

    def __post_init__(self):
        _check_int("budget", self.budget, 1)
        _check_method(self.method)

    def prompt_queries(self, seq_len: int) -> int:
        return 1 if seq_len > self.budget else 0

    def prefill(self, session, layer: int, kv: LayerKV, step: dict | None = None) -> LayerKV:
        state = _without_queries(kv.state)
        T = kv.length
        if T <= self.budget:
            return LayerKV(kv.keys, kv.values, kv.positions, state)
        q = _prompt_queries(kv, self.name)
        with _scope(session, "select", "similarity"):
            scores = _prompt_scores(q, kv.keys, 1.0 / np.sqrt(kv.keys.shape[-1]))
        new, _ = _keep_topk(kv, scores, self.budget, T, self.method, state)
        return new

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        if kv.length <= self.budget:
            return kv
        scores = _weights_per_head(weights)
        while kv.length > self.budget:  # once per step in steady state (prefill leaves T <= budget)
            more = kv.length - 1 > self.budget
            kv, scores = _evict_one(kv, scores, kv.length, extra=scores if more else None)
        return kv

    def twin(self, frac_bits: int | None = None, config=None):
        return EvictionTwin(self, frac_bits, config)


# -- SnapKV --------------------------------------------------------------------------------------------------
@register
@dataclass
class SnapKVPolicy(KVPolicy):
    """SnapKV (Li et al., 2024): one-shot at prefill, per KV head, from an observation window of the last
    ``window`` prompt queries; keeps ``budget`` entries (the window plus the top budget - window of the
    prefix) and never evicts afterwards.

    Prefill (``setup``), if T > budget, with n = T - window prefix slots:
      1. ``select/similarity``: A = softmax(q K_prefix^T * scale) of the window queries
         (kv_heads, group * window, n), summed over the window queries and the query group. No causal mask
         is needed: every window query comes after every prefix key. (SnapKV's reference normalises over the
         prefix plus the causally visible window keys; normalising over the prefix only is cheaper and needs
         no mask.)
         Pooling: average pool along positions, kernel ``kernel`` (odd), stride 1, zero padding
         kernel // 2, i.e. a sum of ``kernel`` shifted copies (local); the division by ``kernel`` is skipped
         since top-k is invariant under a positive factor (and it would cost a truncation).
      2. ``select/topk``: per KV head top-k, k = budget - window, over the n prefix slots.
      3. ``select/gather``: one-hot @ K_prefix and one-hot @ V_prefix (reusable cache: only the one-hot is
         opened, K (N-1) H k n bits each), the window's rows appended at their public positions (free), the
         k gathered rows re-masked once (new content: 2 K (N-1) H k d bits).
    Per step: nothing beyond dense attention over the kept cache, so a step costs exactly what full
    attention over a cache of ``budget`` entries costs.
    Leaks: nothing beyond the public budget and window; kept positions stay secret.
    """

    name: ClassVar[str] = "snapkv"
    budget: int = 1024
    window: int = 32
    kernel: int = 7
    method: str = "auto"  # top-k method (protocols.topk)

    def __post_init__(self):
        _check_int("window", self.window, 1)
        _check_int("budget", self.budget, self.window + 1)
        _check_int("kernel", self.kernel, 1)
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (same-length pooling), got {self.kernel}")
        _check_method(self.method)

    def prompt_queries(self, seq_len: int) -> int:
        return self.window if seq_len > self.budget else 0

    def prefill(self, session, layer: int, kv: LayerKV, step: dict | None = None) -> LayerKV:
        state = _without_queries(kv.state)
        T = kv.length
        if T <= self.budget:
            return LayerKV(kv.keys, kv.values, kv.positions, state)
        q = _prompt_queries(kv, self.name)
        n = T - self.window
        with _scope(session, "select", "similarity"):
            votes = _prompt_scores(q, _rows(kv.keys, 0, n), 1.0 / np.sqrt(kv.keys.shape[-1]))
            pooled = _sum_pool(votes, self.kernel)
        new, _ = _keep_topk(kv, pooled, self.budget - self.window, n, self.method, state)
        return new

    def twin(self, frac_bits: int | None = None, config=None):
        return EvictionTwin(self, frac_bits, config)


def _sum_pool(x: SharedTensor, kernel: int) -> SharedTensor:
    """Sum of ``kernel`` shifted copies along the last axis with zero padding (kernel x average pool): local."""
    r = kernel // 2
    if r == 0:
        return x
    lead, n = x.shape[:-1], x.shape[-1]
    pad = x.session.zeros(lead + (r,), frac_bits=x.frac)
    padded = concatenate([pad, x, pad], axis=-1)
    out = padded[..., 0:n]
    for i in range(1, kernel):
        out = out + padded[..., i : i + n]
    return out


# -- plaintext twins -----------------------------------------------------------------------------------------
@dataclass
class TwinCache:
    """A plaintext cache: keys and values (kv_heads, T, d), original positions (kv_heads, T) per KV head (heads
    keep different entries), the next position to append, and the policy's state (e.g. "scores", and
    "scores_err" when the twin tracks error bounds)."""

    keys: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    next_position: int
    state: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.keys.shape[1]

    def kept(self) -> list[np.ndarray]:
        """Sorted original positions kept by each KV head."""
        return [np.sort(p) for p in self.positions]


def _np_softmax(x: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    if visible is not None:
        x = np.where(visible, x, -np.inf)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _fxp_weights(q: np.ndarray, keys: np.ndarray, scale: float, visible, f: int, config):
    """The fixed-point twin (``protocols.nonlinear.Twin``) of the MPC weights: q K^T truncated, times the
    encoded scale truncated, then softmax (or the causal softmax of ``_causal_softmax``, step by step).
    Returns a Twin (values at scale f, and a bound in ULPs on how far an MPC run can be)."""
    from protocols.nonlinear import Twin, twin_exp, twin_reciprocal, twin_softmax

    enc = lambda a: np.rint(np.asarray(a) * 2.0**f).astype(np.int64)
    raw = Twin(enc(q) @ enc(keys).swapaxes(-1, -2), 2 * f).trunc(f)
    s = enc(scale)
    x = Twin(raw.v * s, 2 * f, raw.err * s).trunc(f)
    if visible is None:
        return twin_softmax(x, config=config)
    vis = np.broadcast_to(np.asarray(visible, bool), x.v.shape)
    m = np.where(vis, x.v, np.iinfo(np.int64).min).max(axis=-1, keepdims=True)
    m_err = np.where(vis, x.err, 0.0).max(axis=-1, keepdims=True)  # the MPC max is one of its own entries
    d = Twin(np.where(vis, x.v - m, -64 << f), f, np.where(vis, x.err + m_err, 0.0))
    e = twin_exp(d, config).select(vis)
    r = twin_reciprocal(e.sum(axis=-1), config)
    return e * r.expand()


def _np_take(cache: TwinCache, index: np.ndarray, state_keys=()) -> TwinCache:
    """Per-head slot selection: ``index`` (kv_heads, T') of slots to keep, in their new order."""
    def pick(a):
        return np.take_along_axis(a, index[..., None] if a.ndim == 3 else index, axis=1)

    state = dict(cache.state)
    for key in state_keys:
        if key in state:
            state[key] = pick(state[key])
    return TwinCache(pick(cache.keys), pick(cache.values), pick(cache.positions), cache.next_position, state)


def _np_topk_order(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row the k largest, descending, ties to the lower index (the order of topk's max method)."""
    return np.argsort(-scores, axis=-1, kind="stable")[:, :k]


class EvictionTwin:
    """The plaintext twin of an eviction policy: the same decisions on float64 arrays.

    ``prefill(keys, values, prompt_queries=None)`` -> TwinCache (keys/values (kv_heads, T, d), prompt queries
    (kv_heads, group * w, d), position-major rows, w = policy.prompt_queries(T)); ``step(cache, q, k_new,
    v_new)`` -> (cache, context, weights) appends the token (k_new, v_new (kv_heads, 1, d)), attends with q
    (kv_heads, group, d) over the cache (softmax of q K^T / sqrt(d)) and applies ``update``;
    ``cache.kept()`` lists the kept original positions per KV head. Ties go to the lower slot, as in the MPC
    protocols; slots after a prefill top-k are ordered as the top-k's deterministic methods order them.

    With ``frac_bits`` set, the twin also bounds how far the MPC's scores can be from its own: per weight,
    |exact - fixed-point twin| + the fixed-point twin's ULP bound (``protocols.nonlinear.Twin``, default
    approximation config unless ``config`` is given), carried through sums, pooling and evictions. Every
    decision is then logged in ``decisions`` as (kind, certain): certain when the chosen entries' score
    intervals are strictly separated from the others', so no MPC run within the bounds can decide otherwise.
    """

    def __init__(self, policy: KVPolicy, frac_bits: int | None = None, config=None):
        self.policy = policy
        self.frac_bits = frac_bits
        self.config = config
        self.decisions: list[tuple[str, bool]] = []

    # -- scores and decisions --------------------------------------------------------------------------------
    def _weights(self, q, keys, visible=None):
        """(weights, error bound per weight or None): softmax of q K^T / sqrt(d), optionally masked."""
        scale = 1.0 / np.sqrt(keys.shape[-1])
        w = _np_softmax(q @ keys.swapaxes(-1, -2) * scale, visible)
        if self.frac_bits is None:
            return w, None
        fx = _fxp_weights(q, keys, scale, visible, self.frac_bits, self.config)
        return w, np.abs(w - fx.real()) + fx.err * 2.0**-self.frac_bits

    def _log_topk(self, scores, err, top):
        if err is None:
            return
        kept = np.zeros(scores.shape, bool)
        np.put_along_axis(kept, top, True, axis=1)
        lo = np.where(kept, scores - err, np.inf).min(axis=1)
        hi = np.where(kept, -np.inf, scores + err).max(axis=1)
        self.decisions.append(("topk", bool(np.all(lo > hi))))

    def _log_argmin(self, scores, err, slot):
        if err is None:
            return
        chosen = np.zeros(scores.shape, bool)
        chosen[np.arange(len(slot)), slot] = True
        hi = np.where(chosen, scores + err, -np.inf).max(axis=1)
        lo = np.where(chosen, np.inf, scores - err).min(axis=1)
        self.decisions.append(("argmin", bool(np.all(hi < lo))))

    @property
    def certain(self) -> bool:
        """Every logged decision certain (needs ``frac_bits``)."""
        return all(ok for _, ok in self.decisions)

    # -- the policy's steps --------------------------------------------------------------------------------
    def prefill(self, keys, values, prompt_queries=None) -> TwinCache:
        keys, values = np.asarray(keys, np.float64), np.asarray(values, np.float64)
        hkv, T, d = keys.shape
        cache = TwinCache(keys, values, np.tile(np.arange(T), (hkv, 1)), T)
        p = self.policy
        w = p.prompt_queries(T)
        q = None if not w else np.asarray(prompt_queries, np.float64)
        keep = ("scores", "scores_err")
        if isinstance(p, H2OPolicy):
            rows = T - w + np.arange(q.shape[1]) // (q.shape[1] // w)
            weights, err = self._weights(q, keys, np.arange(T)[None, :] <= rows[:, None])
            scores = weights.sum(axis=1)
            cache.state["scores"] = scores
            if err is not None:
                err = cache.state["scores_err"] = err.sum(axis=1)
            if T <= p.budget:
                return cache
            n = T - p.recent
            top = _np_topk_order(scores[:, :n], p.heavy)
            self._log_topk(scores[:, :n], None if err is None else err[:, :n], top)
            index = np.concatenate([top, np.tile(np.arange(n, T), (hkv, 1))], axis=1)
            return _np_take(cache, index, keep)
        if isinstance(p, TOVAPolicy):
            if T <= p.budget:
                return cache
            weights, err = self._weights(q, keys)
            scores = weights.sum(axis=1)
            top = _np_topk_order(scores, p.budget)
            self._log_topk(scores, None if err is None else err.sum(axis=1), top)
            return _np_take(cache, top)
        if isinstance(p, SnapKVPolicy):
            if T <= p.budget:
                return cache
            n, r = T - p.window, p.kernel // 2
            weights, err = self._weights(q, keys[:, :n])
            pool = lambda a: sum(np.pad(a, ((0, 0), (r, r)))[:, i : i + n] for i in range(p.kernel))
            pooled = pool(weights.sum(axis=1))
            top = _np_topk_order(pooled, p.budget - p.window)
            self._log_topk(pooled, None if err is None else pool(err.sum(axis=1)), top)
            return _np_take(cache, np.concatenate([top, np.tile(np.arange(n, T), (hkv, 1))], axis=1))
        raise TypeError(f"no twin for {type(p).__name__}")

    def step(self, cache: TwinCache, q, k_new, v_new):
        hkv = cache.keys.shape[0]
        state = dict(cache.state)
        for key in ("scores", "scores_err"):
            if key in state:
                state[key] = np.concatenate([state[key], np.zeros((hkv, 1))], axis=1)
        cache = TwinCache(np.concatenate([cache.keys, np.asarray(k_new, np.float64)], axis=1),
                          np.concatenate([cache.values, np.asarray(v_new, np.float64)], axis=1),
                          np.concatenate([cache.positions, np.full((hkv, 1), cache.next_position)], axis=1),
                          cache.next_position + 1, state)
        weights, err = self._weights(np.asarray(q, np.float64), cache.keys)
        context = weights @ cache.values
        return self.update(cache, weights, err), context, weights

    def update(self, cache: TwinCache, weights: np.ndarray, err: np.ndarray | None = None) -> TwinCache:
        """Eviction after attention with ``weights`` (kv_heads, group, T) (``err``: their error bounds)."""
        p = self.policy
        per_head = weights.sum(axis=1)
        per_err = None if err is None else err.sum(axis=1)
        if isinstance(p, H2OPolicy):
            state = {**cache.state, "scores": cache.state["scores"] + per_head}
            if per_err is not None and "scores_err" in state:
                state["scores_err"] = state["scores_err"] + per_err
            cache = TwinCache(cache.keys, cache.values, cache.positions, cache.next_position, state)
            while cache.length > p.budget:
                m = cache.length - p.recent
                scores, errs = cache.state["scores"][:, :m], cache.state.get("scores_err")
                slot = np.argmin(scores, axis=1)
                self._log_argmin(scores, None if errs is None else errs[:, :m], slot)
                cache = _np_take(cache, self._without(cache.length, slot), ("scores", "scores_err"))
            return cache
        if isinstance(p, TOVAPolicy):
            while cache.length > p.budget:
                slot = np.argmin(per_head, axis=1)
                self._log_argmin(per_head, per_err, slot)
                index = self._without(cache.length, slot)
                cache, per_head = _np_take(cache, index), np.take_along_axis(per_head, index, axis=1)
                per_err = None if per_err is None else np.take_along_axis(per_err, index, axis=1)
            return cache
        return cache

    @staticmethod
    def _without(T: int, slot: np.ndarray) -> np.ndarray:
        """Per head, the slots [0, T) in order without the given one."""
        return np.stack([np.delete(np.arange(T), s) for s in slot])
