"""A private decode step: one token through every layer of a model, with secret weights and a secret KV cache.

Per layer (pre-norm transformer): norm, Q/K/V projection, the new token's K/V appended to the cache,
attention over the cache as the KV policy decides (q.K^T, scaling, softmax, .V), output projection,
residual; then norm, MLP with its activation (gated for LLaMA), residual. Grouped-query attention maps each
KV head to ``heads / kv_heads`` query rows, so q.K^T is one batched product per KV head.

Scopes follow the paper's breakdown: ``setup`` (one-off: masking weights and the prefilled KV cache, and any
prefill-time selection of the policy) and ``step``, inside it ``layer{i}`` with ``norm``, ``linear``,
``kv_append``, ``attention/qk``, ``attention/softmax``, ``attention/av``, ``select/...`` (policies) and
``mlp``; ``s.cost(scope="attention/softmax")`` sums a scope over layers.

Reuse: with ``reuse=True`` (default) weights and the KV cache are reusable masked operands
(``protocols.reuse``): their one-off opening is in ``setup`` and each product opens only the activation; a
token appended to the cache is masked and opened once when it is appended. With ``reuse=False`` every
product is a plain Beaver product that opens both operands, so both regimes can be compared.

Every policy registered in ``mpcache.policies`` runs through the same step (``decode_step``); the policy
decides what is attended (``attend``) and what the cache keeps (``prefill``, ``update``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import protocols as P
from mpsim import Session, SharedTensor
from protocols.reuse import MaskedOperand

from .models import ModelConfig
from .policies import KVPolicy, LayerKV, get_policy


@dataclass
class LayerWeights:
    norm1: object
    norm2: object
    w_qkv: object
    w_out: object
    w_up: object
    w_down: object
    w_gate: object = None


@dataclass
class DecodeRun:
    """A session with its model, weights and per-layer caches, ready for decode steps."""

    session: Session
    model: ModelConfig
    policy: KVPolicy
    seq_len: int
    reuse: bool
    attention_only: bool
    weights: list = field(default_factory=list)
    caches: list = field(default_factory=list)
    setup_mark: int = 0
    steps: int = 0


def _secret(session: Session, shape, rng, owner: int, scale: float):
    if not session.backend.has_data:
        return session.placeholder(shape, owner=owner)
    return session.input(rng.normal(scale=scale, size=shape), owner=owner)


def _operand(session, tensor, reuse: bool):
    """The tensor as a reusable masked operand (masked once here unless it already is one) when ``reuse``."""
    if not reuse or isinstance(tensor, MaskedOperand):
        return tensor
    return session.reusable(tensor)


def share_weights(session: Session, model: ModelConfig, rng, reuse: bool, attention_only: bool):
    """One layer's weights, shared by the server (the last party), masked once when ``reuse``."""
    server = session.parties - 1
    w = 1 / np.sqrt(model.hidden)
    weights = LayerWeights(
        norm1=_secret(session, (model.hidden,), rng, server, 0.1) + 1.0,
        norm2=_secret(session, (model.hidden,), rng, server, 0.1) + 1.0,
        w_qkv=_operand(session, _secret(session, (model.hidden, model.q_width + 2 * model.kv_width), rng, server, w),
                       reuse),
        w_out=_operand(session, _secret(session, (model.q_width, model.hidden), rng, server, w), reuse),
        w_up=None, w_down=None,
    )
    if not attention_only:
        weights.w_up = _operand(session, _secret(session, (model.hidden, model.mlp), rng, server, w), reuse)
        weights.w_down = _operand(session, _secret(session, (model.mlp, model.hidden), rng, server,
                                                   1 / np.sqrt(model.mlp)), reuse)
        if model.gated_mlp:
            weights.w_gate = _operand(session, _secret(session, (model.hidden, model.mlp), rng, server, w), reuse)
    return weights


def layer_cache(session: Session, policy: KVPolicy, layer: int, keys, values, reuse: bool, queries=None,
                step: dict | None = None) -> LayerKV:
    """A layer's cache from its secret keys and values (kv_heads, T, d), masked once when ``reuse``, with the
    prompt's last queries the policy asks for (``KVPolicy.prompt_queries``), then the policy's prefill step
    (``step``: the dict shared by the layers of this prefill)."""
    T = keys.shape[1]
    kv = LayerKV(keys=_operand(session, keys, reuse), values=_operand(session, values, reuse), positions=np.arange(T, dtype=np.int32 if T < 2**31 else np.int64))
    if queries is not None:
        kv.state["prompt_queries"] = queries
    return policy.prefill(session, layer, kv, step)


def prepare(session: Session, model: ModelConfig, seq_len: int, policy: KVPolicy | str = "full", reuse: bool = True,
            attention_only: bool = False, seed: int = 0) -> DecodeRun:
    """Share random weights (owner: the last party) and a prefilled KV cache of ``seq_len`` tokens (owner 0:
    the data owner prefilled in plaintext, as the MPCache paper evaluates), mask what is reused, and run the
    policy's prefill-time step, all inside the ``setup`` scope. ``mpcache.prefill`` computes the cache by a
    private prefill instead."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    policy = get_policy(policy) if isinstance(policy, str) else policy
    rng = np.random.default_rng(seed)
    run = DecodeRun(session, model, policy, seq_len, reuse, attention_only, setup_mark=session.mark())
    d, hkv = model.head_dim, model.n_kv_heads
    step: dict = {}  # cross-layer state of the policy's prefill (e.g. a shared static index)
    with session.scope("setup"):
        for layer in range(model.layers):
            with session.scope(f"layer{layer}"):
                run.weights.append(share_weights(session, model, rng, reuse, attention_only))
                keys = _secret(session, (hkv, seq_len, d), rng, 0, 1.0)
                values = _secret(session, (hkv, seq_len, d), rng, 0, 1.0)
                window = min(policy.prompt_queries(seq_len), seq_len)
                queries = None
                if window:
                    group = model.heads // hkv
                    queries = _secret(session, (hkv, group * window, d), rng, 0, 1.0)
                run.caches.append(layer_cache(session, policy, layer, keys, values, reuse, queries, step))
    return run


def _norm(model: ModelConfig, x: SharedTensor, gamma: SharedTensor) -> SharedTensor:
    if model.norm == "layernorm":
        return P.layernorm(x, gamma=gamma)
    return P.rmsnorm(x, gamma=gamma)


def mlp_block(session: Session, model: ModelConfig, w: LayerWeights, x: SharedTensor) -> SharedTensor:
    """x + MLP(norm(x)): the layer's second half (gated for LLaMA), on any number of rows."""
    with session.scope("norm"):
        h = _norm(model, x, w.norm2)
    with session.scope("mlp"):
        up = h @ w.w_up
        act = P.gelu(up) if model.activation == "gelu" else P.silu(up)
        if w.w_gate is not None:
            act = act * (h @ w.w_gate)
        return x + act @ w.w_down


def decode_step(run: DecodeRun, x: SharedTensor | None = None) -> SharedTensor:
    """One token through every layer; returns the output hidden state (1, hidden)."""
    session, model = run.session, run.model
    rng = np.random.default_rng(run.steps + 1)
    if x is None:
        x = _secret(session, (1, model.hidden), rng, 0, 1.0)
    d, hkv, group = model.head_dim, model.n_kv_heads, model.heads // model.n_kv_heads
    step: dict = {}  # cross-layer state of this step (e.g. shared selection indices)
    session.barrier()  # the setup (masked weights and cache) and earlier steps are done when a step starts
    with session.scope("step"):
        for layer in range(model.layers):
            w, kv = run.weights[layer], run.caches[layer]
            with session.scope(f"layer{layer}"):
                with session.scope("norm"):
                    h = _norm(model, x, w.norm1)
                with session.scope("linear"):
                    qkv = h @ w.w_qkv
                q = qkv[:, : model.q_width].reshape(hkv, group, d)
                k_new = qkv[:, model.q_width : model.q_width + model.kv_width].reshape(hkv, 1, d)
                v_new = qkv[:, model.q_width + model.kv_width :].reshape(hkv, 1, d)
                with session.scope("kv_append"):
                    kv = kv.append(k_new, v_new)
                context, weights = run.policy.attend(session, layer, q, kv, 1.0 / np.sqrt(d), step)
                run.caches[layer] = run.policy.update(session, layer, kv, weights)
                with session.scope("linear"):
                    x = x + context.reshape(1, model.q_width) @ w.w_out
                if not run.attention_only:
                    x = mlp_block(session, model, w, x)
    run.steps += 1
    return x
