"""The FSS suite behind the engine's seam: ``Session(parties=2, scheme="fss")``.

The additive scheme with a trusted dealer (its products, truncation, reusable operands and every protocol
it has), plus comparisons by function secret sharing: ``session.keys`` is the dealer's FSS key source
(``keys.FssKeys``), and the registry overlays the additive cells (``registry.OVERLAYS``), so a protocol
without an FSS cell of its own runs, and is declared, as in the additive scheme.
"""
from __future__ import annotations

from ..additive import AdditiveScheme
from .keys import FssKeys


class FssScheme(AdditiveScheme):
    name = "fss"
    truncation_advice = "use trunc='exact' (one round, never fails) or fewer fractional bits"

    def truncation_mode(self, parties, ring_bits, trunc):
        """local (0 rounds) where its failure probability is negligible (K = 64), else the exact DCF
        truncation (``protocols.fss.trunc``); "dealer" (trunc_pr) on request."""
        if parties != 2:
            raise ValueError(f"the fss suite is two-party (its keys are two-party FSS), got parties={parties}")
        if trunc == "exact":
            return trunc
        if trunc == "auto":
            return "local" if ring_bits == 64 else "exact"
        return super().truncation_mode(parties, ring_bits, trunc)

    def truncate(self, x, shift):
        if x.session.trunc == "exact":
            from .trunc import trunc_exact

            return trunc_exact(x, shift)
        return super().truncate(x, shift)

    def setup(self, session):
        return FssKeys(session)
