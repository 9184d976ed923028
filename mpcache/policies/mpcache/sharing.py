"""MPCache stage 6: cross-layer index sharing. From layer ``share_from`` on (up to ``share_until``), layers go
in groups of ``share_group``: the first layer of a group (the leader) selects, the others (followers) reuse its
selection record from the step dict, so they pay no summary maintenance, similarity, top-k or one-hot
opening, only their own gather. Everything about sharing lives here: who leads whom, whether a layer keeps
summaries, where records are published in the step dict and when a follower may take its leader's.
Reference: shared/mpcache.md section 5 (Implementations A and B)."""
from __future__ import annotations

from dataclasses import dataclass

STEP_KEY = "mpcache"  # the step dict's entry holding this step's selection records, by layer


@dataclass(frozen=True)
class Sharing:
    """The policy's ``share_layers`` (``enabled``), ``share_from`` (``start``), ``share_group`` (``group``)
    and ``share_until`` (``until``).

    The first layer of a group selects, the others reuse its masked one-hot (or indices) from the ``step``
    dict: no summary maintenance, similarity, top-k or one-hot opening; only their own score gather and
    weight scatter (linear in L). ``until=30`` gives the digest's Implementation A (18 of 32 layers select),
    the default its Implementation B (17). Static indices are not shared: the prefill hook has no
    cross-layer channel, so a follower evicts on its own with the same public budget (equal shapes), and the
    shared cluster indices address the follower's own retained tokens.
    """

    enabled: bool
    start: int
    group: int
    until: int | None

    def leader(self, layer: int) -> int:
        """The layer whose selection ``layer`` uses (itself unless it follows in a sharing group)."""
        if not self.enabled or layer < self.start:
            return layer
        if self.until is not None and layer >= self.until:
            return layer
        return self.start + (layer - self.start) // self.group * self.group

    def is_follower(self, layer: int) -> bool:
        return self.leader(layer) != layer

    def keeps_summaries(self, layer: int, static: str | None) -> bool:
        # A follower never scores unless its shapes differ from its leader's, which only a threshold count can do.
        return not self.is_follower(layer) or static == "threshold"

    @staticmethod
    def records(step: dict) -> dict:
        """This step's selection records by layer (created empty at the first layer)."""
        return step.setdefault(STEP_KEY, {})

    def shared(self, records: dict, layer: int, length: int, k: int, can_select: bool) -> dict | None:
        """The leader's record for a follower whose public plan matches it (same cache length and k), marked
        ``shared_from``; None when ``layer`` selects on its own. A follower without a matching record that
        cannot select (no summaries) raises: the layers of a step must run in order."""
        if not self.is_follower(layer):
            return None
        lead = records.get(self.leader(layer))
        if lead is not None and lead.get("L") == length and lead.get("k") == k:
            return dict(lead, shared_from=self.leader(layer))
        if not can_select:
            raise RuntimeError(f"layer {layer} shares layer {self.leader(layer)}'s selection but this step "
                               "holds no matching record; run the layers of a step in order")
        return None
