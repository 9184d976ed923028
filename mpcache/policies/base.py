"""The KV-policy interface.

A policy is a small dataclass (hyperparameters as validated fields) with four hooks, each given the session
and the layer index and returning new per-layer state; per-layer state is passed in and returned, never kept
on the policy object:

* ``prefill(session, layer, kv) -> kv``: one-off work at prefill (e.g. static eviction), in the ``setup``
  scope;
* ``select(session, layer, q, kv) -> kv``: the cache that this step attends over (e.g. a dynamic selection),
  in the ``step`` scope; scopes named ``select/...`` by convention;
* ``update(session, layer, kv, weights) -> kv``: what the cache holds for the next step, given this step's
  attention weights (e.g. H2O or TOVA eviction);
* ``twin``: the plaintext numpy twin of the same decisions, for tests.

``LayerKV`` holds the secret keys and values of one layer, shape (kv_heads, T, head_dim), as reusable masked
operands or plain sharings, and the public original positions of the T entries when they are public.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mpsim import SharedTensor, concatenate
from protocols.reuse import MaskedOperand


@dataclass
class LayerKV:
    keys: object  # MaskedOperand or SharedTensor, (kv_heads, T, d)
    values: object
    positions: np.ndarray | None = None  # public original positions of the T entries, when public

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
        return LayerKV(grow(self.keys, k_new), grow(self.values, v_new), positions)

    def take(self, index) -> "LayerKV":
        """Keep the entries at public ``index`` (a compaction: free; masks move with their content)."""
        index = np.asarray(index, dtype=np.int64)

        def pick(cache):
            return cache.take(index, axis=1) if isinstance(cache, MaskedOperand) else cache[:, index]

        return LayerKV(pick(self.keys), pick(self.values),
                       None if self.positions is None else self.positions[index])


@dataclass
class KVPolicy:
    name: ClassVar[str] = "abstract"

    def prefill(self, session, layer: int, kv: LayerKV) -> LayerKV:
        return kv

    def select(self, session, layer: int, q, kv: LayerKV) -> LayerKV:
        return kv

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        return kv

    def twin(self):
        raise NotImplementedError


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
