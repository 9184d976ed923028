"""MPCache stage 6: cross-layer index sharing, as in the reference code. From layer ``share_from`` on (up to
``share_until``), layers go in groups of ``share_group``: the first layer of a group (the leader) selects, the
others (followers) reuse its static index at prefill and its dynamic selection at every decode step, so a
follower attends exactly its leader's original positions and pays no importance, static top-k, summary
maintenance, similarity, top-k or one-hot opening, only its own gathers. Everything about sharing lives here:
who leads whom, where records are published in the prefill's and the step's dicts and when a follower may
take its leader's. Reference: shared/mpcache.md section 5 (Implementations A and B)."""
from __future__ import annotations

from dataclasses import dataclass

STEP_KEY = "mpcache"  # the step dict's entry holding this step's selection records, by layer


@dataclass(frozen=True)
class Sharing:
    """The policy's ``share_layers`` (``enabled``), ``share_from`` (``start``), ``share_group`` (``group``)
    and ``share_until`` (``until``).

    The first layer of a group selects, the others reuse its records: at prefill its static selection
    matrix (the follower compacts its own keys and values to the leader's kept positions: one product, no
    importance, no top-k, no count opened), at each decode step its masked one-hot (or indices) from the
    ``step`` dict: no summary maintenance, similarity, top-k or one-hot opening; only their own score gather
    and weight scatter (linear in L). Since both caches hold the same original positions, the shared cluster
    indices address the same tokens in both. ``until=30`` gives the digest's Implementation A (18 of 32
    layers select), the default its Implementation B (17).
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

    @staticmethod
    def records(step: dict) -> dict:
        """This step's (or this prefill's) selection records by layer (created empty at the first layer)."""
        return step.setdefault(STEP_KEY, {})

    def static_record(self, records: dict, layer: int) -> dict | None:
        """The leader's static selection record for a follower at prefill; None when ``layer`` evicts on its
        own. A follower whose leader has not been prefilled in the same prefill dict raises."""
        if not self.is_follower(layer):
            return None
        lead = records.get(self.leader(layer))
        if lead is None:
            raise RuntimeError(f"layer {layer} shares layer {self.leader(layer)}'s static index but this prefill "
                               "holds none; prefill the layers in order with one step dict")
        return lead

    def shared(self, records: dict, layer: int, length: int, k: int, can_select: bool) -> dict | None:
        """The leader's record for a follower whose public plan matches it (same cache length and k), marked
        ``shared_from``; None when ``layer`` selects on its own. A follower without a matching record that
        cannot select (no summaries) raises: the layers of a step must run in order (with the static index
        shared too, the plans always match)."""
        if not self.is_follower(layer):
            return None
        lead = records.get(self.leader(layer))
        if lead is not None and lead.get("L") == length and lead.get("k") == k:
            return dict(lead, shared_from=self.leader(layer))
        if not can_select:
            raise RuntimeError(f"layer {layer} shares layer {self.leader(layer)}'s selection but this step "
                               "holds no matching record; run the layers of a step in order")
        return None
