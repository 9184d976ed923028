"""MPCache stage 1, once per layer at prefill: look-once static eviction (``select/static``). The importance of
each prompt token is the attention the prompt's last queries pay it (the softmax a private prefill has already
computed, hence "look-once"); the ``keep_ratio`` most important tokens (or those above a threshold) are kept,
compacted in position order by one secret selection matrix, and re-masked. The count kept is public (a budget),
which tokens stay secret; the threshold mode opens its count and records that leak. A follower layer of a
sharing group reuses its leader's selection (the reference's index sharing). Reference: shared/mpcache.md
sections 3, 5 and 8.1."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import protocols as P
from mpsim import SharedTensor, concatenate

from ..base import LayerKV
from .operands import cumsum_last, is_masked, join_last, operand

STATIC_MODES = (None, "topk", "threshold")
LARGE_PROMPT = 24000  # the reference code's LARGE_TOKEN_NUM: above it the window is 10% of the prompt
CAUSAL_PENALTY = 64.0  # added (negated) to future positions when causal=True: e^-64 is far below one ULP


@dataclass(frozen=True)
class StaticEviction:
    """Static eviction of one layer's prefilled cache (the policy's ``static``, ``keep_ratio``, ``threshold``,
    ``static_window``, ``static_scale``, ``causal``, ``onehot`` and ``topk_method``).

    The window is the last w prompt queries, w = 20% of the prompt (10% above 24000 tokens); A =
    softmax(Qw K^T) per query head; one index per layer, shared by all heads, as in the reference code.
    The reference's quirks: no 1/sqrt(d) and no causal mask. We scale by 1/sqrt(d) by default
    (``scale=True``) because that is the attention the prefill produces, so under a private prefill this step
    is a reuse ("look-once"): its sub-scope ``select/static/importance`` is what prefill already paid and can
    be subtracted; ``scale=False`` gives the reference's unscaled logits. ``causal=False`` follows the
    reference (window queries also see later window tokens); ``causal=True`` adds -64 to those (public,
    local). The query row r of the window is position T - w + r // group (position-major, as
    ``KVPolicy.prompt_queries`` documents).

    a. logits = Qw @ K^T (K reusable: opens Qw only), scale; softmax over T (local sums below).
    b. topk (the fixed-ratio variant, shared/mpcache.md section 3.3): importance I_j = the attention summed
       over the window and the heads; keep = sum of the one-hots of topk(I, k_s), k_s = int(keep_ratio * T)
       (public).
       threshold (the reference's rule, section 3.2): keep_j = OR over the window queries i of
       [Abar_ij > thr], Abar = A averaged over the heads (compared as the head sum against heads * thr:
       w T comparisons, then the OR as a tree of AND gates over the window, ceil(log2 w) rounds of one bit
       per gate). The kept count is opened: **a leak**, returned as a record for ``kv.state["leaks"]`` so
       reports can flag it (the count backend, which has no data, assumes k_s tokens). A threshold below
       one unit of the head-averaged attention (heads thr < 2^-f) is refused: it cannot be told from zero.
       The reference's thresholds (1e-8 to 1e-20 for most datasets) lie below 2^-f at every f this ring
       allows a product at; 1e-3 and 1e-4 (narrativeqa, triviaqa) are representable.
    c. and d.: :meth:`selection` and :meth:`gather`.

    Cross-layer sharing (the reference's): a follower layer takes its leader's selection matrix
    (:meth:`reuse`): the same original positions, no importance, no top-k, no count opened again.
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

    def evict(self, session, kv: LayerKV, queries: SharedTensor) -> tuple[LayerKV, dict | None, dict]:
        """(the kept cache, the leak record of the threshold mode or None, the selection record a sharing
        follower reuses: ``{"T", "k", "select"}``, ``select`` the secret (k, T) selection matrix or None when
        every token is kept). The cache comes back unchanged when every token is kept, else compacted with
        positions None (which tokens stayed is secret)."""
        T = kv.length
        hkv, rows, d = queries.shape
        w = self.window(T)
        if rows % w:
            raise ValueError(f"prompt queries hold {rows} rows per KV head, not a multiple of the window {w}")
        group = rows // w
        heads = hkv * group  # query heads: importance is their mean
        reuse = is_masked(kv.keys)
        leak = None
        with session.scope("select"), session.scope("static"):
            with session.scope("importance"):
                logits = queries @ kv.keys.swapaxes(-1, -2)  # (hkv, group w, T)
                if self.scale:
                    logits = logits * (1.0 / math.sqrt(d))
                if self.causal:
                    logits = logits + self.causal_mask(rows, T)
                weights = P.softmax(logits, axis=-1)
            if self.mode == "topk":
                k = self.budget(T)
                if k >= T:
                    return kv, None, {"T": T, "k": T, "select": None}
                with session.scope("topk"):
                    importance = weights.sum(axis=(0, 1))  # (T,): heads x mean, local
                    _, oh = P.topk(importance.reshape(1, T), k, method=self.topk_method)
                    keep = oh.sum(axis=1).reshape(T)
            else:
                if heads * self.threshold * 2.0 ** session.frac_bits < 1:
                    raise ValueError(f"static threshold {self.threshold} is below one unit 2^-{session.frac_bits} of "
                                     f"the attention averaged over {heads} heads; raise it or the fraction bits")
                with session.scope("threshold"):
                    per_query = weights.reshape(hkv, w, group, T).sum(axis=(0, 2))  # (w, T): heads x Abar, local
                    keep = P.b2a_bit(any_rows(P.gt(per_query, self.threshold * heads)))
                    count = P.reveal(keep.sum())
                has_data = session.backend.has_data
                k = int(count) if has_data else self.budget(T)
                leak = {"scope": "select/static", "what": "tokens kept by the static threshold",
                        "value": k if has_data else None, "assumed": None if has_data else k}
                if k == 0:
                    raise ValueError(f"static threshold {self.threshold} keeps no token; lower it")
                if k >= T:
                    return kv, leak, {"T": T, "k": T, "select": None}
            select = self.selection(session, keep, k)
            keys, values = self.gather(session, kv, select, reuse)
        return LayerKV(keys, values, None, dict(kv.state)), leak, {"T": T, "k": k, "select": select}

    def reuse(self, session, kv: LayerKV, record: dict) -> LayerKV:
        """A sharing follower's static eviction: its leader's selection matrix applied to its own cache, so it
        keeps the same original positions (only the gather and the re-masking: ``select/static/gather`` and
        ``remask``)."""
        if record["T"] != kv.length:
            raise ValueError(f"the leader's static index covers {record['T']} tokens, this layer's cache "
                             f"{kv.length}")
        if record["select"] is None:
            return kv
        with session.scope("select"), session.scope("static"):
            keys, values = self.gather(session, kv, record["select"], is_masked(kv.keys))
        return LayerKV(keys, values, None, dict(kv.state))

    def selection(self, session, keep: SharedTensor, k: int) -> SharedTensor:
        """The secret (k, T) matrix whose row r is the one-hot of the r-th kept token in position order, for
        the secret keep bits ``keep`` (T,) and the public count k (scope ``compact``).

        c. Order-preserving compaction with a public count k (ours): c = prefix sums of keep (local);
           idx_j = keep_j (c_j - 1 - k) + k (one product per token), so kept tokens get their rank and evicted
           ones the dump slot k; one rotation one-hot of idx_j over k + 1 slots per token (log2 T bits each);
           M = its first k columns, transposed.
        """
        with session.scope("compact"):
            rank = cumsum_last(keep)
            slot = keep * (rank - (1 + k)) + k  # rank - 1 for kept tokens, the dump slot k otherwise
            method = "equality" if self.onehot == "equality" else "rotation"
            return P.onehot(slot, k + 1, method=method)[:, :k].swapaxes(0, 1)  # (k, T)

    @staticmethod
    def gather(session, kv: LayerKV, select: SharedTensor, reuse: bool):
        """d. [K | V]_kept = M @ [K | V] (one product, opens M once), then re-masked once (new content):
        (keys, values). Scopes ``gather`` and ``remask``."""
        d = kv.keys.shape[-1]
        with session.scope("gather"):
            kept = select @ join_last(kv.keys, kv.values)  # (hkv, k, 2d)
        with session.scope("remask"):
            keys = operand(session, kept[..., :d], reuse)
            values = operand(session, kept[..., d:], reuse)
        return keys, values


def any_rows(bits: SharedTensor) -> SharedTensor:
    """OR over axis 0 of boolean bits (n, ...) -> (...): a tree of AND gates, a | b = not(not a & not b),
    ceil(log2 n) rounds, n - 1 gates per element in all (an odd row out waits for the next level)."""
    while bits.shape[0] > 1:
        n, half = bits.shape[0], bits.shape[0] // 2
        both = P.not_(P.and_(P.not_(bits[:half]), P.not_(bits[half : 2 * half])))
        bits = both if n % 2 == 0 else concatenate([both, bits[2 * half :]], axis=0)
    return bits[0]
