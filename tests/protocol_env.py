"""Shared helper for the protocol test files (test_compare.py, test_oblivious.py, test_boolean.py).

``ProtocolEnv`` is one seeded session plus checked reveals of arithmetic values and boolean bits, the measured
cost of a call and the registry's declared cost. Each test file subclasses it, choosing its own seeds
(``SEED`` for the session, ``RNG_SEED`` for the data generator ``rng``) and adding its own input helpers.

Not a test module (pytest collects only ``test_*.py``); the test files import it as ``from protocol_env import
...``, which works because pytest puts ``tests/`` (a rootdir-relative directory without ``__init__.py``) on
``sys.path``.
"""
from __future__ import annotations

import numpy as np

import mpsim
import protocols as P
from mpsim import SharedTensor, Unrevealed
from protocols.registry import REGISTRY

BACKENDS = ("share", "ideal", "count")
RINGS = {64: 16, 32: 8}  # ring bits K -> fractional bits f
CONFIGS = [(b, n, k) for b in BACKENDS for n in (2, 3) for k in RINGS]


def config_id(config) -> str:
    backend, parties, ring_bits = config
    return f"{backend}-N{parties}-K{ring_bits}"


class ProtocolEnv:
    """A session on ``backend`` with N = ``parties``, K = ``ring_bits`` and f = ``RINGS[K]`` (dealer
    truncation at K = 32), plus checked reveals and costs. Under the count backend reveals are only
    checked to be ``Unrevealed`` of the right shape."""

    SEED = 0
    RNG_SEED = 0

    def __init__(self, backend, parties, ring_bits, seed=None, **session_options):
        self.backend, self.N, self.K = backend, parties, ring_bits
        self.f = RINGS[ring_bits]
        self.s = mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=self.f,
                               seed=self.SEED if seed is None else seed, backend=backend,
                               trunc="dealer" if ring_bits == 32 else "auto", **session_options)
        self.rng = np.random.default_rng(self.RNG_SEED)

    @property
    def count(self) -> bool:
        return self.backend == "count"

    def bits(self, t, expected, width=None, frac=None) -> None:
        """``t`` is a boolean sharing of ``expected``'s shape that reveals ``expected`` as uint64 words."""
        expected = np.asarray(expected)
        assert isinstance(t, SharedTensor) and t.kind == "B"
        assert t.shape == expected.shape
        if width is not None:
            assert t.width == width
        if frac is not None:
            assert t.frac == frac
        got = P.reveal_bits(t)
        if self.count:
            assert isinstance(got, Unrevealed) and got.shape == expected.shape
            return
        assert isinstance(got, np.ndarray) and got.dtype == np.uint64
        np.testing.assert_array_equal(got, expected.astype(np.uint64))

    def values(self, t, expected, frac=None) -> None:
        """``t`` is an arithmetic sharing of ``expected``'s shape that reveals exactly ``expected``."""
        expected = np.asarray(expected)
        assert isinstance(t, SharedTensor) and t.kind == "A"
        assert t.shape == expected.shape, f"shape {t.shape} != {expected.shape}"
        if frac is not None:
            assert t.frac == frac
        got = self.s.reveal(t)
        if self.count:
            assert isinstance(got, Unrevealed)
            return
        np.testing.assert_array_equal(got, expected)

    def cost_of(self, fn):
        """(fn(), the cost of that call)."""
        mark = self.s.mark()
        out = fn()
        return out, self.s.cost(since=mark)

    def declared(self, name, **dims) -> mpsim.Cost:
        return REGISTRY[name].declared(self.K, self.N, trunc=self.s.trunc, **dims)

    def zero(self) -> mpsim.Cost:
        return mpsim.Cost(0, 0, (0,) * self.N, 0, (0,) * self.N)
