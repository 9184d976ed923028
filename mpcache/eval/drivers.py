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


def mpcache_for_budget(fraction: float, context_len: int, **overrides) -> MPCachePolicy:
    """MPCache at a budget b = ``budget_tokens(fraction, T)``: static keep ratio rho = clip(2.5 f, 0.3, 1) (the
    paper's 30% at small budgets, more when the budget needs it) unless ``keep_ratio`` is given; finest ratio
    r2 = (b - 2 s) / (rho T), so that the always-kept first and last clusters (s = the finest cluster size)
    count against the budget; coarser ratios max(0.5, min(1, 2 r2)) (the paper's 0.5, never below what the
    next level must choose from) unless ``ratios`` is given. Other overrides (cluster_sizes, share_layers,
    alpha, ...) pass through."""
    b = budget_tokens(fraction, context_len)
    rho = overrides.pop("keep_ratio", min(1.0, max(0.3, 2.5 * fraction)))
    sizes = tuple(overrides.get("cluster_sizes", MPCachePolicy.cluster_sizes))
    kept = max(1, int(rho * context_len))
    r2 = min(1.0, max(1e-6, (b - 2 * sizes[-1]) / kept))  # 1e-6: no cluster beyond the first and last fits
    coarse = max(0.5, min(1.0, 2 * r2))
    params = {"keep_ratio": rho, "ratios": (coarse,) * (len(sizes) - 1) + (r2,)}
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
    """Per layer: ``prefill(keys, values, prompt_queries)`` once, then ``select(q, keys, values, step)`` per
    decode step with the layer's whole cache (new token included, original positions 0..T) -> positions
    (kv_heads, n) or None for every entry. ``step`` is a dict shared by the layers of one step."""

    def prefill(self, keys, values, prompt_queries) -> None:
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

    def prefill(self, keys, values, prompt_queries):
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
    selection over the retained tokens plus every generated one; a follower layer of a sharing group reuses
    its leader's chosen clusters this step (on its own retained tokens, as the MPC policy does)."""

    def __init__(self, policy: MPCachePolicy, layer: int):
        self.policy, self.layer, self.twin = policy, layer, policy.twin()
        self.kept: np.ndarray | None = None  # retained prompt positions (ascending)

    def prefill(self, keys, values, prompt_queries):
        T = keys.shape[1]
        self.kept = np.arange(T) if self.policy.static is None else self.twin.static_keep(keys, prompt_queries)
        self.prompt_len = T

    def select(self, q, keys, values, step):
        index = np.concatenate([self.kept, np.arange(self.prompt_len, keys.shape[1])])
        ks, vs = keys[:, index], values[:, index]
        shared = step.setdefault("mpcache", {})
        lead = shared.get(self.policy.leader(self.layer))
        if self.policy.is_follower(self.layer) and lead is not None and lead[0] == len(index):
            chosen = lead[1]
            positions = (self.twin.tokens(chosen, len(index)) if chosen.size else
                         self.twin(q, ks, vs, 1.0).positions)
        else:
            out = self.twin(q, ks, vs, 1.0 / math.sqrt(keys.shape[-1]))
            chosen, positions = out.chosen, out.positions
            shared[self.layer] = (len(index), chosen)
        return index[positions]


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
        for i, d in enumerate(self.drivers):
            q = queries[i] if queries and queries[i].size else None
            d.prefill(r.keys(i).astype(np.float64), r.values(i).astype(np.float64),
                      None if q is None else q.astype(np.float64))

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
