"""MPCache stage 2: clustering and cluster summaries (``select/summary_update``). The retained cache is cut
into clusters of public sizes (``cluster_sizes``, default 32 then 16, each a multiple of the next); each level
keeps per cluster the elementwise max and min of its keys and the scoring operands the similarity builds from
them, masked once. Built at prefill from the keys, then kept up to date token by token in ``update`` at a cost
independent of the cache length. The level structure (which clusters exist at length L) is public; the
summaries are secret. Reference: shared/mpcache.md sections 4.2, 4.5 and 8.1."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import protocols as P
from mpsim import SharedTensor, stack

from .operands import append_row, as_tensor, is_masked, operand, replace_row, take


@dataclass(frozen=True)
class Summary:
    """Per-cluster key extrema of one level, (kv_heads, G, d) each, and the scoring operands built from them
    (masked once and updated row by row when the cache is reusable): ``(ct,)`` for the linear similarity,
    ``(rmax, rmin)`` for bound-sign, ``()`` for the literal bound. The finest level covers every cluster
    (the last one possibly partial); coarser levels only complete clusters."""

    rmax: SharedTensor | None  # None: no complete cluster yet (a coarse level of a short cache)
    rmin: SharedTensor | None
    ops: tuple = ()
    reuse: bool = True

    @property
    def G(self) -> int:
        return 0 if self.rmax is None else self.rmax.shape[1]


@dataclass(frozen=True)
class Clustering:
    """Builds and updates the summaries of every level (``sizes``, coarse to fine); ``rows(rmax, rmin)`` gives
    the scoring operands each level carries, before masking (the similarity's :meth:`~.similarity.Similarity.rows`)."""

    sizes: tuple
    rows: Callable[[SharedTensor, SharedTensor], tuple]

    def build(self, session, keys) -> tuple[Summary, ...]:
        """The summaries of a cache ``keys`` (kv_heads, L, d), a masked operand or a sharing.

        Finest level: per cluster max and min of the keys over the cluster axis (``protocols.max`` of the
        stacked [K, -K], one tournament); the partial last cluster is padded with a copy of its own first
        token, which changes neither extremum (the reference pads with the previous cluster's tail, a quirk).
        Coarser levels, complete clusters only: elementwise max/min of their children's. The scoring operands
        of each level (for the linear similarity c = num r_max + (den - num) r_min with alpha = num/den, a
        local integer combination) are masked once when the cache is reusable.
        """
        reuse = is_masked(keys)
        keys = as_tensor(keys)
        hkv, L, d = keys.shape
        sizes = self.sizes
        out: list = [None] * len(sizes)
        with session.scope("select"), session.scope("summary_update"):
            s = sizes[-1]
            G = -(-L // s)
            idx = np.concatenate([np.arange(L), np.full(G * s - L, (G - 1) * s)])
            x = keys[:, idx].reshape(hkv, G, s, d)
            ext = P.max(stack([x, -x]), axis=3)
            out[-1] = (ext[0], -ext[1])
            for lv in range(len(sizes) - 2, -1, -1):
                r = sizes[lv] // sizes[lv + 1]
                Gc = L // sizes[lv]  # complete coarse clusters only
                if Gc == 0 or out[lv + 1] is None:
                    continue
                fmax, fmin = out[lv + 1]
                y = stack([fmax[:, : Gc * r], -fmin[:, : Gc * r]]).reshape(2, hkv, Gc, r, d)
                ext = P.max(y, axis=3)
                out[lv] = (ext[0], -ext[1])
            return tuple(Summary(None, None, (), reuse) if pair is None else
                         Summary(pair[0], pair[1], self._ops(session, pair[0], pair[1], reuse), reuse)
                         for pair in out)

    def update(self, session, summaries: tuple[Summary, ...], keys) -> tuple[Summary, ...]:
        """Fold the newest token (the last row of ``keys``) into the summaries (cost independent of L).

        Finest level: r_max <- max(r_max, k_new), r_min likewise, on the newest cluster (one comparison call
        over 2 kv_heads d elements; exact, and 15 times cheaper than recomputing it from its 16 keys as the
        reference's ``max_in_tensor`` does), or a new cluster starting at k_new (no comparison). Coarser levels
        hold complete clusters only (a partial one is the last cluster, never a candidate): when the newest
        token completes a coarse cluster, its row is the max/min of its children's (2 kv_heads d more
        comparisons, once per 32 steps). Every changed scoring row is masked afresh
        (``MaskedOperand.update``/``append``: kv_heads d opened elements).
        """
        sizes = self.sizes
        p = keys.shape[1] - 1
        k_new = as_tensor(take(keys, [p]))  # (hkv, 1, d)
        out = list(summaries)
        with session.scope("select"), session.scope("summary_update"):
            fine, s = summaries[-1], sizes[-1]
            g = p // s
            if p % s == 0:
                out[-1] = self._with_row(session, fine, g, k_new, k_new)
            else:
                ext = P.maximum(stack([fine.rmax[:, g : g + 1], -fine.rmin[:, g : g + 1]]), stack([k_new, -k_new]))
                out[-1] = self._with_row(session, fine, g, ext[0], -ext[1])
            for lv in range(len(sizes) - 2, -1, -1):
                if (p + 1) % sizes[lv]:
                    break  # a coarser cluster cannot complete when this one does not
                g, r = p // sizes[lv], sizes[lv] // sizes[lv + 1]
                child = out[lv + 1]
                kids = stack([child.rmax[:, g * r : (g + 1) * r], -child.rmin[:, g * r : (g + 1) * r]])
                ext = P.max(kids, axis=2)  # (2, hkv, d)
                out[lv] = self._with_row(session, out[lv], g, ext[0].reshape(ext.shape[1], 1, -1),
                                         -ext[1].reshape(ext.shape[1], 1, -1))
        return tuple(out)

    def _ops(self, session, rmax, rmin, reuse: bool) -> tuple:
        return tuple(operand(session, row, reuse) for row in self.rows(rmax, rmin))

    def _with_row(self, session, summ: Summary, g: int, rmax_row, rmin_row) -> Summary:
        """The summary with cluster g set (appended when g is the next row); scoring rows masked afresh."""
        rows = self.rows(rmax_row, rmin_row)
        if summ.rmax is None:
            if g != 0:
                raise AssertionError(f"summary row {g} of an empty level")
            return Summary(rmax_row, rmin_row, tuple(operand(session, r, summ.reuse) for r in rows), summ.reuse)
        if g == summ.G:
            return Summary(append_row(summ.rmax, rmax_row), append_row(summ.rmin, rmin_row),
                           tuple(append_row(op, row) for op, row in zip(summ.ops, rows)), summ.reuse)
        if g > summ.G:
            raise AssertionError(f"summary row {g} skipped (the level holds {summ.G})")
        return Summary(replace_row(summ.rmax, g, rmax_row), replace_row(summ.rmin, g, rmin_row),
                       tuple(replace_row(op, g, row) for op, row in zip(summ.ops, rows)), summ.reuse)
