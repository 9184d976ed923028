"""``SharedTensor``: a secret-shared array with a numpy-like surface.

All parties' shares live in one payload owned by the session's backend: a ``(N, *shape)`` uint64 array for
the share backend, ``(1, *shape)`` for the ideal backend, nothing for the count backend (see backend.py). A
tensor also carries its fixed-point scale (``frac``: fractional bits, 0 for integer data) and its depth
stamp (the communication depth at which its value became available; local operations take the maximum of
their inputs').

Local operations (indexing, reshaping, transposes, concatenation, sums, addition, multiplication by public
integers) cost nothing and run here. Interactive ones (``*`` and ``@`` between shared tensors, products with
public reals, which need a truncation) are delegated to ``protocols/``, which count every message.

Public operands: Python/numpy integers are exact integers (``x * 3`` costs nothing); so, as factors, are
floats with whole-number values (``x * 2.0``, ``x * -3.0``: exact, no truncation); other floats are
fixed-point reals encoded at the session's ``frac_bits`` (``x * 0.5`` needs a truncation). Adding a public
value encodes it at the tensor's own scale.
"""
from __future__ import annotations

import math
from numbers import Integral, Number

import numpy as np

from . import kernels
from .backend import CountBackendError


def _numel(shape) -> int:
    return int(math.prod(shape))


def _shape_after(shape, fn):
    """The shape a numpy view operation gives, computed on a zero-stride dummy (no data touched)."""
    dummy = np.broadcast_to(np.empty((), dtype=np.uint8), shape)
    return tuple(fn(dummy).shape)


def _reduced_shape(shape, axis, keepdims: bool) -> tuple[int, ...]:
    """The shape of a reduction over ``axis`` (None, an int or a tuple), as numpy gives it (no dummy: a
    reduction would visit every element of the zero-stride dummy)."""
    ndim = len(shape)
    axes = range(ndim) if axis is None else (axis,) if isinstance(axis, (int, np.integer)) else axis
    norm = set()
    for a in axes:
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        if a % ndim in norm:
            raise ValueError("duplicate value in 'axis'")
        norm.add(a % ndim)
    if keepdims:
        return tuple(1 if i in norm else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in norm)


def _check_real(value) -> None:
    """Refuse a complex public operand: casting it to float64 would drop its imaginary part silently."""
    if np.iscomplexobj(value):
        raise TypeError(f"public operands must be real, got complex {type(value).__name__} (dtype "
                        f"{np.asarray(value).dtype}): the ring holds no imaginary part")


def exact_integers(value):
    """A public real operand whose every element is a whole number (``2.0``, ``-3.0``, ``[1.0, 4.0]``) as
    int64, else None: multiplying by it is a local product by the integer, which needs no truncation. Values
    beyond int64 stay reals (their encoding reports the range error)."""
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(np.abs(array) >= 2.0**63) or np.any(array != np.rint(array)):
        return None
    return array.astype(np.int64)


def is_integer_public(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, Integral):
        return True
    if isinstance(value, np.ndarray):
        return np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_
    return False


class SharedTensor:
    """A secret-shared tensor of one session. Build one with ``session.input``; never directly."""

    __array_ufunc__ = None  # numpy defers to our reflected operators: array + shared -> shared.__radd__
    __array_priority__ = 1000

    def __init__(self, session, payload, shape, frac: int, depth: int = 0, kind: str = "A", width: int | None = None,
                 calls=None):
        if kind not in ("A", "B"):
            raise ValueError(f"kind is 'A' (arithmetic, additive shares) or 'B' (boolean, XOR shares), got {kind!r}")
        self.session = session
        self.payload = payload
        self.shape = tuple(map(int, shape))
        self.frac = int(frac)
        self.depth = int(depth)
        self.kind = kind
        # Boolean sharings: how many low bits of each word are meaningful (K for words, 1 for bits);
        # opening one costs ``width`` bits per element.
        self.width = session.ring.bits if width is None else int(width)
        # The channel call that produced this value's deepest dependency (-1: none), for the call graph. By
        # default the latest call at this depth: protocols build their outputs right after their own call.
        self.calls = session.channel.frontier(self.depth) if calls is None else frozenset(calls)

    # -- basic properties ----------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return _numel(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d shared tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        bits = f", width={self.width}" if self.kind == "B" else ""
        return (
            f"SharedTensor(shape={self.shape}, frac={self.frac}, kind={self.kind}{bits}, depth={self.depth}, "
            f"backend={self.session.backend.name})"
        )

    def __array__(self, *args, **kwargs):
        raise TypeError("a SharedTensor holds secret shares; use session.reveal(x) to open it")

    def __bool__(self):
        raise TypeError("the truth value of a secret is not public; reveal it or use a comparison protocol")

    # Comparisons of secrets are protocols (they communicate), never Python operators: without these, == and !=
    # would compare identities and return a public False. Hashing stays by identity.
    __hash__ = object.__hash__

    def _no_operator(self, op: str, call: str):
        raise TypeError(f"'{op}' on a SharedTensor would not compare the secret values; use {call} (a secret bit)")

    def __eq__(self, other):
        self._no_operator("==", "protocols.eq(x, y)")

    def __ne__(self, other):
        self._no_operator("!=", "protocols.not_(protocols.eq(x, y))")

    def __lt__(self, other):
        self._no_operator("<", "protocols.lt(x, y)")

    def __le__(self, other):
        self._no_operator("<=", "protocols.le(x, y)")

    def __gt__(self, other):
        self._no_operator(">", "protocols.gt(x, y)")

    def __ge__(self, other):
        self._no_operator(">=", "protocols.ge(x, y)")

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @property
    def shares(self) -> np.ndarray:
        """The raw stacked shares (share backend) or plaintext row (ideal backend)."""
        if self.payload is None:
            raise CountBackendError("the count backend holds no data: shares cannot be read")
        return self.payload

    # -- construction helpers ------------------------------------------------------------------------------
    def _like(self, payload, shape, frac=None, depth=None, kind=None, width=None, calls=None) -> "SharedTensor":
        return SharedTensor(
            self.session,
            payload,
            shape,
            self.frac if frac is None else frac,
            self.depth if depth is None else depth,
            self.kind if kind is None else kind,
            self.width if width is None else width,
            (self.calls if depth is None else None) if calls is None else calls,
        )

    def _view(self, fn) -> "SharedTensor":
        """A local shape operation applied to every party's share (axis 0 is the party axis)."""
        shape = _shape_after(self.shape, fn)
        backend = self.session.backend
        payload = None
        if backend.has_data:
            payload = np.stack([fn(row) for row in self.payload]) if self.payload.shape[0] else None
            payload = np.ascontiguousarray(payload)
        return self._like(payload, shape)

    def _payload_nd(self, ndim: int):
        """The payload with singleton axes inserted after the party axis, for broadcasting to ``ndim``."""
        if self.payload is None:
            return None
        extra = ndim - self.ndim
        return self.payload.reshape(self.payload.shape[:1] + (1,) * extra + self.payload.shape[1:])

    def _check_arith(self, op: str) -> None:
        if self.kind != "A":
            raise TypeError(f"'{op}' needs an arithmetic sharing; convert this boolean-shared tensor first")

    def _same_session(self, other: "SharedTensor") -> None:
        if other.session is not self.session:
            raise ValueError("cannot combine tensors of two different sessions")

    # -- shape operations (local, free) ----------------------------------------------------------------------
    def _whole_payload_view(self, shape, fn) -> "SharedTensor":
        """``_view`` for an operation that acts on the stacked payload as it does on each row (a reshape, basic
        indexing): one numpy call instead of one per party and a stack."""
        payload = None
        if self.session.backend.has_data:
            payload = np.ascontiguousarray(fn(self.payload))
        return self._like(payload, shape)

    def __getitem__(self, index) -> "SharedTensor":
        if isinstance(index, SharedTensor):
            raise TypeError("indexing by a secret needs an oblivious selection protocol (protocols.gather)")
        parts = index if isinstance(index, tuple) else (index,)
        if all(part is Ellipsis or isinstance(part, slice)
               or (isinstance(part, (int, np.integer)) and not isinstance(part, (bool, np.bool_))) for part in parts):
            # basic indexing: the same on the stacked payload behind a leading full slice
            shape = _shape_after(self.shape, lambda a: a[index])
            return self._whole_payload_view(shape, lambda p: p[(slice(None),) + parts])
        return self._view(lambda a: a[index])

    def reshape(self, *shape) -> "SharedTensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        new = _shape_after(self.shape, lambda a: a.reshape(shape))  # numpy's rules and errors
        return self._whole_payload_view(new, lambda p: np.ascontiguousarray(p).reshape(p.shape[:1] + new))

    def transpose(self, *axes) -> "SharedTensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        shape = _shape_after(self.shape, lambda a: a.transpose(*axes) if axes else a.transpose())  # checks axes
        order = [int(a) % self.ndim for a in axes] if axes else list(range(self.ndim))[::-1]
        return self._whole_payload_view(shape, lambda p: p.transpose([0] + [a + 1 for a in order]))

    @property
    def T(self) -> "SharedTensor":
        return self.transpose()

    def swapaxes(self, a1: int, a2: int) -> "SharedTensor":
        shape = _shape_after(self.shape, lambda a: a.swapaxes(a1, a2))  # checks the axes
        return self._whole_payload_view(shape, lambda p: p.swapaxes(int(a1) % self.ndim + 1, int(a2) % self.ndim + 1))

    def moveaxis(self, source, destination) -> "SharedTensor":
        return self._view(lambda a: np.moveaxis(a, source, destination))

    def broadcast_to(self, shape) -> "SharedTensor":
        return self._view(lambda a: np.broadcast_to(a, shape))

    def expand_dims(self, axis) -> "SharedTensor":
        return self._view(lambda a: np.expand_dims(a, axis))

    def squeeze(self, axis=None) -> "SharedTensor":
        return self._view(lambda a: np.squeeze(a, axis))

    def flatten(self) -> "SharedTensor":
        return self.reshape(-1)

    def copy(self) -> "SharedTensor":
        return self._like(None if self.payload is None else self.payload.copy(), self.shape)

    def sum(self, axis=None, keepdims: bool = False) -> "SharedTensor":
        self._check_arith("sum")
        shape = _reduced_shape(self.shape, axis, keepdims)
        payload = None
        if self.session.backend.has_data:
            ax = _shift_axis(axis, self.ndim)
            payload = self.session.ring.reduce(
                np.ascontiguousarray(np.sum(self.payload, axis=ax, keepdims=keepdims, dtype=np.uint64))
            )
        return self._like(payload, shape)

    def mean(self, axis=None, keepdims: bool = False) -> "SharedTensor":
        """Sum, then a division by the public count n in two steps: a truncation by g = ceil(log2 n), then a
        product with the public real 2^g / n in [1, 2) (one more truncation, except for a power of two n,
        where it is 1: exact). Encoding 2^g / n rather than 1 / n keeps the relative error of the constant at
        2^-(f+1) instead of n 2^-(f+1)."""
        if self.frac == 0:
            raise ValueError("mean of an integer-encoded tensor is not an integer; use sum, or a fixed-point input")
        total = self.sum(axis=axis, keepdims=keepdims)
        count = self.size // max(total.size, 1) if self.size else 0
        if count == 0:
            raise ValueError("mean of an empty selection")
        if count == 1:
            return total
        g = max(1, (count - 1).bit_length())
        shifted = self.session.scheme.truncate(total._like(total.payload, total.shape, frac=total.frac + g), g)
        return shifted * (2.0**g / count)

    # -- arithmetic ------------------------------------------------------------------------------------------------
    def _align(self, other: "SharedTensor"):
        """Bring two shared tensors to one fixed-point scale (multiplying the coarser by 2^d is local)."""
        self._same_session(other)
        a, b = self, other
        if a.frac < b.frac:
            a = a._scale_up(b.frac - a.frac)
        elif b.frac < a.frac:
            b = b._scale_up(a.frac - b.frac)
        return a, b

    def _scale_up(self, bits: int) -> "SharedTensor":
        out = self._mul_public_int(1 << bits)
        out.frac = self.frac + bits
        return out

    def _broadcast_shape(self, other_shape) -> tuple[int, ...]:
        if other_shape == self.shape:  # most operands of a protocol step: no broadcasting to work out
            return self.shape
        try:
            return tuple(np.broadcast_shapes(self.shape, tuple(other_shape)))
        except ValueError:
            raise ValueError(f"shapes {self.shape} and {tuple(other_shape)} cannot be broadcast together") from None

    def _encode_public(self, value, frac: int) -> np.ndarray:
        ring = self.session.ring
        if is_integer_public(value):
            return ring.from_ints(value) if frac == 0 else ring.encode(np.asarray(value, dtype=np.float64), frac)
        return ring.encode(value, frac)

    def __add__(self, other) -> "SharedTensor":
        self._check_arith("+")
        if isinstance(other, SharedTensor):
            a, b = self._align(other)
            shape = self._broadcast_shape(b.shape)
            nd = len(shape)
            payload = self.session.backend.map(kernels.ring_add, a._payload_nd(nd), b._payload_nd(nd))
            return a._like(payload, shape, depth=max(a.depth, b.depth), calls=a.calls | b.calls)
        if not isinstance(other, (Number, np.ndarray, list, tuple)):
            return NotImplemented
        _check_real(other)
        if self.frac == 0 and not is_integer_public(other):
            # int + real is a real (as in numpy): lift to the session's scale first (a local product).
            return self._scale_up(self.session.frac_bits) + other
        public = self._encode_public(other, self.frac)
        shape = self._broadcast_shape(np.shape(public))
        payload = self.session.backend.add_public(self._payload_nd(len(shape)), public)
        return self._like(payload, shape)

    __radd__ = __add__

    def __neg__(self) -> "SharedTensor":
        self._check_arith("-")
        payload = self.session.backend.map(lambda x: np.negative(x), self.payload)
        return self._like(payload, self.shape)

    def __sub__(self, other) -> "SharedTensor":
        if isinstance(other, SharedTensor):
            return self + (-other)
        if not isinstance(other, (Number, np.ndarray, list, tuple)):
            return NotImplemented
        _check_real(other)
        if is_integer_public(other) and self.frac == 0:
            return self + (-np.asarray(other, dtype=np.int64))
        return self + (-np.asarray(other, dtype=np.float64))

    def __rsub__(self, other) -> "SharedTensor":
        return (-self) + other

    def _mul_public_int(self, value) -> "SharedTensor":
        public = self.session.ring.from_ints(value)
        shape = self._broadcast_shape(np.shape(public))
        payload = self.session.backend.map(lambda x: kernels.ring_mul(x, public), self._payload_nd(len(shape)))
        return self._like(payload, shape)

    def __mul__(self, other) -> "SharedTensor":
        self._check_arith("*")
        if isinstance(other, SharedTensor):
            self._same_session(other)
            return self.session.scheme.mul(self, other)
        if not isinstance(other, (Number, np.ndarray, list, tuple)):
            return NotImplemented
        _check_real(other)
        if is_integer_public(other):
            return self._mul_public_int(other)
        # A whole-number real (x * 2.0) scales exactly, as the integer would, on a fixed-point tensor; an
        # integer-encoded tensor times a real becomes a real (as in numpy), which its product already does
        # without a truncation.
        whole = exact_integers(other) if self.frac else None
        if whole is not None:
            return self._mul_public_int(whole)
        return self.session.scheme.mul_public(self, np.asarray(other, dtype=np.float64))

    __rmul__ = __mul__

    def __matmul__(self, other) -> "SharedTensor":
        scheme = self.session.scheme
        self._check_arith("@")
        if scheme.is_operand(other):
            return scheme.matmul_operand(self, other)
        if isinstance(other, SharedTensor):
            self._same_session(other)
            return scheme.matmul(self, other)
        if not isinstance(other, (np.ndarray, list, tuple)):
            return NotImplemented
        _check_real(other)
        return scheme.matmul_public(self, np.asarray(other), public_on_left=False)

    def __rmatmul__(self, other) -> "SharedTensor":
        if not isinstance(other, (np.ndarray, list, tuple)):
            return NotImplemented
        _check_real(other)
        return self.session.scheme.matmul_public(self, np.asarray(other), public_on_left=True)

    def __pow__(self, exponent) -> "SharedTensor":
        if exponent == 2:
            return self * self
        raise NotImplementedError("only x ** 2 is supported (use repeated products for higher powers)")


def _shift_axis(axis, ndim):
    """Map a user axis (or tuple of axes) on the logical shape to the payload's axes (party axis first)."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, tuple):
        return tuple(_shift_axis(a, ndim) for a in axis)
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim + 1


def concatenate(tensors, axis: int = 0) -> SharedTensor:
    """Concatenate shared tensors of one session (and one kind) along an existing axis. Local."""
    return _join(tensors, lambda arrs: np.concatenate(arrs, axis=axis), "concatenate")


def stack(tensors, axis: int = 0) -> SharedTensor:
    """Stack shared tensors of one session along a new axis. Local."""
    return _join(tensors, lambda arrs: np.stack(arrs, axis=axis), "stack")


_NO_BYTES = np.dtype([])  # a structured dtype without fields: itemsize 0


def _join(tensors, fn, what: str) -> SharedTensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{what} needs at least one tensor")
    if not all(isinstance(t, SharedTensor) for t in tensors):
        raise TypeError(f"{what} takes SharedTensors; share public arrays with session.input first")
    first = tensors[0]
    for t in tensors[1:]:
        first._same_session(t)
        if t.kind != first.kind:
            raise ValueError(f"cannot {what} arithmetic and boolean sharings")
    frac = max(t.frac for t in tensors)
    if first.kind == "A":
        tensors = [t._scale_up(frac - t.frac) if t.frac < frac else t for t in tensors]
    try:
        # the join of zero-byte stand-ins: numpy's own shape rules and errors, with no memory behind them
        shape = tuple(fn([np.broadcast_to(np.empty((), _NO_BYTES), t.shape) for t in tensors]).shape)
    except ValueError as err:
        raise ValueError(f"cannot {what} shapes {[t.shape for t in tensors]}: {err}") from None
    payload = None
    if first.session.backend.has_data:
        payload = np.ascontiguousarray(
            np.stack([fn([t.payload[r] for t in tensors]) for r in range(first.payload.shape[0])])
        )
    width = max(t.width for t in tensors)
    deepest = max(tensors, key=lambda t: t.depth)
    calls = frozenset().union(*(t.calls for t in tensors))
    return SharedTensor(first.session, payload, shape, frac, deepest.depth, first.kind, width, calls)
