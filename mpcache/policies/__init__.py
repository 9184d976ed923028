"""KV-cache policies: small dataclasses with a registry; each has a plaintext numpy twin making the same
decisions (see ``base.py`` for the interface)."""
from .base import POLICIES, KVPolicy, LayerKV, dense_attention, get_policy, register
from .simple import FullPolicy, StreamingPolicy
from .dynamic import NaiveDynamicPolicy, QuestPolicy

__all__ = ["POLICIES", "FullPolicy", "KVPolicy", "LayerKV", "NaiveDynamicPolicy", "QuestPolicy",
           "StreamingPolicy", "dense_attention", "get_policy", "register"]
