"""MPCache stage 5, per step: attending over the selected clusters (``select/gather`` around the
``attention/qk``, ``attention/softmax`` and ``attention/av`` scopes). Given the secret finest-level cluster
indices, attention runs over the first cluster, the k picked ones and the (partial) last cluster, 16 (k + 1) +
|last| tokens instead of L. Three variants: ``"rotated"`` (default, ours: gather the picked clusters' scores
and scatter the weights back, no one-hot opened), ``"cluster"`` (the same through a one-hot masked once) and
``"cluster-kv"``/``"token"`` (gather the keys and values themselves, as the reference does). Reference:
shared/mpcache.md section 4.6."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import protocols as P
from mpsim import concatenate

from ..base import LayerKV
from .operands import join_last, operand, take
from .select import Level

GATHERS = ("rotated", "cluster", "cluster-kv", "token")
ONEHOTS = ("rotation", "equality")


@dataclass(frozen=True)
class Gather:
    """The policy's ``gather`` (``kind``) and ``onehot``.

    ``rotated`` (ours): the candidate scores S_c (h, n_c, g 16) are masked once (opens h g (L - 16 - last)),
    rows picked by ``gather_rotated`` (log2 P bits per index, no one-hot opened; offline K P (16 g + 1) per
    index) and the weights scattered back by ``scatter_rotated`` (opens g 16 k2 per head). The one-hot
    gathers below build the one-hot of the chosen indices (``onehot``: rotation or equality). Ablation
    ``cluster``: the one-hot (kv_heads, k2, n_c) is masked ONCE (transposed, as a reusable operand: opens k2
    n_c elements per KV head), then used twice without reopening: the selected clusters' scores are picked
    from s = q K^T (computed over the whole cache, which with a reusable K opens only q) by S_c @ oh^T (opens
    S_c: group L elements), and after the softmax the weights are scattered back by w @ oh (opens group 16
    k2 elements), so the value product w_full @ V again opens only the weights. Gathering K and V themselves
    (``cluster-kv``, the reference's cluster-level gather: one-hot (kv_heads, k2, G2) @ the cache viewed as
    (kv_heads, G2, 16 d)) opens the one-hot too, and then the attention products must open the gathered
    keys and values (2 x 16 k2 d elements per KV head): several times more for d >= 32. ``token`` gathers
    K and V token by token (one-hot over the candidate tokens: 256 x the cluster one-hot). Candidate
    clusters are all full (only the last cluster can be partial, and it is kept by position), so no padding
    is needed at gather time.
    """

    kind: str
    onehot: str

    def prepare(self, session, index, n_c: int, reuse: bool) -> dict:
        """What attending needs from the secret picks ``index`` (kv_heads, k), built once per selection and
        shared with follower layers: the index, its one-hot over the n_c candidates (None for ``rotated``)
        and, for ``cluster``, the one-hot transposed and masked once (``operand``)."""
        oh = None
        if self.kind != "rotated":
            oh = P.onehot(index, n_c, method=self.onehot)
        out = {"onehot": oh, "index": index}
        if self.kind == "cluster":
            out["operand"] = operand(session, oh.swapaxes(-1, -2), reuse)
        return out

    def attend(self, session, q, kv: LayerKV, scale: float, fine: Level, record: dict):
        """(context, weights) of q over the first, the picked and the last clusters of the finest level."""
        if self.kind == "rotated":
            if not session.scheme.reusable_operands:
                raise ValueError(f"MPCache's rotated gather masks the scores once as a reusable operand, which the "
                                 f"{session.scheme.name} scheme has not; use gather='cluster'")
            return self._rotated(session, q, kv, scale, fine, record)
        if self.kind == "cluster":
            return self._scores(session, q, kv, scale, fine, record)
        return self._gathered(session, q, kv, scale, fine, record)

    def _scores(self, session, q, kv, scale, fine: Level, record):
        """Cluster gather of scores and scatter of weights by the once-masked one-hot (class docstring)."""
        s, G, n_c, k = fine.size, fine.G, fine.n_c, fine.k
        hkv, g = q.shape[0], q.shape[1]
        ohT = record["operand"]  # (hkv, n_c, k): masked once, or a sharing when reuse is off
        with session.scope("attention"), session.scope("qk"):
            s_all = q @ kv.keys.swapaxes(-1, -2)  # (hkv, g, L)
        with session.scope("select"), session.scope("gather"):
            S_c = s_all[:, :, s : s * (G - 1)].reshape(hkv, g, n_c, s).swapaxes(-1, -2).reshape(hkv, g * s, n_c)
            picked = (S_c @ ohT).reshape(hkv, g, s, k).swapaxes(-1, -2).reshape(hkv, g, k * s)
        scores = concatenate([s_all[:, :, :s], picked, s_all[:, :, s * (G - 1) :]], axis=-1)
        with session.scope("attention"), session.scope("softmax"):
            weights = P.softmax(scores * scale, axis=-1)
        with session.scope("select"), session.scope("gather"):
            w_mid = weights[:, :, s : s + k * s].reshape(hkv, g, k, s).swapaxes(-1, -2).reshape(hkv, g * s, k)
            spread = (w_mid @ ohT.swapaxes(-1, -2)).reshape(hkv, g, s, n_c).swapaxes(-1, -2).reshape(hkv, g, n_c * s)
        w_full = concatenate([weights[:, :, :s], spread, weights[:, :, s + k * s :]], axis=-1)
        with session.scope("attention"), session.scope("av"):
            return w_full @ kv.values, weights

    def _rotated(self, session, q, kv, scale, fine: Level, record):
        """Default gather (ours): the candidate scores, masked once as a reusable operand (h, n_c, g s), are
        gathered by the secret cluster indices with ``gather_rotated`` (log2 P bits per index), and after the
        softmax the weights go back with ``scatter_rotated`` (opens the g s k weights); no one-hot is opened."""
        s, G, n_c, k = fine.size, fine.G, fine.n_c, fine.k
        hkv, g = q.shape[0], q.shape[1]
        index = record["index"]  # (hkv, k), integer, in [0, n_c)
        with session.scope("attention"), session.scope("qk"):
            s_all = q @ kv.keys.swapaxes(-1, -2)  # (hkv, g, L): a reusable K opens only q
        with session.scope("select"), session.scope("gather"):
            S_c = s_all[:, :, s : s * (G - 1)].reshape(hkv, g, n_c, s).swapaxes(1, 2).reshape(hkv, n_c, g * s)
            rows = P.gather_rotated(P.mask_operand(S_c), index)  # (hkv, k, g s)
            picked = rows.reshape(hkv, k, g, s).swapaxes(1, 2).reshape(hkv, g, k * s)
        scores = concatenate([s_all[:, :, :s], picked, s_all[:, :, s * (G - 1) :]], axis=-1)
        with session.scope("attention"), session.scope("softmax"):
            weights = P.softmax(scores * scale, axis=-1)
        with session.scope("select"), session.scope("gather"):
            w_mid = weights[:, :, s : s + k * s].reshape(hkv, g, k, s).swapaxes(1, 2).reshape(hkv, k, g * s)
            spread = P.scatter_rotated(w_mid, index, n_c).reshape(hkv, n_c, g, s).swapaxes(1, 2) \
                .reshape(hkv, g, n_c * s)
        w_full = concatenate([weights[:, :, :s], spread, weights[:, :, s + k * s :]], axis=-1)
        with session.scope("attention"), session.scope("av"):
            return w_full @ kv.values, weights

    def _gathered(self, session, q, kv, scale, fine: Level, record):
        """Gather the selected clusters' keys and values (cluster or token one-hot), then attend over
        [first cluster | gathered | last cluster]; fixed parts stay reusable operands."""
        s, G, n_c, k = fine.size, fine.G, fine.n_c, fine.k
        hkv, d = q.shape[0], q.shape[2]
        L = kv.length
        cand = np.arange(s, s * (G - 1))
        kvc = join_last(take(kv.keys, cand), take(kv.values, cand))  # (hkv, n_c s, 2d)
        with session.scope("select"), session.scope("gather"):
            oh = record["onehot"]
            if self.kind == "cluster-kv":
                rows = oh @ kvc.reshape(hkv, n_c, s * 2 * d)  # (hkv, k, s 2d): a local view, masks alike
            else:
                if self.onehot == "equality":
                    tok = record["index"].reshape(hkv, k, 1) * s + np.arange(s).reshape(1, 1, s)
                    oh_tok = P.onehot(tok, n_c * s, method="equality").reshape(hkv, k * s, n_c * s)
                else:  # one-hot of cluster c expanded to its s tokens: oh (x) I_s (local)
                    oh_tok = (oh.reshape(hkv, k, 1, n_c, 1) * np.eye(s, dtype=np.int64).reshape(1, 1, s, 1, s)
                              ).reshape(hkv, k * s, n_c * s)
                rows = oh_tok @ kvc  # (hkv, k s, 2d)
            rows = rows.reshape(hkv, k * s, 2 * d)
        k_g, v_g = rows[..., :d], rows[..., d:]
        fixed = np.concatenate([np.arange(s), np.arange(s * (G - 1), L)])
        k_f, v_f = take(kv.keys, fixed), take(kv.values, fixed)
        with session.scope("attention"):
            with session.scope("qk"):
                scores = concatenate([q @ k_f.swapaxes(-1, -2), q @ k_g.swapaxes(-1, -2)], axis=-1)
            with session.scope("softmax"):
                weights = P.softmax(scores * scale, axis=-1)
            with session.scope("av"):
                nf = len(fixed)
                return weights[..., :nf] @ v_f + weights[..., nf:] @ v_g, weights
