"""ABY3: 3-party replicated secret sharing, semi-honest, honest majority (Mohassel-Rindal, CCS 2018).

x = x_0 + x_1 + x_2 mod 2^K (or XOR, for boolean sharings), and party i holds (x_i, x_(i+1)). In the
stacked simulator the payload keeps the three components as its rows; the protocols here know who holds
which. Products are local cross terms plus one reshare (no triple, no dealer); the correlated randomness is
pairwise PRF keys (``prf``) and what the parties make from them offline (``correlations``).
``Session(parties=3, scheme="aby3")``.

Files mirror the additive scheme's: ``arith`` (input, reveal, products, truncation), ``boolean`` (AND,
boolean input, bit injection, selection, MSB, equality), ``reduce`` (max and min with fused round trips),
``oblivious`` (rotation one-hot, gather), ``shuffle`` (the shuffle and the shuffle top-k), ``prf`` (the keys,
zero sharings, masks, the rotation's correlation), ``correlations`` (edaBits and daBits made by the
parties), ``scheme`` (the engine's seam).
"""
from . import arith, boolean, correlations, oblivious, reduce, shuffle
from .scheme import Aby3Scheme

__all__ = ["Aby3Scheme", "arith", "boolean", "correlations", "oblivious", "reduce", "shuffle"]
