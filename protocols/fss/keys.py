"""The FSS suite's correlations: the dealer's function-secret-shared keys (``mpsim.fss``).

The dealer of the additive scheme still gives Beaver triples, daBits and the rest (``session.dealer``);
this source adds the keys, under the same accounting: a purely random component (the input mask r, the
root seeds) is derived from the seed the dealer shares with each party and costs nothing to ship, each
derived component is charged. A DCF key's correction words are derived and both parties need them, so
each party receives its key: the declared key size of the AES-based construction (``mpsim.fss``), seed
included, is charged to every party.
"""
from __future__ import annotations

import math
import numpy as np

from mpsim import fss
from mpsim.ledger import DEALER, OFFLINE


def _numel(shape) -> int:
    return int(math.prod(shape))


class FssKeys:
    """``session.keys`` of an FSS session: one method per correlation, every random draw through
    ``_random`` (so ``mpsim.transcript.disabled_mask`` can zero it)."""

    def __init__(self, session):
        self.backend = session.backend
        self.ring = session.ring
        self.ledger = session.ledger
        self.profiler = session.profiler
        self._watchers = []

    @classmethod
    def correlations(cls) -> tuple[str, ...]:
        return ("msb_key", "gate_key", "onehot_key", "trunc_key")

    def watch(self, callback):
        """Call ``callback(label, payload, kind, width)`` with every party's own key material from now on (for
        the transcript tests: a party's key is part of its view); returns a function that stops it."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback) if callback in self._watchers else None

    def _random(self, shape):
        """Uniform ring values of ``shape`` (zeros under the ideal backend, None under count)."""
        return self.backend.uniform(tuple(shape))

    def _random_shared(self, shape, kind: str = "A"):
        """A uniform input mask drawn directly in share form, from the parties' seeds (``Backend.random_shared``)."""
        return self.backend.random_shared(tuple(shape), kind)

    def _ship(self, op: str, bits_each: int, bits_first: int, units: int, dims: tuple) -> None:
        """Record ``bits_each`` bits to every party, and ``bits_first`` more to party 0 (a correction word):
        ``units`` keys of kind ``op`` with parameters ``dims`` = (family, input bits, output bits, outputs),
        itemised once, on party 0's message (the inventory, ``Cost.correlations``)."""
        for party in range(self.backend.parties):
            bits = bits_each + (bits_first if party == 0 else 0)
            self.ledger.record(self.profiler.path, op, 0, -1, DEALER, party, int(bits), OFFLINE,
                               units if party == 0 else 0, dims)

    def _borrow_key(self, op: str, shape, out_bits: int, first_bits: int, payload_of, d: int = 1):
        """The shared part of ``msb_key`` and ``gate_key``: ship the keys and the corrections, draw r and the
        root seeds, and make DCF keys for 1{y < r mod 2^(K-1)} on K - 1 input bits with payload
        ``payload_of(r, r_(K-1))`` in Z_2^out_bits (d > 1: a vector, (elements, d)). Returns
        (r's shares, r, r_(K-1), keys), or (None, None, None, None) under count and (r's one row of zeros, None,
        None, None) under ideal (r = 0: the protocols compute the function)."""
        shape = tuple(shape)
        K, n = self.ring.bits, _numel(shape)
        r_shares, r = self._random_shared(shape)
        seeds = self._random((2, n, 2))
        self._ship(op, fss.dcf_key_bits(K - 1, out_bits, d=d) * n, first_bits * n, n, ("dcf", K - 1, out_bits, d))
        if r is None or self.backend.rows == 1:
            return r_shares, None, None, None
        low = np.uint64((1 << (K - 1)) - 1)
        flat = r.reshape(-1)
        top = np.right_shift(flat, np.uint64(K - 1))
        payload = payload_of(flat, top)
        if d == 1:
            payload = np.broadcast_to(payload, top.shape)
        keys = fss.gen("dcf", np.bitwise_and(flat, low), payload, K - 1, out_bits, _Seeds(seeds))
        for callback in list(self._watchers):
            callback(f"{op} seeds", keys.seed.reshape(2, -1), "A", None)
        return r_shares, r, top.reshape(shape), keys

    def msb_key(self, shape):
        """For msb(x) by one masked opening: additive shares of a uniform r, XOR shares of its top bit, and
        DCF keys for 1{y < r mod 2^(K-1)} on K - 1 input bits with output in Z_2 (XOR shares).

        Offline per element: the DCF key (``fss.dcf_key_bits(K - 1, 1)`` bits) to each party, and the top
        bit's correction (1 bit) to party 0. Returns (r shares, top-bit shares, keys or None).
        """
        r_shares, r, top, keys = self._borrow_key("msb_key", shape, 1, 1, lambda r, top: np.uint64(1))
        if keys is None:
            return r_shares, None, None
        return r_shares, self.backend.split_xor(top), keys

    def gate_key(self, shape):
        """For a spline gate (``protocols.fss.gate``): additive shares of a uniform r, of its top bit r_(K-1)
        and of r_(K-1) r, and a DCF key for 1{y < r mod 2^(K-1)} on K - 1 input bits with the vector payload
        (1 - 2 r_(K-1), (1 - 2 r_(K-1)) r) in (Z_2^K)^2, to be evaluated at every knot.

        Offline per element: the DCF key (``fss.dcf_key_bits(K - 1, K, d=2)`` bits) to each party, and the
        corrections of r_(K-1) and r_(K-1) r (2K bits) to party 0. Returns (r shares, r_(K-1) shares,
        r_(K-1) r shares, keys), or (r or None, None, None, None) under ideal and count.
        """
        ring = self.ring

        def payload(r, top):
            sign = ring.reduce(np.uint64(1) - np.uint64(2) * top)
            return np.stack([sign, ring.reduce(sign * r)], axis=-1)

        r_shares, r, top, keys = self._borrow_key("gate_key", shape, ring.bits, 2 * ring.bits, payload, d=2)
        if keys is None:
            return r_shares, None, None, None
        return r_shares, self.backend.split(top), self.backend.split(ring.reduce(top * r)), keys

    def onehot_key(self, shape, size: int):
        """For a one-hot over ``size`` (a power of two >= 2) positions: per index a uniform r in [0, size)
        (additive shares mod size, from the parties' seeds) and DPF keys for 1{y == r} on log2(size) bits with
        output 1 in Z_2^K (``protocols.fss.onehot``).

        Offline per index: the DPF key (``fss.dpf_key_bits(log2(size), K)`` bits) to each party; r's shares
        come from the seeds and cost nothing. Returns (r shares, keys), (r's one row of zeros, None) under
        ideal and (None, None) under count.
        """
        shape = tuple(shape)
        bits, n = size.bit_length() - 1, _numel(shape)
        self._ship("onehot_key", fss.dpf_key_bits(bits, self.ring.bits) * n, 0, n, ("dpf", bits, self.ring.bits, 1))
        drawn = self._random(shape)
        seeds = self._random((2, n, 2))
        if drawn is None:
            return None, None
        r = np.bitwise_and(drawn, np.uint64(size - 1))
        if self.backend.rows == 1:
            return r[None].copy(), None
        keys = fss.gen("dpf", r.reshape(-1), 1, bits, self.ring.bits, _Seeds(seeds))
        for callback in list(self._watchers):
            callback("onehot_key seeds", keys.seed.reshape(2, -1), "A", None)
        return self.backend.split(r), keys

    def trunc_key(self, shape, shift: int):
        """For exact truncation by ``shift`` (``protocols.fss.trunc``): additive shares of a uniform r, of
        r >> shift and of r's top bit, and a DCF key for 1{y < (r mod 2^shift) 2^(K-2-shift)} on K - 2 bits
        with output 1 in Z_2^K (the borrow of the low bits, compared at the top of a (K-2)-bit word so that the
        key's size does not depend on the shift).

        Offline per element: the DCF key (``fss.dcf_key_bits(K - 2, K)`` bits) to each party and the
        corrections of r >> shift and r_(K-1) (2K bits) to party 0. Returns (r, r >> shift, r_(K-1), keys)
        as shares, (r or None, None, None, None) under ideal and count.
        """
        shape = tuple(shape)
        K, n = self.ring.bits, _numel(shape)
        self._ship("trunc_key", fss.dcf_key_bits(K - 2, K) * n, 2 * K * n, n, ("dcf", K - 2, K, 1))
        r_shares, r = self._random_shared(shape)
        seeds = self._random((2, n, 2))
        if r is None or self.backend.rows == 1:
            return r_shares, None, None, None
        flat = r.reshape(-1)
        low = np.bitwise_and(flat, np.uint64((1 << shift) - 1))
        alpha = np.left_shift(low, np.uint64(K - 2 - shift))
        keys = fss.gen("dcf", alpha, 1, K - 2, K, _Seeds(seeds))
        for callback in list(self._watchers):
            callback("trunc_key seeds", keys.seed.reshape(2, -1), "A", None)
        high = np.right_shift(r, np.uint64(shift))
        top = np.right_shift(r, np.uint64(K - 1))
        return r_shares, self.backend.split(high), self.backend.split(top), keys


class _Seeds:
    """Root seeds drawn through ``FssKeys._random`` handed to ``fss.gen`` (which asks its generator)."""

    def __init__(self, seeds):
        self.seeds = np.asarray(seeds, dtype=np.uint64)

    def integers(self, low, high, size, dtype):
        return self.seeds.reshape(size).astype(dtype)
