"""The FSS suite: the two-party additive scheme whose comparisons use function secret sharing.

``keys`` (the dealer's DCF keys), ``compare`` (the MSB by one masked opening and a DCF evaluation: 1 round),
``spline`` (exp by a piecewise-linear spline chosen with one DCF key: 1 round and a product), ``scheme``
(the engine's seam). Everything else is the additive scheme's (``registry.OVERLAYS``).
"""
from . import compare, spline
from .scheme import FssScheme

__all__ = ["FssScheme", "compare", "spline"]
