"""MPCache stage 1, once per layer at prefill: look-once static eviction (``select/static``). The importance of
each prompt token is the attention the prompt's last queries pay it (the softmax a private prefill has already
computed, hence "look-once"); the ``keep_ratio`` most important tokens (or those above a threshold) are kept,
compacted in position order by one secret selection matrix, and re-masked. The count kept is public (a budget),
which tokens stay secret; the threshold mode opens its count and records that leak. Reference: shared/mpcache.md
sections 3 and 8.1."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import protocols as P
from mpsim import SharedTensor

from ..base import LayerKV
from .operands import cumsum_last, is_masked, join_last, operand

STATIC_MODES = (None, "topk", "threshold")
LARGE_PROMPT = 24000  # the reference code's LARGE_TOKEN_NUM: above it the window is 10% of the prompt
CAUSAL_PENALTY = 64.0  # added (negated) to future positions when causal=True: e^-64 is far below one ULP


@dataclass(frozen=True)
class StaticEviction:
    """Static eviction of one layer's prefilled cache (the policy's ``static``, ``keep_ratio``, ``threshold``,
    ``static_window``, ``static_scale``, ``causal``, ``onehot`` and ``topk_method``).

    Importance of token j: I_j = mean over heads of the sum over the last w prompt queries of
    softmax(q K^T)[., j], w = 20% of the prompt (10% above 24000 tokens). One index per layer, shared by
    all heads, as in the reference code. The reference's quirks: no 1/sqrt(d) and no causal mask. We scale
    by 1/sqrt(d) (``scale=True``) because that is the attention the prefill produces, so under a
    private prefill this step is a reuse ("look-once"): its sub-scope ``select/static/importance`` is what
    prefill already paid and can be subtracted; ``scale=False`` gives the reference's logits.
    ``causal=False`` follows the reference (window queries also see later window tokens); ``causal=True``
    adds -64 to those (public, local). The query row r of the window is position T - w + r // group
    (position-major, as ``KVPolicy.prompt_queries`` documents).

    a. logits = Qw @ K^T (K reusable: opens Qw only), scale; softmax over T; I = sum (local).
    b. topk: keep = sum of the one-hots of topk(I, k_s), k_s = int(keep_ratio * T) (public).
       threshold: keep_j = [I_j > thr] (T comparisons; the threshold is on I, mean attention mass per
       head summed over the window; the reference's union rule over single queries and its thresholds
       1e-8..1e-20 lie below the fixed-point resolution 2^-f). The kept count is opened: **a leak**,
       returned as a record for ``kv.state["leaks"]`` so reports can flag it (the count backend, which has
       no data, assumes k_s tokens).
    c. and d.: :meth:`compact`.
    """

    mode: str | None  # "topk" or "threshold"; None: off (the policy then never calls evict)
    keep_ratio: float
    threshold: float
    window_ratio: float | None
    scale: bool
    causal: bool
    onehot: str
    topk_method: str

    def window(self, seq_len: int) -> int:
        """w, the number of last prompt positions whose queries rate the tokens (public)."""
        w = self.window_ratio if self.window_ratio is not None else (0.1 if seq_len > LARGE_PROMPT else 0.2)
        return max(1, int(seq_len * w))

    def budget(self, seq_len: int) -> int:
        """k_s = int(keep_ratio * T), at least one token (public)."""
        return max(1, int(self.keep_ratio * seq_len))

    def causal_mask(self, rows: int, T: int) -> np.ndarray:
        """-64 where a window query row would see a later token (public, added locally)."""
        w = self.window(T)
        pos = T - w + np.arange(rows) // (rows // w)  # position-major rows (see mpcache/policies/base.py)
        return np.where(np.arange(T)[None, :] > pos[:, None], -CAUSAL_PENALTY, 0.0)

    def evict(self, session, kv: LayerKV, queries: SharedTensor) -> tuple[LayerKV, dict | None]:
        """(the kept cache, the leak record of the threshold mode or None). The cache comes back unchanged
        when every token is kept, else compacted with positions None (which tokens stayed is secret)."""
        T = kv.length
        hkv, rows, d = queries.shape
        if rows % self.window(T):
            raise ValueError(f"prompt queries hold {rows} rows per KV head, not a multiple of the window "
                             f"{self.window(T)}")
        heads = hkv * rows // self.window(T)  # query heads: importance is their mean
        reuse = is_masked(kv.keys)
        leak = None
        with session.scope("select"), session.scope("static"):
            with session.scope("importance"):
                logits = queries @ kv.keys.swapaxes(-1, -2)  # (hkv, group w, T)
                if self.scale:
                    logits = logits * (1.0 / math.sqrt(d))
                if self.causal:
                    logits = logits + self.causal_mask(rows, T)
                importance = P.softmax(logits, axis=-1).sum(axis=(0, 1))  # (T,): heads x mean
            if self.mode == "topk":
                k = self.budget(T)
                if k >= T:
                    return kv, None
                with session.scope("topk"):
                    _, oh = P.topk(importance.reshape(1, T), k, method=self.topk_method)
                    keep = oh.sum(axis=1).reshape(T)
            else:
                with session.scope("threshold"):
                    keep = P.b2a_bit(P.gt(importance, self.threshold * heads))
                    count = P.reveal(keep.sum())
                has_data = session.backend.has_data
                k = int(count) if has_data else self.budget(T)
                leak = {"scope": "select/static", "what": "tokens kept by the static threshold",
                        "value": k if has_data else None, "assumed": None if has_data else k}
                if k == 0:
                    raise ValueError(f"static threshold {self.threshold} keeps no token; lower it")
                if k >= T:
                    return kv, leak
            keys, values = self.compact(session, kv, keep, k, reuse)
        return LayerKV(keys, values, None, dict(kv.state)), leak

    def compact(self, session, kv: LayerKV, keep: SharedTensor, k: int, reuse: bool):
        """The k tokens whose secret bit ``keep`` (T,) is 1, in position order: (keys, values), re-masked.

        c. Order-preserving compaction with a public count k (ours): c = prefix sums of keep (local);
           idx_j = keep_j (c_j - 1 - k) + k (one product per token), so kept tokens get their rank and evicted
           ones the dump slot k; one rotation one-hot of idx_j over k + 1 slots per token (log2 T bits each);
           M = its first k columns, transposed: (k, T), row r = the r-th kept token in position order.
        d. [K | V]_kept = M @ [K | V] (one product, opens M once), then re-masked once (new content).
        Scopes ``compact``, ``gather``, ``remask`` (opened inside the caller's ``select/static``).
        """
        d = kv.keys.shape[-1]
        with session.scope("compact"):
            rank = cumsum_last(keep)
            slot = keep * (rank - (1 + k)) + k  # rank - 1 for kept tokens, the dump slot k otherwise
            method = "equality" if self.onehot == "equality" else "rotation"
            M = P.onehot(slot, k + 1, method=method)[:, :k].swapaxes(0, 1)  # (k, T)
        with session.scope("gather"):
            kept = M @ join_last(kv.keys, kv.values)  # (hkv, k, 2d)
        with session.scope("remask"):
            keys = operand(session, kept[..., :d], reuse)
            values = operand(session, kept[..., d:], reuse)
        return keys, values
