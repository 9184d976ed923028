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

    def truncation_mode(self, parties, ring_bits, trunc):
        if parties != 2:
            raise ValueError(f"the fss suite is two-party (its keys are two-party FSS), got parties={parties}")
        return super().truncation_mode(parties, ring_bits, trunc)

    def setup(self, session):
        return FssKeys(session)
