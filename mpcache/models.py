"""Built-in model configurations (shapes only, no weights, no downloads) and user-defined ones.

Each config fixes what a private decode step costs: layers, attention heads (and KV heads for
grouped-query attention), head dimension, hidden and MLP widths, the MLP activation and the norm.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace

ACTIVATIONS = ("gelu", "silu")
NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    layers: int
    heads: int
    head_dim: int
    hidden: int
    mlp: int
    activation: str
    norm: str
    kv_heads: int | None = None  # grouped-query attention; None means kv_heads == heads
    gated_mlp: bool = False  # LLaMA's SwiGLU: act(x W_gate) * (x W_up), then W_down
    source: str = ""

    def __post_init__(self):
        for field in ("layers", "heads", "head_dim", "hidden", "mlp"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        kv = self.n_kv_heads
        if not isinstance(kv, int) or kv <= 0 or self.heads % kv:
            raise ValueError(f"kv_heads must divide heads ({self.heads}), got {self.kv_heads!r}")

    @property
    def n_kv_heads(self) -> int:
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.n_kv_heads * self.head_dim

    def scaled(self, factor: int, name: str | None = None) -> "ModelConfig":
        """A reduced-width copy (heads, KV heads, hidden and MLP divided by ``factor``) for the share backend."""
        if factor < 1 or self.heads % factor or self.n_kv_heads % factor or self.hidden % factor or self.mlp % factor:
            raise ValueError(f"cannot divide {self.name} by {factor}")
        return replace(self, name=name or f"{self.name}/{factor}", heads=self.heads // factor,
                       kv_heads=None if self.kv_heads is None else self.kv_heads // factor,
                       hidden=self.hidden // factor, mlp=self.mlp // factor)

    def with_layers(self, layers: int) -> "ModelConfig":
        return replace(self, name=f"{self.name}[{layers} layers]", layers=layers)


MODELS: dict[str, ModelConfig] = {
    m.name: m
    for m in (
        ModelConfig("gpt2", 12, 12, 64, 768, 3072, "gelu", "layernorm",
                    source="GPT-2 small (Radford et al. 2019)"),
        ModelConfig("mpcache-proxy", 1, 32, 32, 1024, 4096, "silu", "layernorm",
                    source="the one-layer GPT-2-shaped proxy of the MPCache SPU scripts (mpcache.md 8)"),
        ModelConfig("llama2-7b", 32, 32, 128, 4096, 11008, "silu", "rmsnorm", gated_mlp=True,
                    source="LLaMA-2-7B (Touvron et al. 2023)"),
        ModelConfig("longchat-7b", 32, 32, 128, 4096, 11008, "silu", "rmsnorm", gated_mlp=True,
                    source="LongChat-7B-v1.5-32K (LLaMA-2-7B shape)"),
        ModelConfig("llama3-8b", 32, 32, 128, 4096, 14336, "silu", "rmsnorm", kv_heads=8, gated_mlp=True,
                    source="LLaMA-3-8B (grouped-query attention, 8 KV heads)"),
        ModelConfig("smollm2", 30, 9, 64, 576, 1536, "silu", "rmsnorm", kv_heads=3, gated_mlp=True,
                    source="SmolLM2-135M (LLaMA shape, 3 KV heads): the model of the quality study (mpcache.eval)"),
    )
}


def get_model(name: str) -> ModelConfig:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; built in: {', '.join(MODELS)}; for another model pass its "
                         "Hugging Face config.json with --model-config (load_model_config)") from None


LLAMA_LIKE = ("llama", "mistral", "qwen2")
SUPPORTED_MODEL_TYPES = LLAMA_LIKE + ("gpt2",)
# Keys whose presence means a block our cost model cannot price (checked before the model_type).
_UNPRICEABLE = {
    "num_local_experts": "a mixture-of-experts MLP (routing and experts are not priced)",
    "num_experts": "a mixture-of-experts MLP (routing and experts are not priced)",
    "n_routed_experts": "a mixture-of-experts MLP (routing and experts are not priced)",
    "kv_lora_rank": "multi-head latent attention (a compressed KV cache is not priced)",
    "q_lora_rank": "multi-head latent attention (a compressed KV cache is not priced)",
}


def load_model_config(path_or_dict, name: str | None = None) -> ModelConfig:
    """A :class:`ModelConfig` from a Hugging Face ``config.json``.

    ``path_or_dict`` is the file, a directory holding ``config.json``, or the parsed dict. Supported
    ``model_type``: ``llama``, ``mistral`` and ``qwen2`` (pre-norm RMSNorm, gated MLP ``act(x W_gate) *
    (x W_up)``, grouped-query attention via ``num_key_value_heads``, which defaults to the number of heads
    as in ``transformers``; ``head_dim`` if given, else ``hidden_size // num_attention_heads``; ``hidden_act``
    ``silu``/``swish`` or ``gelu*``) and ``gpt2`` (LayerNorm, ungated MLP of ``n_inner`` or ``4 * n_embd``,
    ``activation_function`` ``gelu*``).

    Ignored, because one decode step's cost in ``decode_step`` does not depend on them: the vocabulary,
    embeddings and LM head (not in the per-layer step), ``rope_theta``/``rope_scaling`` (rotation of the
    query and key by public angles), biases such as Qwen2's Q/K/V bias or ``attention_bias``/``mlp_bias``
    (adding a shared bias is local), norm epsilons, and ``sliding_window``/``use_sliding_window``/
    ``max_window_layers`` (with a cache shorter than the window the model attends to the whole cache, which
    is what is priced; for a longer cache the priced step over-counts the real one).

    Refused with a ValueError: other model types (e.g. ``qwen3``, whose per-head Q/K RMSNorm is not
    priced), mixture-of-experts and multi-head latent attention configs, GPT-2 cross-attention, a missing
    required key, an activation other than SiLU/GELU, and sizes that do not fit (hidden not divisible by
    heads without ``head_dim``, heads not divisible by KV heads).
    """
    if isinstance(path_or_dict, dict):
        cfg, where, default_name = path_or_dict, "(dict)", None
    else:
        file = os.fspath(path_or_dict)
        if os.path.isdir(file):
            file = os.path.join(file, "config.json")
        if not os.path.isfile(file):
            raise ValueError(f"Hugging Face config {file}: no such file")
        with open(file, encoding="utf-8") as f:
            try:
                cfg = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"Hugging Face config {file}: not valid JSON ({e})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"Hugging Face config {file}: expected a JSON object")
        where, default_name = file, os.path.basename(os.path.dirname(os.path.abspath(file)))
    model_type = cfg.get("model_type")

    def fail(message: str) -> ValueError:
        return ValueError(f"Hugging Face config {where} (model_type {model_type!r}): {message}")

    for key, what in _UNPRICEABLE.items():
        if cfg.get(key):
            raise fail(f"{key} means {what}; supported: dense {', '.join(SUPPORTED_MODEL_TYPES)} models")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise fail(f"unsupported model_type; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")

    def need(*keys: str) -> list:
        missing = [k for k in keys if cfg.get(k) is None]
        if missing:
            raise fail(f"missing required key(s) {', '.join(missing)}")
        return [cfg[k] for k in keys]

    def activation(key: str) -> str:
        act = need(key)[0]
        if act in ("silu", "swish"):
            return "silu"
        if isinstance(act, str) and act.startswith("gelu"):
            return "gelu"
        raise fail(f"{key} {act!r} cannot be priced; supported: silu, swish, gelu*")

    if model_type == "gpt2":
        layers, heads, hidden = need("n_layer", "n_head", "n_embd")
        if cfg.get("add_cross_attention"):
            raise fail("add_cross_attention: cross-attention is not priced")
        mlp = cfg.get("n_inner") or 4 * hidden
        act, norm, gated, kv_heads, head_dim = activation("activation_function"), "layernorm", False, None, None
    else:
        layers, heads, hidden, mlp = need("num_hidden_layers", "num_attention_heads", "hidden_size",
                                          "intermediate_size")
        act, norm, gated = activation("hidden_act"), "rmsnorm", True
        kv_heads, head_dim = cfg.get("num_key_value_heads"), cfg.get("head_dim")
    if head_dim is None:
        if not isinstance(hidden, int) or not isinstance(heads, int) or heads <= 0 or hidden % heads:
            raise fail(f"hidden size {hidden!r} is not divisible by {heads!r} heads and no head_dim is given")
        head_dim = hidden // heads
    if kv_heads == heads:
        kv_heads = None
    name = name or cfg.get("_name_or_path") or default_name
    if not name:
        raise fail("no name: the dict has no _name_or_path, pass name=")
    try:
        return ModelConfig(name, layers, heads, head_dim, hidden, mlp, act, norm, kv_heads=kv_heads,
                           gated_mlp=gated, source=f"Hugging Face config {where}")
    except ValueError as e:
        raise fail(str(e)) from None
