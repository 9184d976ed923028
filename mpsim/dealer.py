"""The trusted dealer: correlated randomness for the online phase (semi-honest model).

Security model: the dealer is a trusted third party that never sees inputs and sends each party its part of
each correlation before the online phase (a stand-in for an offline phase built from OT or HE; CrypTen calls
this a TTP provider). Parties are semi-honest (they follow the protocol) and do not collude with the dealer.

Accounting (seeds plus one correction): at setup the dealer agrees a PRG seed with every party (a one-off
128 bits per party, not charged to any operation). A purely random component of a correlation (the a and b
of a Beaver triple, a mask) is then derived by every party from its seed and costs nothing to ship. Each
*derived* component (c = a*b, a truncated copy of r, ...) needs one correction word per element sent to
party 0, whose share is the value minus the other parties' seeded shares: K bits per element of each
derived component. That is what the offline ledger records (from ``DEALER`` to party 0), and every
correlation's docstring states its formula.

One method per correlation; each cites where it comes from. Values known only to the dealer are returned
only where a later correlation must be consistent with them (the mask of a reusable operand).
"""
from __future__ import annotations

import math
import numpy as np

from . import kernels
from .ledger import DEALER, OFFLINE, Ledger
from .profiler import Profiler
from .ring import Ring


def _numel(shape) -> int:
    return int(math.prod(shape))


def _matrix_units(shape_a, out_shape) -> tuple[int, tuple]:
    """(matrix products, (m, k, n)) of a batched (..., m, k) @ (..., k, n) triple."""
    m, k, n = int(shape_a[-2]), int(shape_a[-1]), int(out_shape[-1])
    return _numel(out_shape) // max(1, m * n), (m, k, n)


def uniform_permutations(rng, rows: int, n: int) -> np.ndarray:
    """``rows`` independent uniform permutations of range(n) drawn from ``rng``, shape (rows, n)."""
    if not rows:
        return np.zeros((0, n), dtype=np.int64)
    return np.stack([rng.permutation(n) for _ in range(rows)])


class Dealer:
    def __init__(self, ring: Ring, backend, ledger: Ledger, profiler: Profiler):
        self.ring = ring
        self.backend = backend
        self.ledger = ledger
        self.profiler = profiler
        # Permutations come from their own seeded stream, the same under every backend, so that a randomized
        # protocol (shuffle-then-select) opens the same outcomes under share and ideal.
        self.perm_rng = np.random.default_rng([backend.prg.key, 0x5EED])

    def _charge(self, op: str, derived_elements: int, units: int, dims: tuple = ()) -> None:
        """Record the corrections of ``derived_elements`` ring elements, sent to party 0: ``units``
        correlations of kind ``op`` with parameters ``dims`` (the inventory, ``Cost.correlations``)."""
        self.ledger.record(self.profiler.path, op, 0, -1, DEALER, 0, self.ring.bits * derived_elements, OFFLINE,
                           units, dims)

    def _has_data(self) -> bool:
        return self.backend.has_data

    # Every random component of every correlation is drawn by one of these three methods (or by ``_triple``'s
    # one pass, which equals two ``_random_shared`` draws word for word), so a test can disable one mask at a
    # time (``mpsim.transcript.disabled_mask``) and check that the transcript tests notice; nothing else in
    # the dealer draws randomness.
    def _random(self, shape):
        """Uniform ring values of ``shape`` (zeros under the ideal backend, None under count)."""
        return self.backend.uniform(shape)

    def _random_shared(self, shape, kind: str = "A"):
        """A uniform component drawn directly in share form, each party's share from its seed with the dealer
        (``Backend.random_shared``): (shares, the value the dealer knows). Free offline, as every seeded part."""
        return self.backend.random_shared(tuple(shape), kind)

    def _triple(self, shape_a, shape_b, kind: str):
        """Shares of a and b (``_random_shared``) and of c = a * b (kind "A", numpy broadcasting) or a & b
        (kind "B"), a derived component. For equal shapes the share backend draws all three in one pass
        (``Backend.fused_triple``, word for word the same shares: tests/test_share_draws.py); while a test
        patches ``_random_shared`` to zero or count the draws (``mpsim.transcript``), the draws are composed
        so that each can be zeroed."""
        fused = None
        if tuple(shape_a) == tuple(shape_b) and "_random_shared" not in self.__dict__:
            fused = self.backend.fused_triple(shape_a, kind)
        if fused is not None:
            return fused
        a_shares, a = self._random_shared(shape_a, kind)
        b_shares, b = self._random_shared(shape_b, kind)
        if not self._has_data():
            return a_shares, b_shares, None
        if kind == "A":
            return a_shares, b_shares, self.backend.split(self.ring.reduce(kernels.ring_mul(a, b)))
        return a_shares, b_shares, self.backend.split_xor(np.bitwise_and(a, b))

    def _permutations(self, rows: int, n: int) -> np.ndarray:
        """``rows`` independent uniform permutations of range(n), from the dealer's own seeded stream."""
        return uniform_permutations(self.perm_rng, rows, n)

    @classmethod
    def correlations(cls) -> tuple[str, ...]:
        """The names of every correlation this dealer offers (its public methods)."""
        return tuple(name for name, value in vars(cls).items()
                     if callable(value) and not name.startswith("_") and name != "correlations")

    def beaver_triple(self, shape_a, shape_b):
        """Elementwise Beaver triple (Beaver, CRYPTO 1991) with c = a * b under numpy broadcasting.

        Offline: K * numel(broadcast(shape_a, shape_b)) bits (c is the only derived component).
        """
        out_shape = np.broadcast_shapes(tuple(shape_a), tuple(shape_b))
        self._charge("beaver_triple", _numel(out_shape), _numel(out_shape))
        return self._triple(shape_a, shape_b, "A")

    def square_pair(self, shape):
        """Square pair (a, a^2) for x*x (as in CrypTen's ``square`` provider). Offline: K * numel bits."""
        self._charge("square_pair", _numel(shape), _numel(shape))
        a_shares, a = self._random_shared(shape)
        c = self.ring.reduce(kernels.ring_mul(a, a)) if self._has_data() else None
        return a_shares, self.backend.split(c)

    def matmul_triple(self, shape_a, shape_b, out_shape):
        """Matrix Beaver triple C = A @ B for given shapes (batched over leading axes).

        Offline: K * numel(out_shape) bits (C is the only derived component).
        """
        self._charge("matmul_triple", _numel(out_shape), *_matrix_units(shape_a, out_shape))
        a_shares, a = self._random_shared(shape_a)
        b_shares, b = self._random_shared(shape_b)
        c = self.ring.reduce(kernels.ring_matmul(a, b)) if self._has_data() else None
        return a_shares, b_shares, self.backend.split(c)

    def trunc_pair(self, shape, shift: int):
        """Probabilistic-truncation correlation with MSB correction (Escudero et al., CRYPTO 2020, §5).

        Returns shares of r (uniform in Z_2^K), of r' = (r mod 2^(K-1)) >> shift and of the top bit
        r_{K-1}, all arithmetic. Offline: 2 * K * numel bits (r' and r_{K-1} are derived).
        """
        self._charge("trunc_pair", 2 * _numel(shape), _numel(shape))
        r_shares, r = self._random_shared(shape)
        if self._has_data():
            low_mask = self.ring.const((1 << (self.ring.bits - 1)) - 1)
            r_low_shifted = np.right_shift(np.bitwise_and(r, low_mask), np.uint64(shift))
            r_top = np.right_shift(r, np.uint64(self.ring.bits - 1))
        else:
            r_low_shifted = r_top = None
        return r_shares, self.backend.split(r_low_shifted), self.backend.split(r_top)

    def operand_mask(self, shape):
        """A fresh uniform mask B for a reusable operand, kept by the dealer for later per-use triples.

        Offline: 0 bits (B is purely random, derived from the seeds). Returns (shares of B, dealer's B).
        """
        return self._random_shared(shape)

    def reuse_triple(self, shape_a, dealer_mask, out_shape):
        """Per-use triple for a reusable operand: fresh A_t and C_t = A_t @ B for the dealer's mask B.

        Offline: K * numel(out_shape) bits (C_t is derived; A_t is seeded).
        """
        self._charge("reuse_triple", _numel(out_shape), *_matrix_units(shape_a, out_shape))
        a_shares, a = self._random_shared(shape_a)
        c = self.ring.reduce(kernels.ring_matmul(a, dealer_mask)) if self._has_data() else None
        return a_shares, self.backend.split(c)

    # -- boolean and mixed correlations ---------------------------------------------------------------------
    def _charge_bits(self, op: str, bits: int, units: int, dims: tuple = ()) -> None:
        self.ledger.record(self.profiler.path, op, 0, -1, DEALER, 0, int(bits), OFFLINE, units, dims)

    def and_triple(self, shape, gates: int):
        """Boolean Beaver triple on words (c = a & b, bit-parallel), XOR-shared.

        Only ``gates`` bit positions per word are used by the caller, so only those bits of c need a
        correction: offline ``gates * numel`` bits (a and b are seeded).
        """
        self._charge_bits("and_triple", gates * _numel(shape), gates * _numel(shape))  # one per AND gate
        return self._triple(shape, shape, "B")

    def edabit(self, shape):
        """A uniform r in Z_2^K shared both arithmetically and bitwise (XOR shares of its K-bit word).

        Ref: Escudero et al., CRYPTO 2020 (edaBits). Offline: K * numel bits (the boolean sharing is derived
        from the seeded arithmetic one by one correction word).
        """
        self._charge("edabit", _numel(shape), _numel(shape))
        r_shares, r = self._random_shared(shape)
        return r_shares, self.backend.split_xor(r)

    def dabit(self, shape):
        """A uniform bit r shared both as a ring element and as a boolean bit (Rotaru-Wood, INDOCRYPT 2019).

        Offline: K * numel bits (the arithmetic sharing is derived from the seeded boolean one).
        """
        self._charge("dabit", _numel(shape), _numel(shape))
        r_bits, r = self._random_shared(shape, "bit")
        return self.backend.split(r), r_bits

    def bit_select_triple(self, shape_bit, shape_value):
        """For b * y with b boolean: a daBit r (shaped like b), a uniform a (shaped like y) and r * a.

        Offline: K * numel(b) + K * numel(broadcast(b, y)) bits (the daBit's arithmetic part and r*a).
        """
        out_shape = np.broadcast_shapes(tuple(shape_bit), tuple(shape_value))
        # the daBits and the products, itemised apart (a generator prices them apart)
        self._charge("dabit", _numel(shape_bit), _numel(shape_bit))
        self._charge("bit_select_triple", _numel(out_shape), _numel(out_shape))
        r_bits, r = self._random_shared(shape_bit, "bit")
        a_shares, a = self._random_shared(shape_value)
        ra = self.ring.reduce(kernels.ring_mul(r, a)) if self._has_data() else None
        return self.backend.split(r), r_bits, a_shares, self.backend.split(ra)

    def rotation_onehot(self, shape, size: int):
        """Per index: a fresh r uniform in [0, size) (size a power of two), shares of r and of the one-hot e_r.

        Offline: (K * size + log2(size)) * numel bits: e_r's corrections, and r's correction mod ``size``
        (only r mod size is ever used).
        """
        log_size = size.bit_length() - 1
        self._charge_bits("rotation_onehot", (self.ring.bits * size + log_size) * _numel(shape), _numel(shape),
                          (size,))
        if not self._has_data():
            return None, None
        if self.backend.name == "ideal":
            r = np.zeros(shape, dtype=np.uint64)
        else:
            r = np.bitwise_and(self._random(shape), np.uint64(size - 1))
        onehot = (np.arange(size, dtype=np.uint64) == r[..., None]).astype(np.uint64)
        return self.backend.split(r), self.backend.split(onehot)

    def rotation_table(self, index_shape, size: int, table):
        """Per index t: a fresh r_t uniform in [0, size) (size a power of two), shares of r_t, of the one-hot
        e_{r_t} (length size) and of the rotated table R_t[j] = table_t[(r_t - j) mod size], j < size, where
        ``table`` (broadcastable to index_shape + (size, w)) holds dealer-known rows (a reusable operand's mask
        B padded with zero rows, or a fresh mask a at row 0 for a scatter). After c_t = (r_t - i_t) mod size
        is opened, row c_t of R_t is table_t[i_t] and e_{i_t}[j] = e_{r_t}[(j + c_t) mod size].

        Offline: (K * size * (w + 1) + log2(size)) * numel(index_shape) bits: e_r's and R's corrections, and
        r's correction mod ``size``. Ref: the rotation one-hot (``rotation_onehot``) applied to a table, a
        dealer-side variant of the one-hot-table lookups of function secret sharing (Boyle-Gilboa-Ishai).
        """
        log_size = size.bit_length() - 1
        w = int(np.shape(table)[-1])
        self._charge_bits("rotation_table", (self.ring.bits * size * (w + 1) + log_size) * _numel(index_shape),
                          _numel(index_shape), (size, w))
        if not self._has_data():
            return None, None, None
        if self.backend.name == "ideal":
            r = np.zeros(index_shape, dtype=np.uint64)
        else:
            r = np.bitwise_and(self._random(index_shape), np.uint64(size - 1))
        onehot = (np.arange(size, dtype=np.uint64) == r[..., None]).astype(np.uint64)
        table = np.broadcast_to(table, tuple(index_shape) + (size, w))
        pos = (r[..., None].astype(np.int64) - np.arange(size, dtype=np.int64)) % size
        rotated = np.ascontiguousarray(np.take_along_axis(table, pos[..., None], axis=-2))
        return self.backend.split(r), self.backend.split(onehot), self.backend.split(rotated)

    def shuffle_pass(self, shape, permuter: int):
        """One pass of a dealer-assisted secret-shared shuffle along axis -2 of ``shape`` (rows, n, w).

        The permuter gets a fresh permutation pi per row (from its seed with the dealer: free) and
        Delta = pi(sum_q a_q) - sum_q b_q; every other party q gets uniform masks a_q, b_q (seeded: free).
        Offline: K * numel bits (Delta). Ref: the resharing step of Chase-Ghosh-Poburinnaya, "Secret-Shared
        Shuffle" (ASIACRYPT 2020), with a dealer in place of OT.
        Returns (perm of shape (rows, n), a, b, delta) with a, b stacked per party ((N, *shape), the
        permuter's rows zero) or None where the backend holds no data.
        """
        rows, n = shape[0], shape[1]
        self._charge("shuffle_pass", _numel(shape), rows, tuple(shape[1:]))  # per row: (n, w)
        perm = self._permutations(rows, n)
        if not self._has_data() or self.backend.name != "share":
            return perm, None, None, None
        parties = self.backend.parties
        a = self._random((parties,) + tuple(shape))
        b = self._random((parties,) + tuple(shape))
        a[permuter] = 0
        b[permuter] = 0
        sum_a = self.ring.reduce(np.sum(a, axis=0, dtype=np.uint64))
        sum_b = self.ring.reduce(np.sum(b, axis=0, dtype=np.uint64))
        delta = self.ring.reduce(np.take_along_axis(sum_a, perm[..., None], axis=1) - sum_b)
        return perm, a, b, delta
