"""Named operations for the command line: how to make random inputs of a shape for each protocol.

``OPS[name]`` gives the callable and the kind of inputs it takes; ``run_op`` shares random inputs of the
requested shape (owner 0 for the first operand, the last party for the second) and runs it inside a scope
named after the operation (a registered protocol's own scope). The catalogue is the hand-written table
below (fixed-point operators, arguments such as --axis, --k and --n, matrix shapes), then every other
registered protocol whose required parameters are one or two tensors of one sharing kind, annotated
``SharedTensor`` (``registered_ops``): a protocol of a plugin (``mpsim.protocols`` entry points, loaded
here) or one registered in the same process appears without being listed. ``OPS`` reads the registry on
every use, so it is never stale.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np

import protocols as P
from mpsim import SharedTensor
from protocols.registry import CELLS, SCHEMES, load_plugins, lookup


@dataclass(frozen=True)
class Op:
    fn: Callable
    inputs: str  # unary | binary | matmul | axis | topk | index | bool_unary | bool_binary | reuse
    doc: str = ""


def _ops() -> dict[str, Op]:
    ops = {
        "reveal": Op(P.reveal, "unary", "open to all parties"),
        "mul": Op(lambda x, y: x * y, "binary", "fixed-point product (Beaver + truncation)"),
        "beaver_mul": Op(P.beaver_mul, "binary", "ring product"),
        "square": Op(lambda x: x * x, "unary", "fixed-point square"),
        "matmul": Op(lambda x, y: x @ y, "matmul", "fixed-point matrix product; shape MxKxN"),
        "beaver_matmul": Op(P.beaver_matmul, "matmul", "ring matrix product; shape MxKxN"),
        "rep_matmul": Op(P.aby3.arith.rep_matmul, "matmul", "ABY3 ring matrix product; shape MxKxN (--scheme aby3)"),
        "matmul_reused": Op(lambda x, y: x @ P.mask_operand(y), "reuse",
                            "product with a reusable operand (mask once, then one use); shape MxKxN"),
        "trunc": Op(lambda x: P.truncate(x * 1, x.session.frac_bits), "unary", "the session's truncation"),
        "msb": Op(P.msb, "unary", "most significant bit (boolean)"),
        "ltz": Op(P.ltz, "unary", "x < 0 (boolean)"),
        "lt": Op(P.lt, "binary", "x < y (boolean)"),
        "gt": Op(P.gt, "binary", "x > y (boolean)"),
        "le": Op(P.le, "binary", "x <= y (boolean)"),
        "ge": Op(P.ge, "binary", "x >= y (boolean)"),
        "eqz": Op(P.eqz, "unary", "x == 0 (boolean)"),
        "eq": Op(P.eq, "binary", "x == y (boolean)"),
        "relu": Op(P.relu, "unary", "max(x, 0)"),
        "abs": Op(P.abs_, "unary", "|x|"),
        "sign": Op(P.sign, "unary", "sign of x (-1, 0 or 1)"),
        "maximum": Op(P.maximum, "binary", "elementwise max"),
        "minimum": Op(P.minimum, "binary", "elementwise min"),
        "max": Op(lambda x, axis: P.max(x, axis=axis), "axis", "max along --axis"),
        "min": Op(lambda x, axis: P.min(x, axis=axis), "axis", "min along --axis"),
        "argmax": Op(lambda x, axis: P.argmax(x, axis=axis), "axis", "max and one-hot along --axis"),
        "argmin": Op(lambda x, axis: P.argmin(x, axis=axis), "axis", "min and one-hot along --axis"),
        "topk": Op(lambda x, k, axis, method: P.topk(x, k, axis=axis, method=method), "topk",
                   "top-k along --axis (--k, --method)"),
        "onehot": Op(lambda i, n: P.onehot(i, n), "index", "one-hot of secret indices over --n positions"),
        "onehot_equality": Op(lambda i, n: P.onehot(i, n, method="equality"), "index",
                              "one-hot by equality tests (the straightforward way)"),
        "a2b": Op(P.a2b, "unary", "arithmetic to boolean"),
        "b2a": Op(P.b2a, "bool_unary", "boolean to arithmetic"),
        "and": Op(P.and_, "bool_binary", "bitwise AND of boolean words"),
    }
    for name in ("exp", "reciprocal", "rsqrt", "gelu", "silu"):
        if hasattr(P, name):
            ops[name] = Op(getattr(P, name), "unary", name)
    for name in ("layernorm", "rmsnorm"):
        if hasattr(P, name):
            ops[name] = Op(getattr(P, name), "unary", f"{name} along the last axis")
    if hasattr(P, "softmax"):
        ops["softmax"] = Op(lambda x, axis: P.softmax(x, axis=axis), "axis", "softmax along --axis (exact)")
        ops["softmax_puma"] = Op(lambda x, axis: P.softmax(x, axis=axis, method="puma"), "axis",
                                 "softmax along --axis (PUMA variant)")
    return ops


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _is_tensor(annotation) -> bool:
    # under ``from __future__ import annotations`` an annotation is its source text
    return annotation is SharedTensor or annotation in ("SharedTensor", "mpsim.SharedTensor")


def _tensor_inputs(cell) -> str | None:
    """The input kind of a protocol whose required parameters are one or two SharedTensors of one sharing kind
    (unary, binary, bool_unary, bool_binary); None for any other signature."""
    required = [p for p in inspect.signature(cell.fn).parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not 1 <= len(required) <= 2 or any(p.kind not in _POSITIONAL or not _is_tensor(p.annotation)
                                          for p in required):
        return None
    kinds = {cell.kinds.get(p.name, "A") for p in required}
    arity = "unary" if len(required) == 1 else "binary"
    if kinds <= {"A", "AB"}:
        return arity
    return f"bool_{arity}" if kinds == {"B"} else None


def _summary(cell) -> str:
    """The first sentence of the protocol's docstring, and the scheme to run it in unless additive."""
    paragraph = " ".join((cell.fn.__doc__ or "").strip().split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0].rstrip(".") or f"registered protocol {cell.name}"
    return sentence + ("" if cell.scheme == "additive" else f" (--scheme {cell.scheme})")


def registered_ops() -> dict[str, Op]:
    """An op for every registered protocol (plugins loaded first) that takes one or two plain tensors,
    by name; a name in several schemes is described by its first scheme's cell (the protocol runs the cell of
    the session's scheme)."""
    load_plugins()
    order = {scheme: i for i, scheme in enumerate(SCHEMES)}
    ops = {}
    for cell in sorted(CELLS.values(), key=lambda c: (order[c.scheme], c.name)):
        inputs = _tensor_inputs(cell)
        if inputs is not None and cell.name not in ops:
            ops[cell.name] = Op(cell.fn, inputs, _summary(cell))
    return ops


def catalogue() -> dict[str, Op]:
    """Every operation: the hand-written ones (they take precedence), then the other registered protocols."""
    ops = _ops()
    ops.update({name: op for name, op in sorted(registered_ops().items()) if name not in ops})
    return ops


class _Catalogue(Mapping):
    """``OPS``: the catalogue as it is when read, so protocols registered after this module was imported show."""

    def __getitem__(self, name: str) -> Op:
        return catalogue()[name]

    def __iter__(self):
        return iter(catalogue())

    def __len__(self) -> int:
        return len(catalogue())

    def items(self):  # one reading for the whole listing, not one per name
        return catalogue().items()


OPS = _Catalogue()


def parse_shape(text: str, variables: dict[str, int] | None = None) -> tuple[int, ...]:
    """'32x512' -> (32, 512); letters are looked up in ``variables`` ('32xN' with N=512)."""
    variables = variables or {}
    dims = []
    for part in text.lower().replace("*", "x").split("x"):
        part = part.strip()
        key = part.upper()
        if key in variables:
            dims.append(int(variables[key]))
        elif part.isdigit() and int(part) > 0:
            dims.append(int(part))
        else:
            raise ValueError(f"bad shape {text!r}: use positive integers joined by 'x', e.g. 32x512 or 32xN with --sweep N=...")
    return tuple(dims)


def _values(session, shape, rng, scale=4.0):
    if not session.backend.has_data:
        return np.broadcast_to(np.zeros((), dtype=np.float64), shape)
    return rng.uniform(-scale, scale, size=shape)


def run_op(session, name: str, shape: tuple[int, ...], axis: int = -1, k: int | None = None, n: int | None = None,
           method: str = "auto", seed: int = 0):
    """Share random inputs of ``shape`` and run operation ``name`` in a scope of that name."""
    ops = catalogue()
    if name not in ops:
        raise ValueError(f"unknown operation {name!r}; `mpsim op --list` shows them")
    op = ops[name]
    if op.inputs in ("axis", "topk") and not -len(shape) <= axis < len(shape):
        raise ValueError(f"--axis {axis} is out of range for shape {'x'.join(map(str, shape))}")
    rng = np.random.default_rng(seed)
    last = session.parties - 1
    # A registered protocol opens its own scope of the same name; others get one here.
    registered = lookup(session.scheme.name, name) is not None
    with nullcontext() if registered else session.scope(name):
        if op.inputs == "unary":
            x = session.input(_values(session, shape, rng), owner=0)
            if name in ("reciprocal", "rsqrt"):  # positive domain
                x = session.input(np.abs(_values(session, shape, rng)) + 0.5, owner=0)
            return op.fn(x)
        if op.inputs == "binary":
            return op.fn(session.input(_values(session, shape, rng), 0), session.input(_values(session, shape, rng), last))
        if op.inputs in ("matmul", "reuse"):
            if len(shape) != 3:
                raise ValueError(f"{name} takes a shape MxKxN, got {'x'.join(map(str, shape))}")
            m, kk, nn = shape
            x = session.input(_values(session, (m, kk), rng), 0)
            y = session.input(_values(session, (kk, nn), rng), last)
            return op.fn(x, y)
        if op.inputs == "axis":
            return op.fn(session.input(_values(session, shape, rng), 0), axis)
        if op.inputs == "topk":
            length = shape[axis]
            kk = k if k is not None else min(50, length)
            return op.fn(session.input(_values(session, shape, rng), 0), kk, axis, method)
        if op.inputs == "index":
            if n is None:
                raise ValueError(f"{name} needs --n (the number of positions)")
            idx = rng.integers(0, n, size=shape) if session.backend.has_data else np.zeros(shape, dtype=np.int64)
            return op.fn(session.input(idx, 0, frac_bits=0), n)
        if op.inputs in ("bool_unary", "bool_binary"):
            bound = 2 ** (session.ring.bits - 2)
            words = rng.integers(-bound, bound, size=shape) if session.backend.has_data else np.zeros(shape, np.int64)
            x = P.share_bits(session, words)
            if op.inputs == "bool_unary":
                return op.fn(x)
            return op.fn(x, P.share_bits(session, words[::-1].copy() if words.ndim else words, owner=last))
    raise AssertionError(op.inputs)
