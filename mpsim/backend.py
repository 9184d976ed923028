"""Backends: what a secret-shared value physically is. This module is the sharing-scheme seam.

All protocols are written once, against the small set of primitives below; a backend decides what a
"payload" (the data behind a :class:`~mpsim.tensor.SharedTensor`) holds:

* ``share``: real additive shares over Z_2^K, all parties stacked in one ``(N, *shape)`` uint64 array; the
  shares come from a fast seeded PRG, and every share (alone, or any N - 1 of them) is uniformly random.
* ``ideal``: the plaintext ring value in a ``(1, *shape)`` array. The dealer's correlations are the all-zero
  ones (a valid, if insecure, choice), so opened values are the secrets and the protocol arithmetic computes
  exactly the ideal functionality. Local truncation is the exact arithmetic shift. Use it for numerics at
  scale; it is not a security simulation.
* ``count``: no data at all (payload ``None``); shapes flow, bits and rounds are counted, and any attempt to
  read a value raises :class:`CountBackendError`.

The ledger never depends on the backend: every message is sized from public shapes and the ring width by the
channel and the dealer, so the three ledgers are identical by construction (and a test checks it).

The same stacked layout serves 3-party replicated sharing (ABY3, ``protocols/aby3``): the three rows are
the additive components x_0, x_1, x_2 of x, and party i holds rows i and i + 1. Who knows which row is the
scheme's business (its openings send each party only the row it lacks); the backend adds one kernel for it,
``replicated_cross``, the local cross terms of a replicated product.
"""
from __future__ import annotations

import math
import os

import numpy as np

from . import kernels
from .ring import Ring


_STREAM_WORDS = 1 << 64  # a PRG key's counter-mode stream


class CountBackendError(RuntimeError):
    """Raised when code tries to read values under the count backend, which holds none."""


class PRG:
    """Session-owned counter-mode PRG (a simulation PRG, statistically uniform, not cryptographic)."""

    def __init__(self, seed: int | None):
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an integer or None, got {seed!r}")
        # Spread small seeds over the key space so seeds 1 and 2 do not give overlapping streams.
        self.key = int(np.random.SeedSequence(int(seed) % (1 << 128)).generate_state(1, np.uint64)[0])
        self.stream_keys = kernels.stream_keys(self.key)  # (k1, k2): for kernels that draw from the stream
        self.counter = 0

    def uniform(self, shape) -> np.ndarray:
        """The next words of the stream (``kernels.random_uint64(shape, key, counter)``) as a fresh array."""
        out = np.empty(shape, dtype=np.uint64)
        self.fill(out)
        return out

    def fill(self, out: np.ndarray) -> None:
        """Overwrite the C-contiguous uint64 array ``out`` with the next ``out.size`` words of the stream."""
        kernels.fill_stream(out, self.stream_keys, self.take(out.size))

    def take(self, words: int) -> int:
        """Reserve the next ``words`` words of the stream for a kernel that draws them itself; returns the
        counter of the first."""
        start = self.counter
        if start + words > _STREAM_WORDS:
            raise OverflowError("this PRG's 2^64-word stream is used up")
        self.counter += words
        return start


class Backend:
    """Primitives every protocol is written against. Payloads are backend-specific."""

    name = "abstract"
    has_data = True

    def __init__(self, ring: Ring, parties: int, prg: PRG):
        self.ring = ring
        self.parties = parties
        self.prg = prg
        # Session-seeded generator for the count backend's draws of data-independent opened values.
        self.sim_rng = np.random.default_rng(prg.key)

    @property
    def rows(self) -> int:
        """Share rows stored per tensor: N for real shares, 1 for plaintext, 0 for none."""
        return self.parties

    # -- creating and opening sharings -----------------------------------------------------------------
    def uniform(self, shape):
        """Uniformly random ring values known to the dealer (a correlation's random part)."""
        raise NotImplementedError

    def split(self, values, owner: int = 0):
        """Secret-share known ring values: a payload whose shares sum to ``values``."""
        raise NotImplementedError

    def random_shared(self, shape, kind: str = "A"):
        """A uniform value drawn directly in share form: every party's share from its own seeded stream, and
        the value they make (what a dealer seeding each party computes), as (payload, value). ``kind``: "A"
        (additive shares of a uniform ring element), "B" (XOR shares of a uniform word) or "bit" (XOR shares
        of a uniform bit). Zeros under the ideal backend (its all-zero correlations), (None, None) under
        count. A derived component (c = a * b) is then one ``split``: N - 1 seeded shares and a correction."""
        raise NotImplementedError

    def fused_triple(self, shape, kind: str = "A"):
        """An elementwise triple (a, b, c = a * b; kind "B": c = a & b, XOR shares) in share form, drawn in
        one pass: word for word what two ``random_shared`` draws and a ``split`` of c give. None where the
        backend has no fused form (the dealer composes the draws)."""
        return None

    def open(self, payload):
        """The ring value behind a payload (the sum of its shares)."""
        raise NotImplementedError

    def public_zero(self, shape):
        """A public array of zeros (or None under count) used for shape-only values."""
        return np.zeros(shape, dtype=np.uint64)

    # -- local operations --------------------------------------------------------------------------------
    def map(self, fn, *payloads):
        """Apply a share-wise local function (acting on the stacked party axis 0) and reduce mod 2^K."""
        out = fn(*payloads)
        return self.ring.reduce(np.ascontiguousarray(out))

    def add_public(self, payload, public):
        """Add a public ring array (broadcastable) to the shared value: only party 0 adds it."""
        out = np.broadcast_to(payload, payload.shape[:1] + np.broadcast_shapes(payload.shape[1:], np.shape(public))).copy()
        kernels.ring_add(out[0, ...], public, out=out[0, ...])
        return self.ring.reduce(out)

    def trunc_local(self, payload, shift: int):
        raise NotImplementedError

    # -- boolean (XOR) sharings: one K-bit word per element, bit-parallel -----------------------------------
    def split_xor(self, values, owner: int = 0):
        """XOR-share known words."""
        raise NotImplementedError

    def open_xor(self, payload):
        """The word behind an XOR sharing (the XOR of its shares)."""
        raise NotImplementedError

    def xor_public(self, payload, public):
        """XOR a public array into the shared value: only party 0 does it."""
        out = np.broadcast_to(payload, payload.shape[:1] + np.broadcast_shapes(payload.shape[1:], np.shape(public))).copy()
        np.bitwise_xor(out[0, ...], np.asarray(public, dtype=np.uint64), out=out[0, ...])
        return self.ring.reduce(out)

    def and_combine(self, c, a, b, e, f):
        """Beaver AND: z = c ^ (e & b) ^ (f & a), and party 0 also XORs e & f; e, f public."""
        raise NotImplementedError

    def shuffle_messages(self, payload, a):
        """Data side of one shuffle pass (see ``Dealer.shuffle_pass``), first half: row q of the result is
        what party q sends the permuter, z_q = x_q + a_q; the permuter's row (where a is zero) is its own
        share x_P, which it keeps."""
        raise NotImplementedError

    def shuffle_apply(self, messages, perm, b, delta, permuter: int):
        """Second half: the permuter's new share pi(sum_q z_q) - Delta (permuting axis 1 of each (rows, n, w)
        share by the per-row permutations ``perm``), every other party's -b_q."""
        raise NotImplementedError

    def beaver_combine(self, c, a, b, e, f):
        """z = c + e*b + f*a + e*f (the last term added by party 0 only); e, f public. ``c`` is a fresh
        correlation used once, and may be overwritten by the result."""
        raise NotImplementedError

    def matmul_combine(self, c, a, b, e, f):
        """Z = C + E@B + A@F + E@F (the last term added by party 0 only); E, F public."""
        raise NotImplementedError

    def replicated_cross(self, x, y, product, add=kernels.ring_add):
        """Replicated 3-party product, local part: row i of the result is x_i y_i + x_i y_(i+1) + x_(i+1) y_i
        (indices mod 3), which party i computes from the two rows it holds; the rows sum to x * y.
        ``product`` is the ring product to use (elementwise or matrix), applied with the party axis as a
        batch axis; ``add`` combines terms (XOR and AND for boolean sharings)."""
        raise NotImplementedError


class ShareBackend(Backend):
    """Real additive shares over Z_2^K, stacked as ``(N, *shape)``."""

    name = "share"

    def uniform(self, shape):
        return self.ring.reduce(self.prg.uniform(shape))

    def _seeded_rows(self, values, owner: int, combine) -> np.ndarray:
        """(N, *shape) shares: the non-owners' rows from the PRG (in a deployment: their seeds), the owner's
        the correction ``combine(values, others)``; only N - 1 rows are drawn."""
        values = np.asarray(values, dtype=np.uint64)
        shares = np.empty((self.parties,) + values.shape, dtype=np.uint64)
        others = [p for p in range(self.parties) if p != owner]
        lo = min(others)  # the others are one contiguous run of rows unless the owner sits inside it
        if others == list(range(lo, lo + len(others))):
            self.prg.fill(shares[lo:lo + len(others)])
        else:
            for p in others:
                self.prg.fill(shares[p, ...])
        self.ring.reduce(shares)
        combine(values, shares, others, out=shares[owner, ...])
        return shares

    def split(self, values, owner: int = 0):
        return self._seeded_rows(values, owner, self._subtract_others)

    def fused_triple(self, shape, kind: str = "A"):
        shape = tuple(shape)
        rows, n = self.parties, int(math.prod(shape))
        start = self.prg.take((3 * rows - 1) * n)
        a, b, c = kernels.triple_from_stream(rows, n, self.prg.stream_keys, start, int(self.ring.mask), kind == "B")
        return tuple(x.reshape((rows,) + shape) for x in (a, b, c))

    def _subtract_others(self, values, shares, others, out):
        kernels.ring_sub(values, shares[others[0], ...], out=out)
        for p in others[1:]:
            kernels.ring_sub(out, shares[p, ...], out=out)
        self.ring.reduce(out)

    def random_shared(self, shape, kind: str = "A"):
        if kind not in ("A", "B", "bit"):
            raise ValueError(f"kind must be 'A', 'B' or 'bit', got {kind!r}")
        shares = self.ring.reduce(self.prg.uniform((self.parties,) + tuple(shape)))
        if kind == "A":
            return shares, self.open(shares)
        if kind == "bit":
            np.bitwise_and(shares, np.uint64(1), out=shares)
        return shares, self.open_xor(shares)

    def open(self, payload):
        total = payload[0, ...].copy()
        for p in range(1, payload.shape[0]):
            kernels.ring_add(total, payload[p, ...], out=total)
        return self.ring.reduce(total)

    def trunc_local(self, payload, shift: int):
        """SecureML (Mohassel-Zhang 2017, Thm. 1) share-wise truncation for two parties.

        Party 0: x0 >> d; party 1: 2^K - ((2^K - x1) >> d), logical shifts on K-bit values.
        """
        if payload.shape[0] != 2:
            raise ValueError("local truncation is only correct for two parties")
        out = np.empty_like(payload)
        d = np.uint64(shift)
        np.right_shift(payload[0, ...], d, out=out[0, ...])
        neg = self.ring.reduce(np.negative(payload[1, ...]))
        np.right_shift(neg, d, out=out[1, ...])
        np.negative(out[1, ...], out=out[1, ...])
        return self.ring.reduce(out)

    def beaver_combine(self, c, a, b, e, f):
        # into c's own buffer: a fresh output array would spend as long on first-touch page faults as the
        # combine itself (measured at 2^24 elements: 0.44x a copy's bandwidth fresh, 0.83x in place)
        return self.ring.reduce(kernels.beaver_combine(c, a, b, e, f, out=c if c.flags.writeable else None))

    def shuffle_messages(self, payload, a):
        return self.ring.reduce(payload + a)  # a is zero in the permuter's row

    def shuffle_apply(self, messages, perm, b, delta, permuter: int):
        # The permuter keeps pi(x_P + sum_q z_q) - Delta = pi(x) + sum_q b_q, and each q keeps -b_q.
        total = np.sum(messages, axis=0, dtype=np.uint64)
        out = np.negative(b)
        out[permuter] = np.take_along_axis(self.ring.reduce(total), perm[..., None], axis=1) - delta
        return self.ring.reduce(out)

    def split_xor(self, values, owner: int = 0):
        return self._seeded_rows(values, owner, self._xor_others)

    @staticmethod
    def _xor_others(values, shares, others, out):
        np.bitwise_xor(values, shares[others[0], ...], out=out)
        for p in others[1:]:
            np.bitwise_xor(out, shares[p, ...], out=out)

    def open_xor(self, payload):
        return np.asarray(np.bitwise_xor.reduce(payload, axis=0))

    def and_combine(self, c, a, b, e, f):
        z = np.bitwise_xor(c, np.bitwise_and(e, b))
        np.bitwise_xor(z, np.bitwise_and(f, a), out=z)
        np.bitwise_xor(z[0, ...], np.bitwise_and(e, f), out=z[0, ...])
        return z

    def matmul_combine(self, c, a, b, e, f):
        # Each party p: C_p + E @ B_p + A_p @ F; party 0 also adds E @ F, folded into one of its other two
        # products: (A_0 + E) @ F or E @ (B_0 + F), whichever sum is smaller (m k or k n words), so 2N
        # products instead of 2N + 1 (a fifth less work for two parties). The party axis is a batch axis,
        # so each product is one kernel launch over all parties.
        if e.shape[-2] <= f.shape[-1]:
            a = a.copy()
            kernels.ring_add(a[0], e, out=a[0])
        else:
            b = b.copy()
            kernels.ring_add(b[0], f, out=b[0])
        nb = c.ndim - 3  # batch axes of the product (c is (R, *batch, m, n))

        def lead(x, party_axis):
            batch = x.ndim - 2 - party_axis
            head = x.shape[:1] if party_axis else (1,)
            return x.reshape(head + (1,) * (nb - batch) + x.shape[party_axis:])

        out = kernels.ring_add(c, kernels.ring_matmul(lead(e, 0), lead(b, 1)))
        if f.ndim == 2:  # one F for every party and batch: their A rows stacked, so F is read once, not R times
            a_f = kernels.ring_matmul(np.ascontiguousarray(a).reshape(-1, a.shape[-1]), f).reshape(out.shape)
        else:
            a_f = kernels.ring_matmul(lead(a, 1), lead(f, 0))
        kernels.ring_add(out, a_f, out=out)
        return self.ring.reduce(out)

    def replicated_cross(self, x, y, product, add=kernels.ring_add):
        if self.parties != 3:
            raise ValueError(f"replicated sharing has 3 rows, this backend {self.parties}")
        x_next, y_next = np.roll(x, -1, axis=0), np.roll(y, -1, axis=0)
        out = product(x, add(y, y_next))  # x_i (y_i + y_(i+1)): products distribute over both adds
        return self.ring.reduce(add(out, product(x_next, y)))


class IdealBackend(Backend):
    """Plaintext ring values through the same protocol code; the dealer's correlations are all zero."""

    name = "ideal"
    rows = 1

    def uniform(self, shape):
        return np.zeros(shape, dtype=np.uint64)

    def split(self, values, owner: int = 0):
        return np.asarray(values, dtype=np.uint64)[None].copy()

    def random_shared(self, shape, kind: str = "A"):
        return np.zeros((1,) + tuple(shape), dtype=np.uint64), np.zeros(shape, dtype=np.uint64)

    def open(self, payload):
        return payload[0, ...].copy()

    def trunc_local(self, payload, shift: int):
        # The ideal functionality: an exact arithmetic shift of the signed value.
        signed = self.ring.to_signed(payload)
        return self.ring.reduce((signed >> np.int64(shift)).view(np.uint64))

    def beaver_combine(self, c, a, b, e, f):
        # With the all-zero correlations a = b = c = 0 the Beaver combine is e*f.
        return self.ring.reduce(kernels.ring_mul(e, f)[None])

    def shuffle_messages(self, payload, a):
        return payload

    def shuffle_apply(self, messages, perm, b, delta, permuter: int):
        return np.take_along_axis(messages, perm[None, ..., None], axis=2)

    def split_xor(self, values, owner: int = 0):
        return np.asarray(values, dtype=np.uint64)[None].copy()

    def open_xor(self, payload):
        return payload[0, ...].copy()

    def and_combine(self, c, a, b, e, f):
        return np.bitwise_and(e, f)[None]

    def matmul_combine(self, c, a, b, e, f):
        return self.ring.reduce(kernels.ring_matmul(e, f)[None])

    def replicated_cross(self, x, y, product, add=kernels.ring_add):
        return self.ring.reduce(product(x, y))


class CountBackend(Backend):
    """Shapes only: every payload and every opened value is None."""

    name = "count"
    has_data = False
    rows = 0

    def uniform(self, shape):
        return None

    def split(self, values, owner: int = 0):
        return None

    def random_shared(self, shape, kind: str = "A"):
        return None, None

    def open(self, payload):
        return None

    def public_zero(self, shape):
        return None

    def map(self, fn, *payloads):
        return None

    def add_public(self, payload, public):
        return None

    def trunc_local(self, payload, shift: int):
        return None

    def split_xor(self, values, owner: int = 0):
        return None

    def shuffle_messages(self, payload, a):
        return None

    def shuffle_apply(self, messages, perm, b, delta, permuter: int):
        return None

    def open_xor(self, payload):
        return None

    def xor_public(self, payload, public):
        return None

    def and_combine(self, c, a, b, e, f):
        return None

    def beaver_combine(self, c, a, b, e, f):
        return None

    def matmul_combine(self, c, a, b, e, f):
        return None

    def replicated_cross(self, x, y, product, add=kernels.ring_add):
        return None


BACKENDS = {"share": ShareBackend, "ideal": IdealBackend, "count": CountBackend}


def make_backend(name: str, ring: Ring, parties: int, prg: PRG) -> Backend:
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}") from None
    return cls(ring, parties, prg)
