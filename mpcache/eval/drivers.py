"""Drive a real model's decoding with a KV policy's plaintext twin: which cached tokens each layer attends.

A :class:`PolicySelector` is the runner's ``selector``: one :class:`LayerDriver` per layer, each built on the
policy's twin (the same decisions its MPC version makes, on the same public budgets), fed the layer's real
post-RoPE keys, values and queries. It returns, per step and layer, the original cache positions each KV head
attends (selection per KV group under grouped-query attention: every query head of a group attends the same
tokens, so MPCache's summaries, Quest's pages and the eviction scores are per KV head, with the group's
queries summed or stacked exactly as the MPC policies do).

Budgets: ``policy_for_budget(name, fraction, context_len)`` builds a policy whose per-step attended tokens are
about ``fraction`` of the prompt (sinks and recent tokens included). The reference selectors ``oracle`` (the
exact top-b tokens of the group's summed attention weights, this step) and ``random`` (4 sinks plus a
uniform random sample, redrawn each step, seeded) bracket them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mpcache.policies import get_policy
from mpcache.policies.base import KVPolicy
from mpcache.policies.dynamic import NaiveDynamicPolicy, QuestPolicy, twin_attention
from mpcache.policies.evict import EvictionTwin, H2OPolicy, SnapKVPolicy, TOVAPolicy, TwinCache
from mpcache.policies.mpcache import MPCachePolicy
from mpcache.policies.simple import FullPolicy, StreamingPolicy

REFERENCES = ("oracle", "random")
SINKS = 4  # attention sinks kept by streaming and by the random reference


def budget_tokens(fraction: float, context_len: int) -> int:
    """Tokens attended per step for a budget fraction of the prompt (at least one sink and one recent token)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"budget fraction must be in (0, 1], got {fraction!r}")
    return max(2, int(round(fraction * context_len)))


MIN_PICKS = 4  # finest clusters the dynamic stage chooses at least (beyond the first and last), budget allowing
FINEST_SIZES = (16, 8, 4, 2)  # candidate finest cluster sizes, the reference's 16 first


def cluster_picks(budget: int, size: int) -> int:
    """Finest clusters to choose for ``budget`` attended tokens: the nearest integer to b / s - 3/2 (the
    first cluster, the chosen ones and the last cluster, half full on average, fill the budget), >= 0."""
    return max(0, math.floor(budget / size - 1.5 + 0.5))


def finest_size(budget: int) -> int:
    """The largest of ``FINEST_SIZES`` at which the budget chooses at least ``MIN_PICKS`` clusters (the
    smallest when none does)."""
    return next((s for s in FINEST_SIZES if cluster_picks(budget, s) >= MIN_PICKS), FINEST_SIZES[-1])


def mpcache_for_budget(fraction: float, context_len: int, **overrides) -> MPCachePolicy:
    """MPCache attending about b = ``budget_tokens(fraction, T)`` tokens per step. The rule:

    * static keep ratio rho = clip(2.5 f, 0.3, 1) (the paper's 30% at small budgets, more when the budget
      needs it) unless ``keep_ratio`` is given;
    * cluster sizes (2s, s) unless ``cluster_sizes`` is given: s the largest of 16, 8, 4, 2 at which the
      budget chooses at least ``MIN_PICKS`` = 4 clusters, so the reference's 32/16 whenever the prompt is
      long enough (at 5%: from about 2000 tokens), 8/4 at 5% of 512;
    * k = round(b / s - 3/2) finest clusters chosen (the nearest count: the first cluster, the k chosen and
      the last, half full on average, fill the budget); the finest ratio r2 = (k + 1/2) / G2 with G2 =
      ceil(rho T / s), so that the plan's int(G2 r2) (the reference's rounding down) is k at the prompt's
      length and stays k while the cache grows; with k = 0 only the first and last clusters are attended;
    * coarser ratios max(0.5, min(1, 2 r2)) (the paper's 0.5, never below what the next level must choose
      from) unless ``ratios`` is given.

    Other overrides (share_layers, alpha, ...) pass through."""
    b = budget_tokens(fraction, context_len)
    rho = overrides.pop("keep_ratio", min(1.0, max(0.3, 2.5 * fraction)))
    if "cluster_sizes" in overrides:
        sizes = tuple(overrides.pop("cluster_sizes"))
    else:
        s = finest_size(b)
        sizes = (2 * s, s)
    kept = max(1, int(rho * context_len))
    k = cluster_picks(b, sizes[-1])
    G = -(-kept // sizes[-1])
    r2 = 1e-6 if k == 0 else min(1.0, (k + 0.5) / G)  # 1e-6: int(G r2) = 0, the first and last cluster only
    coarse = max(0.5, min(1.0, 2 * r2))
    params = {"keep_ratio": rho, "cluster_sizes": sizes, "ratios": (coarse,) * (len(sizes) - 1) + (r2,)}
    params.update(overrides)
    return MPCachePolicy(**params)


def policy_for_budget(name: str, fraction: float, context_len: int, **overrides) -> KVPolicy | str:
    """The named policy with its budget hyperparameters set from ``fraction`` of ``context_len`` (overrides
    win); the references ``oracle`` and ``random`` are returned as their names."""
    b = budget_tokens(fraction, context_len)
    if name in REFERENCES:
        return name
    if name == "full":
        return FullPolicy()
    if name == "streaming":
        params = {"sinks": SINKS, "window": max(1, b - SINKS)}
    elif name == "h2o":
        params = {"heavy": b // 2, "recent": b - b // 2}
    elif name == "tova":
        params = {"budget": b}
    elif name == "snapkv":
        params = {"budget": max(b, 33), "window": min(32, b - 1)}
    elif name == "quest":
        page = overrides.get("page", 16)
        params = {"budget": max(2 * page, int(round(b / page)) * page)}
    elif name == "naive-dynamic":
        params = {"budget": b}
    elif name == "mpcache":
        return mpcache_for_budget(fraction, context_len, **overrides)
    else:
        return get_policy(name, **overrides)
    params.update(overrides)
    return get_policy(name, **params)


def prompt_window(policy, context_len: int) -> int:
    """How many of the prompt's last queries the policy's prefill needs (0 for the references)."""
    return 0 if isinstance(policy, str) else int(policy.prompt_queries(context_len))


# -- one driver per layer --------------------------------------------------------------------------------------
class LayerDriver:
    """Per layer: ``prefill(keys, values, prompt_queries, step)`` once, then ``select(q, keys, values, step)``
    per decode step with the layer's whole cache (new token included, original positions 0..T) -> positions
    (kv_heads, n) or None for every entry. ``step`` is a dict shared by the layers of one prefill or one
    decode step, in layer order."""

    def prefill(self, keys, values, prompt_queries, step: dict) -> None:
        pass

    def select(self, q, keys, values, step: dict):
        return None


class StreamingDriver(LayerDriver):
    def __init__(self, policy: StreamingPolicy):
        self.policy = policy

    def select(self, q, keys, values, step):
        keep = self.policy.keep(keys.shape[1])
        return np.tile(keep, (keys.shape[0], 1))


class EvictionDriver(LayerDriver):
    """H2O, TOVA, SnapKV: the twin's cache after this step's append is what the step attends; the twin then
    evicts (``update``) with the float weights of that attention."""

    def __init__(self, policy: KVPolicy):
        self.twin = EvictionTwin(policy)
        self.cache: TwinCache | None = None

    def prefill(self, keys, values, prompt_queries, step):
        self.cache = self.twin.prefill(keys, values, prompt_queries)

    def select(self, q, keys, values, step):
        attended = np.concatenate([self.cache.positions, np.full((keys.shape[0], 1), self.cache.next_position)],
                                  axis=1)
        self.cache, _, _ = self.twin.step(self.cache, q, keys[:, -1:], values[:, -1:])
        return attended


class DynamicDriver(LayerDriver):
    """Quest and naive-dynamic: no eviction; the twin picks from the whole cache each step."""

    def __init__(self, policy: KVPolicy):
        self.run = policy.twin()

    def select(self, q, keys, values, step):
        return self.run(q, keys, values, 1.0 / math.sqrt(keys.shape[-1])).positions


class MPCacheDriver(LayerDriver):
    """MPCache: the static keep set once at prefill (one index per layer, all heads), then the twin's cluster
    selection over the retained tokens plus every generated one. A follower layer of a sharing group takes
    its leader's keep set at prefill and attends its leader's positions at every step, as the MPC policy
    does (the reference's index sharing)."""

    def __init__(self, policy: MPCachePolicy, layer: int):
        self.policy, self.layer, self.twin = policy, layer, policy.twin()
        self.kept: np.ndarray | None = None  # retained prompt positions (ascending)

    def _lead(self, step: dict, what: str):
        """The leader's entry in ``step`` for a follower, None for a layer that decides itself."""
        if not self.policy.is_follower(self.layer):
            return None
        lead = step.get("mpcache", {}).get(self.policy.leader(self.layer))
        if lead is None:
            raise RuntimeError(f"layer {self.layer} shares layer {self.policy.leader(self.layer)}'s {what}, "
                               "which this step does not hold; run the layers in order")
        return lead

    def prefill(self, keys, values, prompt_queries, step):
        T = keys.shape[1]
        if self.policy.static is None:
            self.kept = np.arange(T)
        else:
            lead = self._lead(step, "static index")
            self.kept = lead if lead is not None else self.twin.static_keep(keys, prompt_queries)
            step.setdefault("mpcache", {})[self.layer] = self.kept
        self.prompt_len = T

    def select(self, q, keys, values, step):
        index = np.concatenate([self.kept, np.arange(self.prompt_len, keys.shape[1])])
        lead = self._lead(step, "selection")
        if lead is not None:
            return lead
        out = self.twin(q, keys[:, index], values[:, index], 1.0 / math.sqrt(keys.shape[-1]))
        attended = index[out.positions]
        step.setdefault("mpcache", {})[self.layer] = attended
        return attended


class OracleDriver(LayerDriver):
    """The exact top-b tokens of this step's attention (weights summed over the KV group's query heads)."""

    def __init__(self, budget: int):
        self.budget = budget

    def select(self, q, keys, values, step):
        T = keys.shape[1]
        if T <= self.budget:
            return None
        s = np.einsum("hgd,htd->hgt", q.astype(np.float64), keys.astype(np.float64)) / math.sqrt(keys.shape[-1])
        w = np.exp(s - s.max(axis=-1, keepdims=True))
        w = (w / w.sum(axis=-1, keepdims=True)).sum(axis=1)
        return np.sort(np.argsort(-w, axis=-1, kind="stable")[:, : self.budget], axis=-1)


class RandomDriver(LayerDriver):
    """Sinks plus a uniform sample of the other tokens, redrawn every step (seeded per layer)."""

    def __init__(self, budget: int, seed: int):
        self.budget, self.rng = budget, np.random.default_rng(seed)

    def select(self, q, keys, values, step):
        hkv, T = keys.shape[0], keys.shape[1]
        if T <= self.budget:
            return None
        sinks = min(SINKS, self.budget)
        rest = [np.sort(self.rng.choice(np.arange(sinks, T), self.budget - sinks, replace=False)) for _ in range(hkv)]
        return np.stack([np.concatenate([np.arange(sinks), r]) for r in rest])


def make_driver(policy, layer: int, budget: int, seed: int = 0) -> LayerDriver:
    if policy == "oracle":
        return OracleDriver(budget)
    if policy == "random":
        return RandomDriver(budget, seed * 1009 + layer)
    if isinstance(policy, FullPolicy):
        return LayerDriver()
    if isinstance(policy, StreamingPolicy):
        return StreamingDriver(policy)
    if isinstance(policy, (H2OPolicy, TOVAPolicy, SnapKVPolicy)):
        return EvictionDriver(policy)
    if isinstance(policy, (QuestPolicy, NaiveDynamicPolicy)):
        return DynamicDriver(policy)
    if isinstance(policy, MPCachePolicy):
        return MPCacheDriver(policy, layer)
    raise TypeError(f"no evaluation driver for {type(policy).__name__}; add one in mpcache/eval/drivers.py")


@dataclass
class PolicySelector:
    """The runner's selector for one policy over a whole decode: per-layer drivers, the attended counts, and
    (optionally) per-layer relative errors of the attention output against full attention on the same inputs.
    Call :meth:`prefill` after the runner's prefill, then pass the selector to ``runner.step``."""

    policy: object
    runner: object
    budget: int
    seed: int = 0
    track_error: bool = False
    drivers: list = field(default_factory=list, init=False)
    attended: list = field(default_factory=list, init=False)  # per step: mean attended fraction over layers, heads
    layer_errors: list = field(default_factory=list, init=False)  # per step: (layers,) relative errors
    _step: dict = field(default_factory=dict, init=False)

    def prefill(self, queries: list | None = None) -> None:
        """Build the drivers on the runner's prompt cache; ``queries`` (per layer, position-major rows) default
        to the runner's, i.e. the prompt window of its last prefill."""
        r = self.runner
        queries = r.queries if queries is None else queries
        self.drivers = [make_driver(self.policy, i, self.budget, self.seed) for i in range(r.lm.layers)]
        step: dict = {}  # cross-layer state of the prefill (MPCache's shared static index)
        for i, d in enumerate(self.drivers):
            q = queries[i] if queries and queries[i].size else None
            d.prefill(r.keys(i).astype(np.float64), r.values(i).astype(np.float64),
                      None if q is None else q.astype(np.float64), step)

    def __call__(self, layer: int, q, k_new, v_new):
        if layer == 0:
            self._step = {}
            self._fractions, self._errors = [], []
        keys, values = self.runner.keys(layer), self.runner.values(layer)
        pos = self.drivers[layer].select(q.astype(np.float64), keys.astype(np.float64),
                                         values.astype(np.float64), self._step)
        T = keys.shape[1]
        self._fractions.append(1.0 if pos is None else pos.shape[1] / T)
        if self.track_error:
            self._errors.append(_relative_error(q, keys, values, pos))
        if layer == self.runner.lm.layers - 1:
            self.attended.append(float(np.mean(self._fractions)))
            if self.track_error:
                self.layer_errors.append(np.array(self._errors))
        return pos


def _relative_error(q, keys, values, pos) -> float:
    """||attn over pos - attn over all|| / ||attn over all|| for this layer's inputs (0 when all attended)."""
    if pos is None:
        return 0.0
    hkv, T, d = np.shape(keys)
    scale = 1.0 / math.sqrt(d)
    full = twin_attention(q, keys, values, np.tile(np.arange(T), (hkv, 1)), scale)
    sel = twin_attention(q, keys, values, np.asarray(pos), scale)
    return float(np.linalg.norm(sel - full) / max(np.linalg.norm(full), 1e-30))
