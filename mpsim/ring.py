"""The ring Z_2^K and fixed-point encoding: the only place where numbers enter the ring.

Ring elements are stored in numpy ``uint64`` arrays for both supported widths (K = 64 and K = 32); for
K = 32 every result is reduced with ``& mask``. The signed (two's-complement) view of an element v is
v - 2^K when v >= 2^(K-1). A real number x is encoded with f fractional bits as round(x * 2^f) in the
signed view, so the representable reals are [-2^(K-1-f), 2^(K-1-f) - 2^-f]; anything outside that range,
NaN or infinity raises ``ValueError`` naming the range. Nothing wraps silently.

Hygiene rules (see style.md): shares stay ``uint64``; ``int64`` views are used only to decode or shift;
every constant enters through :meth:`Ring.const`, which reduces it mod 2^K once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPPORTED_RING_BITS = (32, 64)


@dataclass(frozen=True)
class Ring:
    """Z_2^K with K in {32, 64}, elements held in uint64 arrays."""

    bits: int = 64

    def __post_init__(self):
        if self.bits not in SUPPORTED_RING_BITS:
            raise ValueError(f"ring_bits must be one of {SUPPORTED_RING_BITS}, got {self.bits!r}")

    @property
    def modulus(self) -> int:
        return 1 << self.bits

    @property
    def mask(self) -> np.uint64:
        return np.uint64((1 << self.bits) - 1)

    def const(self, value) -> np.uint64:
        """The one helper through which an integer constant enters the ring (reduced mod 2^K)."""
        return np.uint64(int(value) % (1 << self.bits))

    def reduce(self, array: np.ndarray) -> np.ndarray:
        """Reduce a uint64 array mod 2^K in place (a no-op for K = 64) and return it.

        A numpy scalar (what ufuncs return for 0-d inputs) comes back as a fresh 0-d array.
        """
        if not isinstance(array, np.ndarray):
            array = np.array(array)
        if array.dtype != np.uint64:
            raise TypeError(f"ring arrays must be uint64, got {array.dtype}")
        if self.bits < 64:
            np.bitwise_and(array, self.mask, out=array)
        return array

    def from_ints(self, values) -> np.ndarray:
        """Integers (Python ints or an integer array, any sign) to ring elements, reducing mod 2^K.

        Integer arrays must fit in int64/uint64; this is the integer counterpart of :meth:`encode` and is
        used for exact integer data (indices, counts) at scale 0.
        """
        arr = np.asarray(values) if not isinstance(values, (int, list, tuple)) else None
        if arr is None:
            # Python ints stay exact: numpy would turn [2**63, -5] or a huge int into float64.
            obj = np.array(values, dtype=object)
            exact = all(isinstance(v, (int, np.integer)) for v in obj.ravel())
            arr = obj if exact else np.asarray(values)
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        if arr.dtype == np.uint64:
            if arr.size and int(arr.max()) >= self.modulus:
                raise ValueError(f"integers must lie in [{lo}, {self.modulus - 1}] for a {self.bits}-bit ring")
            return np.array(arr, dtype=np.uint64, copy=True)
        if arr.dtype == object:
            # Unsigned values are taken as ring representatives: [0, 2^K) is allowed too.
            ints = [int(v) for v in arr.ravel()]
            if any(not lo <= v < self.modulus for v in ints):
                raise ValueError(f"integers must lie in [{lo}, {self.modulus - 1}] for a {self.bits}-bit ring")
            return np.array([v % self.modulus for v in ints], dtype=np.uint64).reshape(arr.shape)
        if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
            raise TypeError(f"from_ints expects integers, got dtype {arr.dtype}")
        signed = np.array(arr, dtype=np.int64)
        if self.bits < 64 and signed.size and (int(signed.min()) < lo or int(signed.max()) > hi):
            raise ValueError(f"integers must lie in [{lo}, {hi}] for a {self.bits}-bit ring")
        return self.reduce(np.array(signed.view(np.uint64), copy=True))

    def to_signed(self, array: np.ndarray) -> np.ndarray:
        """The two's-complement signed view, as a fresh int64 array."""
        if array.dtype != np.uint64:
            raise TypeError(f"ring arrays must be uint64, got {array.dtype}")
        if self.bits == 64:
            return array.view(np.int64).copy()
        half = np.uint64(1 << (self.bits - 1))
        # (v xor 2^(K-1)) - 2^(K-1) sign-extends the top ring bit.
        return (np.bitwise_xor(array, half).astype(np.int64)) - np.int64(1 << (self.bits - 1))

    def real_range(self, frac_bits: int) -> tuple[float, float]:
        """The closed interval of float64 reals that encode with ``frac_bits`` fractional bits.

        The top is the largest float64 not above (2^(K-1) - 1) / 2^f (at K = 64 that is not 2^(63-f) - 2^-f,
        which float64 cannot hold).
        """
        top = (1 << (self.bits - 1)) - 1
        hi = float(top)
        if int(hi) > top:
            hi = float(np.nextafter(hi, 0.0))
        return (-(2.0 ** (self.bits - 1 - frac_bits)), hi / 2.0**frac_bits)

    def encode(self, values, frac_bits: int) -> np.ndarray:
        """Reals to ring elements: round(x * 2^f) in two's complement. Raises on NaN/inf/out of range."""
        if not 0 <= frac_bits < self.bits - 1:
            raise ValueError(f"frac_bits must be in [0, {self.bits - 2}], got {frac_bits}")
        if np.iscomplexobj(values):
            raise TypeError(f"cannot encode complex values (dtype {np.asarray(values).dtype}): the ring holds reals")
        x = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            lo, hi = self.real_range(frac_bits)
            raise ValueError(
                f"cannot encode NaN or infinity: a {self.bits}-bit ring with {frac_bits} fractional bits holds "
                f"finite reals in [{lo}, {hi}]"
            )
        scaled = np.asarray(np.rint(x * 2.0**frac_bits))
        lo_int, hi_int = -(2.0 ** (self.bits - 1)), 2.0 ** (self.bits - 1)
        # hi_int is exclusive: the largest representable scaled value is 2^(K-1) - 1.
        if scaled.size and (scaled.min() < lo_int or scaled.max() >= hi_int):
            lo, hi = self.real_range(frac_bits)
            bad = x.ravel()[np.argmax((scaled.ravel() < lo_int) | (scaled.ravel() >= hi_int))]
            raise ValueError(
                f"value {bad!r} is outside the representable range [{lo}, {hi}] of a {self.bits}-bit ring "
                f"with {frac_bits} fractional bits"
            )
        return self.reduce(np.array(scaled.astype(np.int64).view(np.uint64), copy=True))

    def decode(self, array: np.ndarray, frac_bits: int) -> np.ndarray:
        """Ring elements to float64 reals (signed view divided by 2^f)."""
        return self.to_signed(array).astype(np.float64) / 2.0**frac_bits
