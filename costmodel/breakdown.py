"""Flat breakdowns of a run's messages: per layer, per protocol or per scope path, in execution order.

``breakdown(source, by, profiles)`` groups the online and offline messages of a Session (or Ledger, or list of
Messages; ``since`` selects the messages after a ``Session.mark()``) and prices every group alone:

* ``by="layer"``: the first scope component of the form ``layerN`` (``layer3`` for
  ``layer3/attention/softmax/...``); messages outside any layer scope form ``(outside layers)``;
* ``by="protocol"``: the innermost scope, i.e. the protocol that sent the message (``msb``, ``beaver_mul``,
  ...), since every registered protocol runs in a scope of its own name; messages sent outside any scope
  form ``(root)``;
* ``by="scope"``: the whole scope path.

Each row: ``group``, ``rounds`` (the distinct communication depths of the group's online messages),
``sent_bytes`` (online bytes each party sent), ``offline_bytes`` (the dealer's), ``messages`` and
``latency_s`` per profile (``costmodel.latency.estimate`` of the group's messages alone; network only).
Rows are in the order their groups first send. A group's rounds are those its messages take on their own:
groups that communicate at the same depth share those rounds, so rounds (and seconds) do not add up to the
run's total, while bytes do.
"""
from __future__ import annotations

import re

from mpsim.ledger import Ledger, cost_of

from .latency import estimate
from .profiles import parse_profile

__all__ = ["GROUPINGS", "breakdown", "group_of"]

GROUPINGS = ("layer", "protocol", "scope")
_LAYER = re.compile(r"layer\d+")


def group_of(scope: str, by: str) -> str:
    """The group a message of scope path ``scope`` belongs to under grouping ``by``."""
    parts = scope.split("/") if scope else []
    if by == "layer":
        return next((p for p in parts if _LAYER.fullmatch(p)), "(outside layers)")
    if by == "protocol":
        return parts[-1] if parts else "(root)"
    if by == "scope":
        return scope or "(root)"
    raise ValueError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}")


def _messages(source, since: int):
    if isinstance(source, list):
        return source[since:], None
    ledger = source if isinstance(source, Ledger) else source.ledger
    return ledger.messages[since:], ledger.parties


def breakdown(source, by: str, profiles=(), *, since: int = 0, parties: int | None = None) -> list[dict]:
    """Rows of ``source``'s messages grouped ``by`` layer, protocol or scope (see the module docstring)."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}")
    messages, known_parties = _messages(source, since)
    parties = parties or known_parties
    if parties is None:
        raise ValueError("a list of messages needs parties=")
    profiles = [parse_profile(p) for p in profiles]
    groups: dict[str, list] = {}
    for m in messages:
        groups.setdefault(group_of(m.scope, by), []).append(m)
    rows = []
    for group, msgs in groups.items():
        c = cost_of(msgs, parties)
        rows.append({"group": group, "rounds": c.rounds, "sent_bytes": list(c.sent) if c.sent else [0.0] * parties,
                     "offline_bytes": c.offline_bytes, "messages": len(msgs),
                     "latency_s": {p.name: estimate(msgs, p).total_s for p in profiles}})
    return rows
