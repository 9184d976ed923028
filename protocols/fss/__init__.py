"""The FSS suite: the two-party additive scheme whose comparisons and non-linear functions use function
secret sharing.

``keys`` (the dealer's DCF keys), ``compare`` (the MSB by one masked opening and a DCF evaluation: 1 round),
``gate`` (the spline gate: one opening, one DCF key with a vector payload evaluated at every knot),
``pieces`` (the splines' pieces, encoding, twins and bounds), ``spline`` (exp, SiLU, GeLU, ReLU, maximum,
minimum: 1 gate each), ``reduce`` (max and min: 1 gate per tournament level), ``recip`` (reciprocal and
rsqrt: normalisation by one gate, a spline gate, one product), ``onehot`` (the rotation one-hot from a DPF
key), ``scheme`` (the engine's seam). Everything
else is the additive scheme's (``registry.OVERLAYS``).
"""
from . import compare, onehot, recip, reduce, spline, trunc
from .scheme import FssScheme

__all__ = ["FssScheme", "compare", "onehot", "recip", "reduce", "spline", "trunc"]
