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

import numpy as np

from mpsim import kernels


class Keys:
    """The pairwise and common PRF keys of one ABY3 session (``session.keys``)."""

    def __init__(self, session):
        self.backend = session.backend

    def _random(self, shape):
        """Uniform ring values of ``shape`` from the keys (zeros under the ideal backend, None under count)."""
        return self.backend.uniform(shape)

    @classmethod
    def correlations(cls) -> tuple[str, ...]:
        return ("zero_sharing", "zero_xor", "pair_mask", "common_mask")

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
