"""The KV-policy interface.

A policy is a small dataclass (hyperparameters as validated fields) with four hooks, each given the session
and the layer index and returning new per-layer state; per-layer state is passed in and returned, never kept
on the policy object:

* ``prefill(session, layer, kv, step) -> kv``: one-off work at prefill (e.g. static eviction), in the ``setup``
  scope; ``step`` is a dict shared by the layers of one prefill, in layer order (as ``attend``'s is by the
  layers of one decode step): the place for cross-layer state such as a static index a later layer reuses.
  None (a layer prefilled alone) is an empty dict of its own;
* ``prompt_queries(seq_len) -> int``: how many of the prompt's last queries ``prefill`` needs (for
  attention-based prefill eviction such as SnapKV or MPCache's look-once static eviction); ``prepare`` then
  shares them as ``kv.state["prompt_queries"]``, shape (kv_heads, group * w, d): the query rows of the w last
  prompt positions, grouped by KV head like decode queries, position-major (row r is query head
  kv * group + r % group at prompt position T - w + r // group);
* ``attend(session, layer, q, kv, scale, step) -> (context, weights)``: this step's attention for the query
  q (kv_heads, group, d) over the cache; the default is dense attention over every entry
  (:func:`dense_attention`); dynamic-selection policies override it (scopes ``select/...`` for the selection,
  ``attention/...`` for the attention itself). ``step`` is a dict shared by all layers of one decode step
  and empty at its start: the only place for cross-layer state such as shared selection indices;
* ``update(session, layer, kv, weights) -> kv``: what the cache holds for the next step, given this step's
  attention weights (e.g. H2O or TOVA eviction);
* ``twin``: the plaintext numpy twin of the same decisions, for tests.

``LayerKV`` holds the secret keys and values of one layer, shape (kv_heads, T, head_dim), as reusable masked
operands or plain sharings, the public original positions of the T entries when they are public, and a
``state`` dict for the policy's own per-layer state (e.g. accumulated attention, cluster summaries).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from mpsim import SharedTensor, concatenate
from protocols.reuse import MaskedOperand


@dataclass
class LayerKV:
    keys: object  # MaskedOperand or SharedTensor, (kv_heads, T, d)
    values: object
    positions: np.ndarray | None = None  # public original positions of the T entries, when public
    state: dict = field(default_factory=dict)  # the policy's own per-layer state

    @property
    def length(self) -> int:
        return self.keys.shape[1]

    def append(self, k_new: SharedTensor, v_new: SharedTensor) -> "LayerKV":
        """The cache with one new token (position = last + 1); a reusable cache masks only the new rows."""
        def grow(cache, rows):
            if isinstance(cache, MaskedOperand):
                return cache.append(rows, axis=1)
            return concatenate([cache, rows], axis=1)

        positions = None
        if self.positions is not None:
            nxt = int(self.positions.max()) + 1 if self.positions.size else 0
            positions = np.append(self.positions, np.array([nxt], dtype=self.positions.dtype))
        return LayerKV(grow(self.keys, k_new), grow(self.values, v_new), positions, dict(self.state))

    def take(self, index) -> "LayerKV":
        """Keep the entries at public ``index`` (a compaction: free; masks move with their content)."""
        index = np.asarray(index, dtype=np.int64)

        def pick(cache):
            return cache.take(index, axis=1) if isinstance(cache, MaskedOperand) else cache[:, index]

        return LayerKV(pick(self.keys), pick(self.values),
                       None if self.positions is None else self.positions[index], dict(self.state))


@dataclass
class KVPolicy:
    name: ClassVar[str] = "abstract"

    def prefill(self, session, layer: int, kv: LayerKV, step: dict | None = None) -> LayerKV:
        return kv

    def prompt_queries(self, seq_len: int) -> int:
        return 0

    def attend(self, session, layer: int, q, kv: LayerKV, scale: float, step: dict):
        return dense_attention(session, q, kv, scale)

    def update(self, session, layer: int, kv: LayerKV, weights) -> LayerKV:
        return kv

    def twin(self):
        raise NotImplementedError


def dense_attention(session, q, kv: LayerKV, scale: float):
    """softmax(q K^T * scale) V over every cache entry; q is (kv_heads, group, d). Returns (context, weights)."""
    import protocols as P

    with session.scope("attention"):
        with session.scope("qk"):
            scores = q @ kv.keys.swapaxes(-1, -2)
        with session.scope("softmax"):
            weights = P.softmax(scores * scale, axis=-1)
        with session.scope("av"):
            return weights @ kv.values, weights


POLICIES: dict[str, type[KVPolicy]] = {}


def register(cls: type[KVPolicy]) -> type[KVPolicy]:
    if cls.name in POLICIES:
        raise ValueError(f"policy {cls.name!r} registered twice")
    POLICIES[cls.name] = cls
    return cls


def split_specs(text: str) -> list[str]:
    """``"full,mpcache:keep_ratio=0.3,cluster_sizes=16/8"`` -> ``["full", "mpcache:keep_ratio=0.3,cluster_sizes=16/8"]``:
    commas separate policies, and a piece with ``=`` but no ``:`` is one more parameter of the policy before it."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if "=" in piece and ":" not in piece:
            if not specs or ":" not in specs[-1]:
                raise ValueError(f"bad policy list {text!r}: parameter {piece!r} follows no policy:NAME=VALUE")
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def _parse_value(name: str, text: str, default):
    """``text`` read as the type of the field's default: bool, int, float, str, tuple (``16/8``) or None."""
    low = text.strip().lower()
    if low == "none":
        return None
    if isinstance(default, bool):
        if low in ("true", "1", "on", "yes"):
            return True
        if low in ("false", "0", "off", "no"):
            return False
        raise ValueError(f"{name}={text!r}: expected true or false")
    if isinstance(default, tuple):
        return tuple(_parse_value(name, part, default[0] if default else 0.0) for part in text.split("/"))
    if default is None:  # an optional field: an int if it reads as one, else a float
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        raise ValueError(f"{name}={text!r}: expected a number or none")
    try:
        if isinstance(default, (int, float)):
            return type(default)(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected {'an integer' if isinstance(default, int) else 'a number'}") from None
    return text.strip()


def policy_from_spec(spec: str) -> KVPolicy:
    """A policy from ``NAME`` or ``NAME:FIELD=VALUE,FIELD=VALUE`` (tuples as ``32/16``), e.g.
    ``mpcache:keep_ratio=0.2,cluster_sizes=16/8``; unknown fields and bad values are one-line errors that
    list the policy's fields."""
    name, _, params_text = spec.partition(":")
    name = name.strip()
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; registered: {', '.join(sorted(POLICIES))}")
    cls = POLICIES[name]
    defaults = {f.name: f.default for f in fields(cls) if f.init}
    listed = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "(none)"
    params = {}
    for item in filter(None, (i.strip() for i in params_text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in defaults:
            raise ValueError(f"policy {name}: bad parameter {item!r}; its parameters (defaults): {listed}")
        try:
            params[key] = _parse_value(key, value, defaults[key])
        except ValueError as err:
            raise ValueError(f"policy {name}: {err}; its parameters (defaults): {listed}") from None
    return cls(**params)


def get_policy(name: str, **params) -> KVPolicy:
    try:
        return POLICIES[name](**params)
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; registered: {', '.join(sorted(POLICIES))}") from None
