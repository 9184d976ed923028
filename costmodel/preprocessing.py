"""Preprocessing priced from the correlation inventory (``Cost.inventory``), per way of making it.

A run's inventory lists every correlation it consumed, typed: (kind, dims) -> units, where dims are one
unit's parameters (``mpsim.dealer`` and ``protocols.fss.keys`` itemise them). A generator turns that into
what the offline phase costs. Only ``dealer`` is here so far: the trusted dealer of the additive scheme and
of the FSS suite, which sends seeds (free) and one correction word per derived element to party 0, and the
FSS keys to every party. Its price is exactly the offline bits the ledger records (the tests check it on every
protocol); generators without a dealer (OT extension, silent OT, HE) are to price the same inventory.
ABY3's correlations are made by the parties online-among-themselves (``protocols.aby3.correlations``): their
offline messages are their price and carry no inventory.
"""
from __future__ import annotations

from mpsim.fss import dcf_key_bits, dpf_key_bits

__all__ = ["DEALER_KINDS", "dealer_bits"]


def _log2(size: int) -> int:
    return int(size).bit_length() - 1


def _key(dims, K: int) -> int:
    family, n, out, d = dims
    return (dcf_key_bits if family == "dcf" else dpf_key_bits)(n, out, d=d)


# kind -> (dims, K) -> (bits to party 0, bits to every party) for one unit: each formula is the docstring's of
# the correlation (mpsim/dealer.py, protocols/fss/keys.py).
DEALER_KINDS = {
    "beaver_triple": lambda dims, K: (K, 0),  # c
    "square_pair": lambda dims, K: (K, 0),  # a^2
    "matmul_triple": lambda dims, K: (K * dims[0] * dims[2], 0),  # C (m x n)
    "reuse_triple": lambda dims, K: (K * dims[0] * dims[2], 0),  # C_t = A_t B (m x n)
    "trunc_pair": lambda dims, K: (2 * K, 0),  # r' and r_(K-1)
    "and_triple": lambda dims, K: (1, 0),  # one bit of c per AND gate
    "edabit": lambda dims, K: (K, 0),  # the boolean word
    "dabit": lambda dims, K: (K, 0),  # the arithmetic bit
    "bit_select_triple": lambda dims, K: (K, 0),  # r a
    "rotation_onehot": lambda dims, K: (K * dims[0] + _log2(dims[0]), 0),  # e_r and r mod T
    "rotation_table": lambda dims, K: (K * dims[0] * (dims[1] + 1) + _log2(dims[0]), 0),  # e_r, R, r mod T
    "shuffle_pass": lambda dims, K: (K * dims[0] * dims[1], 0),  # Delta for one row of (n, w)
    "msb_key": lambda dims, K: (1, _key(dims, K)),  # r_(K-1)'s XOR correction; the DCF key
    "gate_key": lambda dims, K: (2 * K, _key(dims, K)),  # r_(K-1) and r_(K-1) r; the DCF key
    "onehot_key": lambda dims, K: (0, _key(dims, K)),  # the DPF key (r's shares are seeded)
    "trunc_key": lambda dims, K: (2 * K, _key(dims, K)),  # r >> d and r_(K-1); the DCF key
}


def dealer_bits(inventory, K: int, parties: int) -> tuple[int, ...]:
    """Bits the trusted dealer sends each party for ``inventory`` (a ``Cost.inventory`` or its
    ``correlations`` dict) in a K-bit ring."""
    items = inventory.items() if isinstance(inventory, dict) else (((k, d), u) for k, d, u in inventory)
    received = [0] * parties
    for (kind, dims), units in items:
        if kind not in DEALER_KINDS:
            raise ValueError(f"the dealer does not make {kind!r} (known: {sorted(DEALER_KINDS)})")
        first, each = DEALER_KINDS[kind](dims, K)
        for p in range(parties):
            received[p] += units * (each + (first if p == 0 else 0))
    return tuple(received)
