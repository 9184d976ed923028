"""KV-cache policies: small dataclasses with a registry; each has a plaintext numpy twin making the same
decisions (see ``base.py`` for the interface)."""
from .base import (POLICIES, KVPolicy, LayerKV, dense_attention, get_policy, policy_from_spec, register,
                   split_specs)
from .simple import FullPolicy, StreamingPolicy
from .mpcache import MPCachePolicy, MPCacheTwin
from .evict import EvictionTwin, H2OPolicy, SnapKVPolicy, TOVAPolicy, TwinCache
from .dynamic import NaiveDynamicPolicy, QuestPolicy

__all__ = ["POLICIES", "EvictionTwin", "FullPolicy", "H2OPolicy", "KVPolicy", "LayerKV",
           "MPCachePolicy", "MPCacheTwin", "NaiveDynamicPolicy",
           "QuestPolicy", "SnapKVPolicy", "StreamingPolicy", "TOVAPolicy", "TwinCache", "dense_attention",
           "get_policy", "policy_from_spec", "register", "split_specs"]
