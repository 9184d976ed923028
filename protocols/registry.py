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
name in the scope path.
"""
from __future__ import annotations

import functools
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


REGISTRY: dict[str, Protocol] = {}


def _session_of(args, kwargs):
    from mpsim.session import Session
    from mpsim.tensor import SharedTensor

    for value in list(args) + list(kwargs.values()):
        if isinstance(value, Session):
            return value
        session = getattr(value, "session", None)
        if isinstance(value, SharedTensor) or session is not None:
            return session
    raise TypeError("a protocol needs a Session or a SharedTensor among its arguments")


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
):
    """Register a protocol with its declared cost (see the module docstring). A randomized protocol gives
    ``observe(messages, N)``: the values of its random formula variables, read off its own messages, so that
    the formulas can still be checked exactly against a run."""
    if kind not in ("fixed", "randomized"):
        raise ValueError(f"kind must be 'fixed' or 'randomized', got {kind!r}")

    def wrap(fn):
        if name in REGISTRY:
            raise ValueError(f"protocol {name!r} registered twice")

        @functools.wraps(fn)
        def run(*args, **kwargs):
            session = _session_of(args, kwargs)
            session._check_open()
            with session.scope(name):
                return fn(*args, **kwargs)

        REGISTRY[name] = Protocol(
            name, run, rounds, comm, offline, calls, leaks, ref, kind, dims, example, parties, vars_doc, observe
        )
        run.protocol = REGISTRY[name]
        return run

    return wrap


def markdown_table() -> str:
    """The declared-cost table of every registered protocol, as markdown."""
    import protocols  # noqa: F401  (registers everything)

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
