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
* ``offline``: offline bits the dealer ships to party 0 (its correction words), and ``offline_each`` the
  bits it ships to every party p besides (FSS keys); in a scheme declared with
  :func:`declare_offline_per_party` (correlations the parties make among themselves, as in ABY3) ``offline``
  is the bits party ``p`` receives. The declared total is the sum over the parties.

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

Registering a name that a scheme already has fails, unless it is the same function defined again (same module
and qualified name: a notebook cell run twice, a reloaded module): then the new definition replaces every
cell of the old one, with a :class:`ProtocolRedefinedWarning`. Protocols of installed packages join the
registry through the ``mpsim.protocols`` entry-point group (:func:`load_plugins`): each entry names a module
whose import registers them; :func:`declarations` and :func:`markdown_table` load them first.
"""
from __future__ import annotations

import functools
import importlib.metadata
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Callable

from mpsim.ledger import Cost

from .cost import Expr, Formula

# Schemes the registry knows cells for; a scheme package declares its truncation terms on import.
SCHEMES = ("additive", "aby3", "fss")
# A suite overlays a scheme: its own cells, and the base scheme's for every protocol it does not redefine
# (the FSS suite: the additive scheme with comparisons by function secret sharing).
OVERLAYS = {"fss": "additive"}
# The schemes a protocol written once over the primitives registers for.
COMPOSED = SCHEMES


def composed_except(*schemes: str) -> tuple[str, ...]:
    """The schemes of a protocol written once, but for those with a protocol of their own under its name
    (the FSS suite's splines and gates: ``protocols.fss``)."""
    return tuple(s for s in COMPOSED if s not in schemes)


def chain(scheme: str) -> list[str]:
    """``scheme`` and the schemes it overlays, nearest first."""
    out = [scheme]
    while out[-1] in OVERLAYS:
        out.append(OVERLAYS[out[-1]])
    return out


def lookup(scheme: str, name: str):
    """The (scheme, protocol) key of protocol or role ``name`` for ``scheme`` (its own or an overlaid
    scheme's cell), or None."""
    for s in chain(scheme):
        key = (s, ROLES.get((s, name), name))
        if key in CELLS:
            return key
    return None


# (scheme, session truncation mode) -> expressions of TR (rounds), TC (bits sent by party p per element), TO
# (offline bits per element to party 0, or to party p where offline is per party) and TS (bits shipped to
# every party besides: FSS keys) of one truncation, then TRp, TCp, TOp, TSp: what truncating a product's
# output adds to the product (see ``declare_truncation``).
TRUNCATION: dict[tuple[str, str], tuple[Expr, ...]] = {}
TRUNCATION_TERMS = ("TR", "TC", "TO", "TS", "TRp", "TCp", "TOp", "TSp")

# Schemes whose offline formulas give the bits party p receives (correlations the parties make among
# themselves); elsewhere an offline formula is what a dealer ships to party 0, and ``offline_each`` what it
# ships to every party p besides.
OFFLINE_PER_PARTY: set[str] = set()


def declare_offline_per_party(scheme: str) -> None:
    OFFLINE_PER_PARTY.add(scheme)


def declare_truncation(scheme: str, mode: str, rounds, comm, offline, after_product=None, shipped="0") -> None:
    """The per-element cost of ``scheme``'s truncation in session mode ``mode`` ("local", "dealer", ...), which
    composite formulas use as TR, TC, TO and TS (``shipped``: bits to every party, as FSS keys);
    ``after_product`` (rounds, comm, offline[, shipped]) is what truncating a product's output adds to the
    product, TRp, TCp, TOp and TSp (a scheme that fuses the two pays less; default: a truncation of its own)."""
    after = (rounds, comm, offline, shipped) if after_product is None else tuple(after_product)
    after = after + ("0",) * (4 - len(after))
    TRUNCATION[(scheme, mode)] = tuple(Expr(e) for e in (rounds, comm, offline, shipped, *after))


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
    scheme: str = "additive"
    compose: Callable | None = None  # (callee lookup) -> Formula, for protocols written once over primitives
    offline_each: str = "0"  # bits shipped to every party p besides ``offline`` (a dealer's FSS keys)

    @property
    def formula(self) -> Formula:
        """The declared cost as expressions: composed from the callees' cells of the same scheme, or the
        formulas given at registration."""
        if self.compose is not None:
            return self.compose(Callees(self.scheme))
        if self.scheme in OFFLINE_PER_PARTY:
            return Formula.of(self.rounds, self.comm, "0", self.calls, shipped=self.offline)
        return Formula.of(self.rounds, self.comm, self.offline, self.calls, shipped=self.offline_each)

    def evaluate(self, formula, env: dict) -> int:
        try:
            return Expr(formula).evaluate(env) if isinstance(formula, str) else formula.evaluate(env)
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from None

    def declared(self, K: int, N: int, trunc: str = "local", **dims) -> Cost:
        """Declared cost; ``trunc`` ("local" or "dealer") sets the per-element truncation terms
        TR (rounds), TC (bits sent by party p), TO (offline bits) and TS (bits to each party) of this scheme
        that formulas may use."""
        if (self.scheme, trunc) not in TRUNCATION:
            modes = sorted(m for s, m in TRUNCATION if s == self.scheme)
            raise ValueError(f"trunc must be one of {modes} for the {self.scheme} scheme, got {trunc!r}")
        f = self.formula.at(**dict(zip(TRUNCATION_TERMS, TRUNCATION[(self.scheme, trunc)])))
        env = {"K": K, "N": N, **dims}
        sent = tuple(self.evaluate(f.comm, {**env, "p": p}) for p in range(N))
        to_first = self.evaluate(f.offline, env)  # a dealer's correction words go to party 0 (mpsim/dealer.py)
        received = tuple(to_first * int(p == 0) + self.evaluate(f.shipped, {**env, "p": p}) for p in range(N))
        offline = sum(received)
        return Cost(
            rounds=self.evaluate(f.rounds, env),
            sequential_rounds=self.evaluate(f.calls, env),
            sent_bits=sent,
            offline_bits=offline,
            offline_received_bits=received,
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


def call(name: str, *args, **kwargs):
    """Run the session's scheme's protocol ``name`` (or role): how a protocol written once over the
    primitives reaches them, e.g. ``call("msb", x)``."""
    return cell(_session_of(args, kwargs), name).fn(*args, **kwargs)


class OperandError(ValueError, TypeError):
    """An operand a protocol cannot take: a tensor of another session, or a sharing of the wrong kind (both a
    ValueError and a TypeError, as numpy's AxisError is both a ValueError and an IndexError)."""


class Callees:
    """The declared formulas of one scheme's cells by protocol name, for composing (``d.msb``, ``d["and"]``)."""

    def __init__(self, scheme: str):
        self.scheme = scheme

    def __getitem__(self, name: str) -> Formula:
        key = lookup(self.scheme, name)
        if key is None:
            raise KeyError(f"the {self.scheme} scheme has no protocol {name!r} to compose from")
        return CELLS[key].formula

    __getattr__ = __getitem__

    def _offline(self, bits: str, shipped: str) -> dict:
        # TS / TSp appear only in the formulas of a scheme that has a truncation shipping to every party
        ships = any(s == self.scheme and (terms[3] != Expr(0) or terms[7] != Expr(0))
                    for (s, _), terms in TRUNCATION.items())
        if self.scheme in OFFLINE_PER_PARTY:
            return {"shipped": f"{bits} + {shipped}" if ships else bits}
        return {"offline": bits, "shipped": shipped if ships else "0"}

    def trunc(self, n) -> Formula:
        """One truncation of each of n elements: the scheme's per-element terms TR, TC, TO, TS."""
        return Formula.of("TR", "TC*n", **self._offline("TO*n", "TS*n")).at(n=n)

    def after_product(self, n) -> Formula:
        """What truncating a product's n outputs adds to it: TRp, TCp, TOp, TSp (``declare_truncation``)."""
        return Formula.of("TRp", "TCp*n", **self._offline("TOp*n", "TSp*n")).at(n=n)

    def select_after(self, value: Formula, bit: Formula, nb, ny, n, times=1) -> Formula:
        """``bit_select`` (``times`` times) of a bit that ``bit`` makes on values that ``value`` makes, the
        two side by side: a scheme whose selection has a stage on the bit alone (``declare_select_stages``:
        ABY3's daBit opening) runs that stage beside ``value``."""
        stages = SELECT_STAGES.get(self.scheme)
        if stages is None:
            return (value | bit) + self.bit_select.at(nb=nb, ny=ny, n=n) * times
        on_bit, rest = stages(self, nb, ny, n)
        return (value | (bit + on_bit * times)) + rest * times


# (scheme, role) -> the name of the scheme's protocol that plays it, where schemes name them differently
# (the ring product: Beaver's in the additive scheme, the replicated one in ABY3).
ROLES: dict[tuple[str, str], str] = {}


def declare_role(scheme: str, role: str, name: str) -> None:
    ROLES[(scheme, role)] = name


# scheme -> (callees, nb, ny, n) -> (the stage of bit_select on the bit alone, the rest), where it has one.
SELECT_STAGES: dict[str, Callable] = {}


def declare_select_stages(scheme: str, stages: Callable) -> None:
    SELECT_STAGES[scheme] = stages


# Every (scheme, protocol) cell; REGISTRY is the additive scheme's cells by name (the default scheme).
CELLS: dict[tuple[str, str], Protocol] = {}
REGISTRY: dict[str, Protocol] = {}


def of(scheme: str) -> dict[str, Protocol]:
    """The cells of one scheme, by protocol name (a suite's include the overlaid scheme's it does not
    redefine)."""
    out = {}
    for s in reversed(chain(scheme)):
        out.update({name: entry for (sc, name), entry in CELLS.items() if sc == s})
    return out


def cell(session, name: str) -> Protocol:
    """The cell of protocol (or role) ``name`` in the session's scheme; a clear error when it has none."""
    scheme = session.scheme.name
    key = lookup(scheme, name)
    if key is None:
        name = ROLES.get((scheme, name), name)
        raise NotImplementedError(f"the {scheme} scheme has no {name!r} protocol (yet); "
                                  f"schemes with one: {sorted(s for s, n in CELLS if n == name)}")
    return CELLS[key]


class ProtocolRedefinedWarning(UserWarning):
    """A protocol was registered again by a new definition of the same function, which replaced the old one."""


def _source(fn) -> str:
    """What identifies a function across re-definitions: its module and qualified name."""
    return f"{fn.__module__}.{fn.__qualname__}"


def _unregister(name: str, run) -> None:
    """Drop every cell that registering ``run`` (a wrapper ``protocol`` returned) made, in every scheme."""
    for scheme, entry in run.cells.items():
        if CELLS.get((scheme, name)) is entry:
            del CELLS[(scheme, name)]
        if REGISTRY.get(name) is entry:
            del REGISTRY[name]


def _make_room(name: str, schemes: tuple, fn) -> None:
    """Refuse a second protocol of this name in a scheme that has one, unless ``fn`` is the same function
    defined again: then the old registration goes, with a warning (re-running a notebook cell must work)."""
    for sc in schemes:
        old = CELLS.get((sc, name))
        if old is not None and _source(old.fn) != _source(fn):
            raise ValueError(f"protocol {name!r} registered twice for the {sc} scheme "
                             f"(by {_source(old.fn)} and by {_source(fn)})")
    for run in dict.fromkeys(CELLS[(sc, name)].fn for sc in schemes if (sc, name) in CELLS):
        _unregister(name, run)
        where = " and ".join(sorted(run.cells, key=SCHEMES.index))
        warnings.warn(f"protocol {name!r} redefined by {_source(fn)}: the new definition replaces the old one "
                      f"in the {where} scheme{'s' if len(run.cells) > 1 else ''}", ProtocolRedefinedWarning,
                      stacklevel=3)


# Protocol plugins: modules of installed packages that register protocols when imported.
PLUGIN_GROUP = "mpsim.protocols"
PLUGINS: dict[str, str] = {}  # loaded entry points: name -> the module it names


class PluginError(ImportError):
    """A module of the ``mpsim.protocols`` entry-point group failed to import (or to register its protocols)."""


def load_plugins() -> dict[str, str]:
    """Import every module that the ``mpsim.protocols`` entry-point group names (in a package's
    ``pyproject.toml``: ``[project.entry-points."mpsim.protocols"]`` then ``mine = "my_package.protocols"``),
    once each; returns the loaded ones (name -> module). A plugin that fails raises :class:`PluginError`
    naming it, and is tried again by the next call, not remembered as loaded."""
    for point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        if PLUGINS.get(point.name) == point.value:
            continue
        try:
            point.load()
        except Exception as error:
            origin = f"distribution {point.dist.name!r}" if point.dist is not None else "an unknown distribution"
            raise PluginError(f"protocol plugin {point.name!r} = {point.value!r} (from {origin}) failed to load: "
                              f"{type(error).__name__}: {error}") from error
        PLUGINS[point.name] = point.value
    return dict(PLUGINS)


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
    rounds: str | None = None,
    comm: str = "0",
    offline: str = "0",
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
    scheme: str | tuple = "additive",
    cost: Callable | None = None,
    offline_each: str = "0",
):
    """Register a protocol with its declared cost (see the module docstring). A randomized protocol gives
    ``observe(messages, N)``: the values of its random formula variables, read off its own messages, so that
    the formulas can still be checked exactly against a run.

    ``scheme`` names the scheme whose primitive this is, or a tuple of schemes for a protocol written once
    over the primitives; such a protocol gives ``cost``, a function of the callee lookup (:class:`Callees`)
    returning its :class:`Formula`, instead of ``rounds``/``comm``/``offline`` strings, so each scheme's cell
    composes that scheme's callees."""
    if kind not in ("fixed", "randomized"):
        raise ValueError(f"kind must be 'fixed' or 'randomized', got {kind!r}")
    leaked, kinds = dict(leaked or {}), dict(kinds or {})
    if any(v not in LEAK_KINDS for v in leaked.values()):
        raise ValueError(f"{name}: leaked values must be in {LEAK_KINDS}, got {leaked}")
    if any(v not in SHARING_KINDS for v in kinds.values()):
        raise ValueError(f"{name}: kinds values must be in {SHARING_KINDS}, got {kinds}")

    schemes = (scheme,) if isinstance(scheme, str) else tuple(scheme)
    if any(sc not in SCHEMES for sc in schemes):
        raise ValueError(f"{name}: unknown scheme in {schemes}; known: {SCHEMES}")
    if (cost is None) == (rounds is None):
        raise ValueError(f"{name}: declare either rounds/comm/offline formulas or a composed cost, not both")
    if cost is None and len(schemes) > 1:
        raise ValueError(f"{name}: formulas given as strings belong to one scheme; compose them with cost=")

    def wrap(fn):
        signature = inspect.signature(fn)
        unknown = set(kinds) - set(signature.parameters)
        if unknown:
            raise ValueError(f"{name}: kinds names parameters it does not have: {sorted(unknown)}")
        _make_room(name, schemes, fn)  # last: a refused redefinition leaves the old one registered

        @functools.wraps(fn)
        def run(*args, **kwargs):
            session = _session_of(args, kwargs)
            session._check_open()
            entry = entries.get(session.scheme.name)
            key = lookup(session.scheme.name, name) if entry is None else None
            if key is not None and key[0] not in entries:
                # the session's scheme (or the scheme it overlays) has its own protocol of this name
                # (``protocols.msb`` in an ABY3 session)
                return CELLS[key].fn(*args, **kwargs)
            if key is not None:
                entry = entries[key[0]]
            if entry is None:
                raise NotImplementedError(f"{name} is a protocol of the {' and '.join(schemes)} scheme"
                                          f"{'s' if len(schemes) > 1 else ''}, not of {session.scheme.name}")
            check_operands(entry, session, signature, args, kwargs)
            with session.scope(name):
                return fn(*args, **kwargs)

        entries = {}
        for sc in schemes:
            entries[sc] = CELLS[(sc, name)] = Protocol(
                name, run, rounds, comm, offline, calls, leaks, ref, kind, dims, example, parties, vars_doc,
                observe, leaked, kinds, sc, cost, offline_each,
            )
            if sc == "additive":
                REGISTRY[name] = entries[sc]
        run.protocol = entries[schemes[0]]
        run.cells = entries
        return run

    return wrap


def _offline_text(f: Formula) -> str:
    """A composed formula's offline bits: the dealer's to party 0, and what each party p receives besides."""
    zero = Expr(0)
    if f.shipped == zero:
        return str(f.offline)
    if f.offline == zero:
        return str(f.shipped)
    return f"{f.offline}; to each party p: {f.shipped}"


def cell_declaration(entry: Protocol) -> dict:
    """One cell's declaration as text: scheme, protocol, rounds, calls, comm, offline (party 0's; then
    "to each party p" where it ships keys), variables, leaks, ref (``mpsim table --json``)."""
    if entry.compose is None:
        rounds, calls, comm, offline = entry.rounds, entry.calls, entry.comm, entry.offline
        if entry.offline_each != "0":
            offline = f"{offline}; to each party p: {entry.offline_each}"
    else:
        f = entry.formula
        rounds, calls, comm, offline = str(f.rounds), str(f.calls), str(f.comm), _offline_text(f)
    return {"scheme": entry.scheme, "protocol": entry.name, "rounds": rounds, "calls": calls or rounds,
            "comm": comm, "offline": offline, "variables": entry.vars_doc, "leaks": entry.leaks, "ref": entry.ref}


def declarations() -> list[dict]:
    """Every cell's ``cell_declaration``, by scheme (additive, aby3, fss) and protocol name, plugins' included
    (:func:`load_plugins`)."""
    load_plugins()
    order = {scheme: i for i, scheme in enumerate(SCHEMES)}
    return [cell_declaration(e) for e in sorted(CELLS.values(), key=lambda e: (order[e.scheme], e.name))]


def _cells_row(entry: Protocol) -> str:
    d = cell_declaration(entry)
    rounds = d["rounds"] if d["calls"] == d["rounds"] else f"{d['rounds']} ({d['calls']} calls)"
    cells = [f"`{entry.name}`", rounds, f"`{d['comm']}`", f"`{d['offline']}`", entry.vars_doc, entry.leaks, entry.ref]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


_HEADER = ["| protocol | rounds | comm (bits, party p) | offline (bits) | variables | leaks | ref |",
           "|---|---|---|---|---|---|---|"]


def markdown_table() -> str:
    """The declared-cost table of every registered protocol, per scheme, as markdown (import ``protocols``
    first: importing the package registers them all; plugins are loaded here, :func:`load_plugins`)."""
    load_plugins()

    lines = [
        "# Declared protocol costs",
        "",
        "Generated by `mpsim table` from the declarations in `protocols/`; `tests/test_costs.py` checks",
        "every row against the ledger (every scheme's party counts, K in {32, 64}, all three backends) and",
        "that this file is current. K: ring bits; N: parties; p: party index; shape variables as listed per",
        "row. Comm is online bits sent by party p per call; offline is the bits of correlated randomness per",
        "call. Protocols written once over the primitives print their formula composed from their callees'",
        "cells of the same scheme.",
        "",
        "## additive (N parties, trusted dealer)",
        "",
        "TR, TC, TO: rounds, bits per party and offline bits of one truncation per element (0, 0, 0 for",
        "local SecureML truncation; 1, K(N-1), 2K for dealer truncation). Offline bits are the dealer's",
        "(seeds plus one correction word per derived element; see `mpsim/dealer.py`).",
        "",
        *_HEADER,
    ]
    lines += [_cells_row(entry) for entry in sorted(REGISTRY.values(), key=lambda e: e.name)]
    aby3 = of("aby3")
    if aby3:
        lines += [
            "",
            "## aby3 (3 parties, replicated sharing, no dealer)",
            "",
            "TR, TC, TO of one truncation per element: ABY3's share truncation (1 round, K bits sent by",
            "party 0, 0 offline; fused into a product: 1 more round, 0 bits) for `trunc=\"local\"` (K = 64's",
            "default); `trunc_pr` with pairs made by the parties (1, K, 2K^2) for `trunc=\"pair\"` (K = 32's",
            "default). There is no dealer: zero sharings and masks come from",
            "pairwise PRF keys agreed at setup (`protocols/aby3/prf.py`), and the correlations a dealer would",
            "hand out (edaBits, daBits, rotation one-hots) are made by the parties offline",
            "(`protocols/aby3/correlations.py`); offline formulas give the bits party p receives.",
            "",
            *_HEADER,
        ]
        lines += [_cells_row(entry) for entry in sorted(aby3.values(), key=lambda e: e.name)]
    fss = {name: entry for (sc, name), entry in CELLS.items() if sc == "fss"}
    if fss:
        lines += [
            "",
            "## fss (2 parties, the additive scheme with comparisons by function secret sharing)",
            "",
            "The suite overlays the additive scheme: its own cells (the DCF msb, the spline gates, the DPF",
            "one-hot, the exact truncation) and every protocol written once over the primitives, composed",
            "from them, are listed; every other protocol is the additive scheme's, with the additive",
            "declaration. Offline: the dealer's corrections to party 0, then \"to each party p\": its FSS keys",
            "(lambda = 128). TR, TC, TO, TS: as in the additive scheme for `trunc=\"local\"` (K = 64's default)",
            "and `\"dealer\"` (TS = 0); for `trunc=\"exact\"` (K = 32's default) `trunc_exact`'s 1, K, 2K and",
            "a DCF key of 128 + (K - 2)(K + 130) + K bits to each party.",
            "",
            *_HEADER,
        ]
        lines += [_cells_row(entry) for entry in sorted(fss.values(), key=lambda e: e.name)]
    return "\n".join(lines) + "\n"
