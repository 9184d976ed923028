"""A private prefill: the whole prompt through every layer with secret weights and secret tokens.

Per layer (as ``mpcache.decode``, on T rows at once): norm, Q/K/V projection, causal attention per KV head
(q K^T scaled, the causal softmax of ``mpcache.policies.evict._causal_softmax`` over each row's visible
prefix, .V), output projection, residual, norm, MLP, residual. Its keys and values become the KV cache (secret:
no party ever held them; masked once, in the prefill, when reused) and its last queries the policy's
``prompt_queries``; ``setup`` then holds only the policy's prefill step.

Scopes: ``prefill/layer{i}/...`` (``weights``: masking the weights once, shared with every later decode step;
``norm``, ``linear``, ``attention/qk``, ``attention/softmax``, ``attention/av``, ``mlp``), then ``setup``.

What MPCache's look-once static eviction reuses: its importance is the sum, over the last w prompt queries
and the heads, of the attention those queries pay each token (``select/static/importance``). With the
causal mask and the 1/sqrt(d) scale (``causal=True``, ``static_scale=True``) that is the prefill's own
attention on those rows, so summing it is local and the sub-scope's messages are what the prefill already
paid: :func:`reused_scope` names it, and ``mpcache.answer`` charges the setup without it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mpsim import Session, concatenate

from .decode import DecodeRun, _norm, _secret, layer_cache, mlp_block, share_weights
from .models import ModelConfig, get_model
from .policies import KVPolicy, get_policy
from .policies.evict import _causal_softmax

REUSED_SCOPE = "select/static/importance"


def reusable_policy(policy: KVPolicy) -> tuple[KVPolicy, str | None]:
    """(the policy as a private prefill runs it, the scope of its setup that the prefill already paid or
    None). MPCache's static importance becomes the prefill's attention with ``causal=True``; its scale must
    be the prefill's (``static_scale=True``), else nothing is reused."""
    if getattr(policy, "static", None) and hasattr(policy, "causal") and getattr(policy, "static_scale", False):
        return dataclasses.replace(policy, causal=True), REUSED_SCOPE
    return policy, None


def window_queries(q, window: int):
    """The last ``window`` positions' queries of q (kv_heads, group, T, d), position-major as
    ``KVPolicy.prompt_queries`` documents: row r of a KV head is its query head r % group at position
    T - window + r // group."""
    hkv, group, T, d = q.shape
    return q[:, :, T - window:, :].transpose(0, 2, 1, 3).reshape(hkv, window * group, d)


ROW_BLOCK_ELEMENTS = 2**27  # attention logits per block of query rows: bounds the memory of a long prompt


def _row_blocks(rows: int, width: int):
    """Blocks of query rows whose logits (width per row, all KV heads) stay under ROW_BLOCK_ELEMENTS."""
    size = max(1, ROW_BLOCK_ELEMENTS // max(width, 1))
    return [(lo, min(lo + size, rows)) for lo in range(0, rows, size)]


def prefill_layer(session: Session, model: ModelConfig, w, x, reuse: bool = True, probe: dict | None = None):
    """One layer on the T prompt rows x (T, hidden): (x out, keys, values (kv_heads, T, d), queries
    (kv_heads, group, T, d)); keys and values come back masked once (reusable operands) when ``reuse``, so
    the cache built from them needs no further opening. The attention runs over blocks of query rows (the
    blocks are independent: the same rounds and bytes as one product, as the keys and values are opened once).
    ``probe``, when given, receives the intermediates (``h``, ``weights``: the attention probabilities
    (kv_heads, group T, T), row g T + t for query head g at position t, ``context`` in that layout and
    ``context_rows`` (T, q_width)) for tests."""
    T = x.shape[0]
    d, hkv = model.head_dim, model.n_kv_heads
    group = model.heads // hkv
    with session.scope("norm"):
        h = _norm(model, x, w.norm1)
    with session.scope("linear"):
        qkv = h @ w.w_qkv
    q = qkv[:, : model.q_width].reshape(T, hkv, group, d).transpose(1, 2, 0, 3)
    keys = qkv[:, model.q_width : model.q_width + model.kv_width].reshape(T, hkv, d).transpose(1, 0, 2)
    values = qkv[:, model.q_width + model.kv_width :].reshape(T, hkv, d).transpose(1, 0, 2)
    q_rows = q.reshape(hkv, group * T, d)
    blocks, contexts = [], []
    with session.scope("attention"):
        if reuse:
            keys, values = session.reusable(keys), session.reusable(values)
        for lo, hi in _row_blocks(group * T, hkv * T):
            visible = (np.arange(T)[None, :] <= (np.arange(lo, hi) % T)[:, None]).astype(np.int64)
            with session.scope("qk"):
                logits = q_rows[:, lo:hi] @ keys.swapaxes(-1, -2)
            with session.scope("softmax"):
                weights = _causal_softmax(logits * (1.0 / np.sqrt(d)), visible)
            with session.scope("av"):
                contexts.append(weights @ values)  # (hkv, rows of the block, d)
            if probe is not None:
                blocks.append(weights)
    context = contexts[0] if len(contexts) == 1 else concatenate(contexts, axis=1)
    rows = context.reshape(hkv, group, T, d).transpose(2, 0, 1, 3).reshape(T, model.q_width)
    if probe is not None:
        probe.update(h=h, weights=blocks[0] if len(blocks) == 1 else concatenate(blocks, axis=1), context=context,
                     context_rows=rows)
    with session.scope("linear"):
        x = x + rows @ w.w_out
    if w.w_up is not None:
        x = mlp_block(session, model, w, x)
    return x, keys, values, q


def private_prefill(session: Session, model: ModelConfig | str, prompt_len: int, policy: KVPolicy | str = "full",
                    reuse: bool = True, attention_only: bool = False, seed: int = 0) -> DecodeRun:
    """Prefill a secret prompt of ``prompt_len`` tokens (embeddings input by party 0) privately, then build each
    layer's cache and run the policy's prefill step (``setup``); returns the run, ready for decode steps."""
    if prompt_len < 1:
        raise ValueError(f"prompt_len must be positive, got {prompt_len}")
    policy = get_policy(policy) if isinstance(policy, str) else policy
    model = get_model(model) if isinstance(model, str) else model
    rng = np.random.default_rng(seed)
    run = DecodeRun(session, model, policy, prompt_len, reuse, attention_only, setup_mark=session.mark())
    layers = []
    with session.scope("prefill"):
        x = _secret(session, (prompt_len, model.hidden), rng, 0, 1.0)
        for layer in range(model.layers):
            with session.scope(f"layer{layer}"):
                with session.scope("weights"):
                    w = share_weights(session, model, rng, reuse, attention_only)
                x, keys, values, q = prefill_layer(session, model, w, x, reuse)
                run.weights.append(w)
                layers.append((keys, values, q))
    session.barrier()
    window = min(policy.prompt_queries(prompt_len), prompt_len)
    step: dict = {}  # cross-layer state of the policy's prefill (e.g. a shared static index)
    with session.scope("setup"):
        for layer, (keys, values, q) in enumerate(layers):
            with session.scope(f"layer{layer}"):
                queries = None
                if window:
                    queries = window_queries(q, window)
                run.caches.append(layer_cache(session, policy, layer, keys, values, reuse, queries, step))
    return run
