"""MPCache and its baselines under MPC: model configs, KV policies, and the private decode workload."""
from .decode import DecodeRun, decode_step, prepare
from .models import MODELS, ModelConfig, get_model

__all__ = ["MODELS", "DecodeRun", "ModelConfig", "decode_step", "get_model", "prepare"]
