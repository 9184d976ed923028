"""ABY3's correlated randomness: pairwise PRF keys agreed once at setup, no dealer and no traffic.

Component j of a replicated sharing is held by parties j - 1 and j (party i holds components i and i + 1,
indices mod 3), so key k_j, shared by exactly those two parties, can make component j on its own. From the
three keys, and one key all three share:

* a zero sharing: z_i = F(k_i) - F(k_(i+1)); party i knows both keys, the z_i sum to 0, and the party that
  receives z_i in a reshare (party i - 1) lacks k_(i+1), so z_i looks uniform to it (Mohassel-Rindal,
  ABY3, CCS 2018, Sec. 2.2; Araki et al., CCS 2016). The XOR form is the same with XOR;
* one component from one pair key (a mask two parties share), or from the common key.

The simulator evaluates F with the session PRG (statistically uniform, not cryptographic) and accounts no
traffic: the keys are a one-off setup. Every draw goes through :meth:`Keys._random`, so a test can disable
one mask at a time (``mpsim.transcript.disabled_mask``) and check that the transcript tests notice.
"""
from __future__ import annotations

import math
import numpy as np

from mpsim import kernels
from mpsim.dealer import uniform_permutations

from . import correlations


class Keys:
    """The pairwise and common PRF keys of one ABY3 session (``session.keys``), and the correlations the
    three parties make from them."""

    def __init__(self, session):
        self.backend = session.backend
        self.channel = session.channel
        self.ring = session.ring
        self._watchers = []
        # Permutations from their own seeded stream, the same under every backend (as the dealer's), so the
        # shuffle top-k opens the same outcomes under share and ideal.
        self.perm_rng = np.random.default_rng([session.backend.prg.key, 0xAB3])

    def watch(self, callback):
        """Call ``callback(label, payload, kind, width)`` with every correlation sharing made from now on (for
        transcript tests: each party's rows of it are part of its view; ``width`` None: the ring's); returns a
        function that stops the watching."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback) if callback in self._watchers else None

    def _made(self, label: str, payload, kind: str = "A", width=None) -> None:
        for callback in list(self._watchers):
            callback(label, payload, kind, width)

    def _random(self, shape):
        """Uniform ring values of ``shape`` from the keys (zeros under the ideal backend, None under count)."""
        return self.backend.uniform(shape)

    def _permutations(self, rows: int, n: int) -> np.ndarray:
        """``rows`` uniform permutations of range(n) from a pair key."""
        return uniform_permutations(self.perm_rng, rows, n)

    @classmethod
    def correlations(cls) -> tuple[str, ...]:
        return ("zero_sharing", "zero_xor", "pair_mask", "common_mask", "rotation_onehot", "shuffle_pass", "edabit",
                "dabit")

    def _rows(self, shape):
        """A payload of zero rows of the backend's layout (ideal: one row), or None under count."""
        if not self.backend.has_data:
            return None
        return np.zeros((self.backend.rows,) + tuple(shape), dtype=np.uint64)

    def zero_sharing(self, shape):
        """Rows z_i = F(k_i) - F(k_(i+1)) summing to zero mod 2^K."""
        r = self._random((3,) + tuple(shape))
        if r is None or self.backend.rows != 3:
            return self._rows(shape)
        return self.backend.ring.reduce(kernels.ring_sub(r, np.roll(r, -1, axis=0)))

    def zero_xor(self, shape):
        """Rows z_i = F(k_i) ^ F(k_(i+1)) whose XOR is zero."""
        r = self._random((3,) + tuple(shape))
        if r is None or self.backend.rows != 3:
            return self._rows(shape)
        return np.bitwise_xor(r, np.roll(r, -1, axis=0))

    def pair_mask(self, shape):
        """F(k_j) for one pair key: a value the two holders of component j share."""
        return self._random(tuple(shape))

    def common_mask(self, shape):
        """A value all three parties derive from their common key."""
        return self._random(tuple(shape))

    def rotation_onehot(self, shape, size: int):
        """Per index a replicated sharing of r uniform in [0, size) (size a power of two), which no party
        knows, and of the one-hot e_r (length size), made by the three parties offline.

        Steps (offline, 2 rounds; rho_j and every mask from the key of the two parties named):
          1. r = rho_0 + rho_1 + rho_2 mod size, rho_j from key k_j: component j of r, free.
          2. Party 1 knows rho_1 and rho_2, hence w = e_(rho_1 + rho_2); it sends w - mu to party 2, mu from
             the key of parties 0 and 1 (so parties 0 and 2 hold a 2-out-of-2 sharing of w).
          3. Parties 0 and 2 know rho_0 and rotate their shares by it: s_0 + s_2 = e_r.
          4. Components 1 and 2 of e_r are masks c_1 (keys of parties 0, 1) and c_2 (parties 1, 2); in one
             call party 0 sends s_0 - c_1 to party 2 and party 2 sends s_2 - c_2 to party 0, and both form
             c_0 = e_r - c_1 - c_2.
        Offline: 3 K size bits per index, K size sent by each party (party 0 receives one element per
        position, party 2 two, party 1 none). Each party misses one rho_j, so r is uniform to it; every
        message is padded by a mask its receiver lacks.
        """
        shape = tuple(shape)
        n = int(math.prod(shape))
        bits = self.ring.bits * size * n
        sends_w = [(1, 2, bits)]
        sends_s = [(0, 2, bits), (2, 0, bits)]
        if not self.backend.has_data:
            self.channel.offline("rotation_onehot", sends_w)
            self.channel.offline("rotation_onehot", sends_s)
            return None, None
        mask = np.uint64(size - 1)
        positions = np.arange(size, dtype=np.uint64)
        rho = [self._random(shape) for _ in range(3)]
        mu, c1, c2 = (self._random(shape + (size,)) for _ in range(3))
        if self.backend.rows == 1:  # ideal: all draws are zero, so r = 0 and e_r = e_0
            self.channel.offline("rotation_onehot", sends_w)
            self.channel.offline("rotation_onehot", sends_s)
            r = np.zeros((1,) + shape, dtype=np.uint64)
            return r, (positions == r[..., None]).astype(np.uint64)
        ring = self.ring
        w = (positions == (kernels.ring_add(rho[1], rho[2]) & mask)[..., None]).astype(np.uint64)
        to_two = ring.reduce(kernels.ring_sub(w, mu))
        shift = (rho[0] & mask).astype(np.int64)
        s0, s2 = _rotate_by(mu, shift, size), _rotate_by(to_two, shift, size)
        from_zero, from_two = ring.reduce(kernels.ring_sub(s0, c1)), ring.reduce(kernels.ring_sub(s2, c2))
        e_r = np.stack([ring.reduce(kernels.ring_add(from_zero, from_two)), c1, c2])
        self.channel.offline("rotation_onehot", sends_w, [(only_row(to_two, 1), ring.bits, (1,))])
        self.channel.offline("rotation_onehot", sends_s, [(only_row(from_zero, 0), ring.bits, (0,)),
                                                           (only_row(from_two, 2), ring.bits, (2,))])
        r = np.stack(rho)
        self._made("rotation r", r)
        self._made("rotation one-hot", e_r)
        return r, e_r

    def edabit(self, shape):
        """An edaBit made by the parties offline (``correlations.edabit``): replicated payloads of a uniform r
        no party knows, arithmetic and XOR of its K-bit word. Offline: 2K - 3 bits per element to each party."""
        r_arith, r_bool = correlations.edabit(self, shape)
        if r_arith is not None:
            self._made("edabit r", r_arith)
            self._made("edabit bits", r_bool, "B")
        return r_arith, r_bool

    def dabit(self, shape):
        """A daBit made by the parties offline (``correlations.dabit``): replicated payloads of a uniform bit
        no party knows, arithmetic (0/1) and XOR. Offline: 2K bits per element to each party."""
        r_arith, r_bool = correlations.dabit(self, shape)
        if r_arith is not None:
            self._made("dabit r", r_arith)
            self._made("dabit bit", r_bool, "B", 1)
        return r_arith, r_bool

    def shuffle_pass(self, shape):
        """One pass of the 3-party shuffle (``protocols.aby3.shuffle``): a permutation per row of a
        (rows, m, w) tensor, from the key of the pass's two permuting parties, and two masks of the tensor's
        shape from the same key (the new component they share, and the one that pads the two messages)."""
        rows, m = shape[0], shape[1]
        perm = self._permutations(rows, m)
        return perm, self._random(tuple(shape)), self._random(tuple(shape))


def _rotate_by(v, shift, size: int):
    """v rotated by ``shift`` positions along its last axis, per element: out[j] = v[(j - shift) mod size]."""
    index = (np.arange(size, dtype=np.int64) - shift[..., None]) % size
    return np.take_along_axis(v, index, axis=-1)


def only_row(row, party: int):
    """A stacked payload holding ``row`` at ``party`` (what that party sends) and zeros elsewhere."""
    out = np.zeros((3,) + row.shape, dtype=np.uint64)
    out[party] = row
    return out
