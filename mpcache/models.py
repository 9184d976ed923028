"""Built-in model configurations (shapes only, no weights, no downloads) and user-defined ones.

Each config fixes what a private decode step costs: layers, attention heads (and KV heads for
grouped-query attention), head dimension, hidden and MLP widths, the MLP activation and the norm.
"""
from __future__ import annotations

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
        raise ValueError(f"unknown model {name!r}; built in: {', '.join(MODELS)}") from None
