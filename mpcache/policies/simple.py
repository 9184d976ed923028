"""Policies with public decisions: full attention and StreamingLLM (attention sinks plus a recent window)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import KVPolicy, LayerKV, register


@register
@dataclass
class FullPolicy(KVPolicy):
    """No eviction: every step attends over the whole cache."""

    name: ClassVar[str] = "full"

    def twin(self):
        return lambda positions, **_: np.asarray(positions)


@register
@dataclass
class StreamingPolicy(KVPolicy):
    """StreamingLLM (Xiao et al., ICLR 2024): keep the first ``sinks`` tokens and the ``window`` most recent.

    Positions are public, so eviction is a compaction (``LayerKV.take``) and costs nothing: no selection
    protocol runs. The cache is trimmed at prefill and after every step.
    """

    name: ClassVar[str] = "streaming"
    sinks: int = 4
    window: int = 252

    def __post_init__(self):
        for name, value, low in (("sinks", self.sinks, 0), ("window", self.window, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"streaming needs an integer {name} >= {low}, got {value!r}")

    def keep(self, length: int) -> np.ndarray:
        """Indices (into a cache of ``length`` entries) that stay: the sinks and the most recent window."""
        if length <= self.sinks + self.window:
            return np.arange(length)
        return np.concatenate([np.arange(self.sinks), np.arange(length - self.window, length)])

    def prefill(self, session, layer: int, kv: LayerKV, step: dict | None = None) -> LayerKV:
        return kv.take(self.keep(kv.length))

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        return kv.take(self.keep(kv.length))

    def twin(self):
        return lambda positions, **_: np.asarray(positions)[self.keep(len(positions))]
