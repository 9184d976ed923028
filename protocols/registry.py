"""The protocol registry: declared costs next to the code, checked against the ledger by the tests.

``@protocol(...)`` registers a function with its declared cost as formulas (strings of Python arithmetic)
over the ring bits ``K``, the party count ``N``, the party index ``p`` (for asymmetric protocols) and shape
variables that the entry's ``dims`` function reads off the actual arguments. The same strings print as the
complexity table (``mpsim table``, ``docs/complexity.md``), so the table cannot drift from what is checked.

Formulas of composite fixed-point protocols may also use the per-element truncation terms of the session's
truncation protocol: ``TR`` (rounds: 0 local, 1 dealer), ``TC`` (bits per party: 0 or K(N-1)) and ``TO``
(offline bits: 0 or 2K).

Per call a protocol declares

* ``rounds``: critical-path rounds (communication depth), and ``calls``: channel calls (sequential rounds,
  defaults to ``rounds``);
* ``comm``: online bits sent by party ``p``;
* ``offline``: bits the dealer sends in total.

``kind="fixed"`` protocols must match exactly on every backend. ``kind="randomized"`` is for protocols that
open values provably independent of the secrets (e.g. comparison outcomes after an oblivious shuffle) and
whose cost depends on them: the count backend draws those values from their distribution with the session
seed; the tests then check share == ideal exactly and count against share in distribution.

The wrapper opens a profiler scope named after the protocol, so every message a protocol sends carries its
name in the scope path, and it is the one place where operands entering a protocol are checked
(:func:`check_operands`): every shared operand (a ``SharedTensor`` or a reusable ``MaskedOperand``, also inside
a list or tuple argument) must belong to the calling session, and each must be of the sharing kind its
parameter accepts (``kinds``: parameter name -> "A", "B" or "AB"; every other shared parameter takes
arithmetic sharings).

``leaked`` declares, per channel op of the protocol's own body, what an opening shows when it is not a
masked (uniform) value: "output" (the opening is the protocol's result, as in ``reveal``) or "independent"
(random, with a distribution independent of the secrets, as the shuffle top-k's comparison outcomes). The
transcript tests (``tests/test_transcripts.py``, ``mpsim.transcript``) hold every other opening to uniformity.
"""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

from mpsim.ledger import Cost

_FORMULA_NAMESPACE = {
    "__builtins__": {},
    "ceil": math.ceil,
    "floor": math.floor,
    "log2": math.log2,
    "min": min,
    "max": max,
    "int": int,
}


@dataclass
class Protocol:
    name: str
    fn: Callable
    rounds: str
    comm: str
    offline: str
    calls: str | None = None
    leaks: str = "nothing beyond the output"
    ref: str = ""
    kind: str = "fixed"
    dims: Callable | None = None
    example: Callable | None = None
    parties: Callable[[int], bool] = field(default=lambda n: n >= 2)
    vars_doc: str = ""
    observe: Callable | None = None  # randomized kind: (messages, N) -> the random variables of the formulas
    leaked: dict = field(default_factory=dict)  # channel op -> "output" | "independent" (module docstring)
    kinds: dict = field(default_factory=dict)  # parameter -> accepted sharing kinds, "A", "B" or "AB"

    def evaluate(self, formula: str, env: dict) -> int:
        value = eval(formula, dict(_FORMULA_NAMESPACE), dict(env))  # formulas are our own literals
        if value != int(value):
            raise ValueError(f"{self.name}: formula {formula!r} gave non-integer {value}")
        return int(value)

    def declared(self, K: int, N: int, trunc: str = "local", **dims) -> Cost:
        """Declared cost; ``trunc`` ("local" or "dealer") sets the per-element truncation terms
        TR (rounds), TC (bits per party) and TO (offline bits) that composite formulas may use."""
        if trunc not in ("local", "dealer"):
            raise ValueError(f"trunc must be 'local' or 'dealer', got {trunc!r}")
        dealer = trunc == "dealer"
        env = {"K": K, "N": N, "TR": int(dealer), "TC": K * (N - 1) * dealer, "TO": 2 * K * dealer, **dims}
        sent = tuple(self.evaluate(self.comm, {**env, "p": p}) for p in range(N))
        offline = self.evaluate(self.offline, env)
        return Cost(
            rounds=self.evaluate(self.rounds, env),
            sequential_rounds=self.evaluate(self.calls or self.rounds, env),
            sent_bits=sent,
            offline_bits=offline,
            # The dealer ships every correction word to party 0 (mpsim/dealer.py).
            offline_received_bits=(offline,) + (0,) * (N - 1),
        )

    def declared_for(self, session, *args, messages=None, **kwargs) -> Cost:
        """Declared cost of calling this protocol with these arguments in this session; a randomized protocol
        also needs the call's ``messages`` to observe its random variables."""
        dims = self.dims(*args, **kwargs) if self.dims else {}
        if self.observe is not None:
            if messages is None:
                raise ValueError(f"{self.name} is randomized: pass the call's messages to observe its variables")
            dims = {**dims, **self.observe(messages, session.parties)}
        return self.declared(session.ring.bits, session.parties, trunc=session.trunc, **dims)


class OperandError(ValueError, TypeError):
    """An operand a protocol cannot take: a tensor of another session, or a sharing of the wrong kind (both a
    ValueError and a TypeError, as numpy's AxisError is both a ValueError and an IndexError)."""


REGISTRY: dict[str, Protocol] = {}
LEAK_KINDS = ("output", "independent")
SHARING_KINDS = ("A", "B", "AB")


def _shared_operands(value):
    """The shared operands in one argument: itself, or the members of a list or tuple."""
    if isinstance(value, (list, tuple)):
        return [v for v in value if getattr(v, "session", None) is not None]
    return [value] if getattr(value, "session", None) is not None else []


def _describe(session) -> str:
    return f"K={session.ring.bits}, N={session.parties}, {session.backend.name} backend"


def _session_of(args, kwargs):
    from mpsim.session import Session

    for value in list(args) + list(kwargs.values()):
        if isinstance(value, Session):
            return value
        operands = _shared_operands(value)
        if operands:
            return operands[0].session
    raise TypeError("a protocol needs a Session or a SharedTensor among its arguments")


def check_operands(entry: Protocol, session, signature: inspect.Signature, args, kwargs) -> None:
    """Refuse operands of another session, and sharings of a kind the parameter does not take, with a one-line
    :class:`OperandError`."""
    from mpsim.session import Session

    for value in list(args) + list(kwargs.values()):
        if isinstance(value, Session) and value is not session:
            raise OperandError(f"{entry.name}: cannot combine two different sessions ({_describe(session)}; "
                             f"{_describe(value)})")
        for operand in _shared_operands(value):
            if operand.session is not session:
                raise OperandError(f"{entry.name}: cannot combine tensors of two different sessions "
                                 f"({_describe(session)}; {_describe(operand.session)})")
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{entry.name}: {error}") from None
    for param, value in bound.arguments.items():
        accepted = entry.kinds.get(param, "A")
        for operand in _shared_operands(value):
            kind = getattr(operand, "kind", "A")  # a MaskedOperand masks an arithmetic sharing
            if kind not in accepted:
                names = {"A": "an arithmetic", "B": "a boolean"}
                raise OperandError(f"{entry.name}: {param} must be {' or '.join(names[k] for k in accepted)} "
                                   f"sharing, got {names[kind]} one")


def protocol(
    name: str,
    *,
    rounds: str,
    comm: str,
    offline: str,
    calls: str | None = None,
    leaks: str = "nothing beyond the output",
    ref: str = "",
    kind: str = "fixed",
    dims: Callable | None = None,
    example: Callable | None = None,
    parties: Callable[[int], bool] = lambda n: n >= 2,
    vars_doc: str = "",
    observe: Callable | None = None,
    leaked: dict | None = None,
    kinds: dict | None = None,
):
    """Register a protocol with its declared cost (see the module docstring). A randomized protocol gives
    ``observe(messages, N)``: the values of its random formula variables, read off its own messages, so that
    the formulas can still be checked exactly against a run."""
    if kind not in ("fixed", "randomized"):
        raise ValueError(f"kind must be 'fixed' or 'randomized', got {kind!r}")
    leaked, kinds = dict(leaked or {}), dict(kinds or {})
    if any(v not in LEAK_KINDS for v in leaked.values()):
        raise ValueError(f"{name}: leaked values must be in {LEAK_KINDS}, got {leaked}")
    if any(v not in SHARING_KINDS for v in kinds.values()):
        raise ValueError(f"{name}: kinds values must be in {SHARING_KINDS}, got {kinds}")

    def wrap(fn):
        if name in REGISTRY:
            raise ValueError(f"protocol {name!r} registered twice")
        signature = inspect.signature(fn)
        unknown = set(kinds) - set(signature.parameters)
        if unknown:
            raise ValueError(f"{name}: kinds names parameters it does not have: {sorted(unknown)}")

        @functools.wraps(fn)
        def run(*args, **kwargs):
            session = _session_of(args, kwargs)
            session._check_open()
            check_operands(entry, session, signature, args, kwargs)
            with session.scope(name):
                return fn(*args, **kwargs)

        entry = REGISTRY[name] = Protocol(
            name, run, rounds, comm, offline, calls, leaks, ref, kind, dims, example, parties, vars_doc, observe,
            leaked, kinds,
        )
        run.protocol = REGISTRY[name]
        return run

    return wrap


def markdown_table() -> str:
    """The declared-cost table of every registered protocol, as markdown (import ``protocols`` first: importing
    the package registers them all)."""

    lines = [
        "# Declared protocol costs",
        "",
        "Generated by `mpsim table` from the declarations in `protocols/`; `tests/test_costs.py` checks",
        "every row against the ledger (N in {2, 3, 4}, K in {32, 64}, all three backends) and that this",
        "file is current. K: ring bits; N: parties; p: party index; shape variables as listed per row;",
        "TR, TC, TO: rounds, bits per party and offline bits of one truncation per element (0, 0, 0 for",
        "local SecureML truncation; 1, K(N-1), 2K for dealer truncation).",
        "Comm is online bits sent by party p per call; offline is the dealer's total bits per call",
        "(seeds plus one correction word per derived element; see `mpsim/dealer.py`).",
        "",
        "| protocol | rounds | comm (bits, party p) | offline (bits) | variables | leaks | ref |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in sorted(REGISTRY.values(), key=lambda e: e.name):
        rounds = entry.rounds if entry.calls in (None, entry.rounds) else f"{entry.rounds} ({entry.calls} calls)"
        cells = [f"`{entry.name}`", rounds, f"`{entry.comm}`", f"`{entry.offline}`", entry.vars_doc,
                 entry.leaks, entry.ref]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
