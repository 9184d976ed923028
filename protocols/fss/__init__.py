"""The FSS suite: the two-party additive scheme whose comparisons use function secret sharing.

``keys`` (the dealer's DCF keys), ``compare`` (the MSB by one masked opening and a DCF evaluation: 1 round),
``scheme`` (the engine's seam). Everything else is the additive scheme's (``registry.OVERLAYS``).
"""
from . import compare
from .scheme import FssScheme

__all__ = ["FssScheme", "compare"]
