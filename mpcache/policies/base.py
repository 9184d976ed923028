"""The KV-policy interface.

A policy is a small dataclass (hyperparameters as validated fields) with four hooks, each given the session
and the layer index and returning new per-layer state; per-layer state is passed in and returned, never kept
on the policy object:

* ``prefill(session, layer, kv) -> kv``: one-off work at prefill (e.g. static eviction), in the ``setup``
  scope;
* ``prompt_queries(seq_len) -> int``: how many of the prompt's last queries ``prefill`` needs (for
  attention-based prefill eviction such as SnapKV or MPCache's look-once static eviction); ``prepare`` then
  shares them as ``kv.state["prompt_queries"]``, shape (kv_heads, group * w, d): the query rows of the w last
  prompt positions, grouped by KV head like decode queries, position-major (row r is query head
  kv * group + r % group at prompt position T - w + r // group);
* ``attend(session, layer, q, kv, scale, step) -> (context, weights)``: this step's attention for the query
  q (kv_heads, group, d) over the cache; the default is dense attention over every entry
  (:func:`dense_attention`); dynamic-selection policies override it (scopes ``select/...`` for the selection,
  ``attention/...`` for the attention itself). ``step`` is a dict shared by all layers of one decode step
  and empty at its start: the only place for cross-layer state such as shared selection indices;
* ``update(session, layer, kv, weights) -> kv``: what the cache holds for the next step, given this step's
  attention weights (e.g. H2O or TOVA eviction);
* ``twin``: the plaintext numpy twin of the same decisions, for tests.

``LayerKV`` holds the secret keys and values of one layer, shape (kv_heads, T, head_dim), as reusable masked
operands or plain sharings, the public original positions of the T entries when they are public, and a
``state`` dict for the policy's own per-layer state (e.g. accumulated attention, cluster summaries).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mpsim import SharedTensor, concatenate
from protocols.reuse import MaskedOperand


@dataclass
class LayerKV:
    keys: object  # MaskedOperand or SharedTensor, (kv_heads, T, d)
    values: object
    positions: np.ndarray | None = None  # public original positions of the T entries, when public
    state: dict = field(default_factory=dict)  # the policy's own per-layer state

    @property
    def length(self) -> int:
        return self.keys.shape[1]

    def append(self, k_new: SharedTensor, v_new: SharedTensor) -> "LayerKV":
        """The cache with one new token (position = last + 1); a reusable cache masks only the new rows."""
        def grow(cache, rows):
            if isinstance(cache, MaskedOperand):
                return cache.append(rows, axis=1)
            return concatenate([cache, rows], axis=1)

        positions = None
        if self.positions is not None:
            nxt = int(self.positions.max()) + 1 if self.positions.size else 0
            positions = np.append(self.positions, nxt)
        return LayerKV(grow(self.keys, k_new), grow(self.values, v_new), positions, dict(self.state))

    def take(self, index) -> "LayerKV":
        """Keep the entries at public ``index`` (a compaction: free; masks move with their content)."""
        index = np.asarray(index, dtype=np.int64)

        def pick(cache):
            return cache.take(index, axis=1) if isinstance(cache, MaskedOperand) else cache[:, index]

        return LayerKV(pick(self.keys), pick(self.values),
                       None if self.positions is None else self.positions[index], dict(self.state))


@dataclass
class KVPolicy:
    name: ClassVar[str] = "abstract"

    def prefill(self, session, layer: int, kv: LayerKV) -> LayerKV:
        return kv

    def prompt_queries(self, seq_len: int) -> int:
        return 0

    def attend(self, session, layer: int, q, kv: LayerKV, scale: float, step: dict):
        return dense_attention(session, q, kv, scale)

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        return kv

    def twin(self):
        raise NotImplementedError


def dense_attention(session, q, kv: LayerKV, scale: float):
    """softmax(q K^T * scale) V over every cache entry; q is (kv_heads, group, d). Returns (context, weights)."""
    import protocols as P

    with session.scope("attention"):
        with session.scope("qk"):
            scores = q @ kv.keys.swapaxes(-1, -2)
        with session.scope("softmax"):
            weights = P.softmax(scores * scale, axis=-1)
        with session.scope("av"):
            return weights @ kv.values, weights


POLICIES: dict[str, type[KVPolicy]] = {}


def register(cls: type[KVPolicy]) -> type[KVPolicy]:
    if cls.name in POLICIES:
        raise ValueError(f"policy {cls.name!r} registered twice")
    POLICIES[cls.name] = cls
    return cls


def get_policy(name: str, **params) -> KVPolicy:
    try:
        return POLICIES[name](**params)
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; registered: {', '.join(sorted(POLICIES))}") from None
