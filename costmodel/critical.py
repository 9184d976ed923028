"""The call graph of a session: which channel calls wait for which, its critical path, and merge savings.

The channel records every call as a :class:`mpsim.channel.CallInfo` (call number, scope path, operation,
depth, parent calls). :func:`call_graph` turns that into a ``networkx.DiGraph`` (edges parent -> call, nodes
carrying scope, op, depth and the call's online bits); :func:`critical_path` follows parents back from a
deepest call, which names the chain of exchanges that sets the round count; :func:`merge_savings` says, per
top-level scope, how many rounds merging independent opens of equal depth would save
(``sequential_rounds - rounds``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpsim.ledger import ONLINE, cost_of

__all__ = ["CriticalPath", "MergeSavings", "call_graph", "compress", "critical_path", "format_runs",
           "merge_savings"]

if TYPE_CHECKING:
    import networkx as nx

ROOT_SCOPE = "(root)"  # label of messages sent outside any scope


def call_graph(session) -> nx.DiGraph:
    """The channel calls of ``session`` as a DiGraph: node = call number with attributes ``scope``, ``op``,
    ``depth`` and ``bits`` (online bits of the call, all parties); edges parent -> call."""
    import networkx as nx  # here, not at the top: a cost report that needs no graph skips its 11 MB

    bits: dict[int, int] = {}
    for m in session.ledger.messages:
        if m.phase == ONLINE:
            bits[m.call] = bits.get(m.call, 0) + m.bits
    graph = nx.DiGraph()
    for info in session.channel.call_info:
        graph.add_node(info.call, scope=info.scope, op=info.op, depth=info.depth, bits=bits.get(info.call, 0))
    for info in session.channel.call_info:
        for parent in info.parents:
            graph.add_edge(parent, info.call)
    return graph


@dataclass(frozen=True)
class PathStep:
    call: int
    scope: str
    op: str
    depth: int
    bits: int


@dataclass(frozen=True)
class CriticalPath:
    """A chain of calls from the first exchange to a deepest one (``steps``, in execution order), and the
    same chain compressed into runs of equal scope (``runs``: (scope, number of calls))."""

    steps: tuple[PathStep, ...]
    runs: tuple[tuple[str, int], ...]

    @property
    def depth(self) -> int:
        return self.steps[-1].depth if self.steps else 0

    @property
    def calls(self) -> tuple[int, ...]:
        return tuple(s.call for s in self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def format(self) -> str:
        return format_runs(self.runs)


def compress(tokens: list, max_period: int = 64) -> list:
    """``tokens`` with tandem repeats folded: a block of p consecutive tokens repeated r >= 2 times becomes
    ``("repeat", block, r)`` (block compressed again), the block covering the most tokens chosen first,
    the shortest block among equals; other tokens stay as they are. Blocks of more than ``max_period``
    tokens are not searched (a long critical path stays linear-time in practice)."""
    out, i, n = [], 0, len(tokens)
    while i < n:
        best_p, best_r = 1, 1
        for p in range(1, min(max_period, (n - i) // 2) + 1):
            r = 1
            while i + (r + 1) * p <= n and tokens[i + r * p:i + (r + 1) * p] == tokens[i:i + p]:
                r += 1
            if r >= 2 and p * r > best_p * best_r:
                best_p, best_r = p, r
        if best_r >= 2:
            out.append(("repeat", compress(tokens[i:i + best_p], max_period), best_r))
            i += best_p * best_r
        else:
            out.append(tokens[i])
            i += 1
    return out


def format_runs(runs) -> str:
    """A critical path's runs as text, repeated groups folded: ``a x7 -> [b x1 -> c x2] x15 -> d x1``."""
    def text(items):
        parts = []
        for item in items:
            if isinstance(item, tuple) and item and item[0] == "repeat":
                inner = text(item[1])
                parts.append(f"[{inner}] x{item[2]}" if len(item[1]) > 1 else f"({inner}) x{item[2]}")
            else:
                scope, calls = item
                parts.append(f"{scope or ROOT_SCOPE} x{calls}")
        return " -> ".join(parts)

    return text(compress([tuple(r) for r in runs]))


def critical_path(session) -> CriticalPath:
    """The chain of maximal depth: start at a deepest call (the latest one among equals) and repeatedly step
    to its deepest parent (the latest among equals), back to a call with no parents."""
    graph = call_graph(session)
    if not graph:
        return CriticalPath((), ())
    node = max(graph.nodes, key=lambda c: (graph.nodes[c]["depth"], c))
    chain = [node]
    while True:
        parents = list(graph.predecessors(node))
        if not parents:
            break
        node = max(parents, key=lambda c: (graph.nodes[c]["depth"], c))
        chain.append(node)
    chain.reverse()
    steps = tuple(PathStep(c, **{k: graph.nodes[c][k] for k in ("scope", "op", "depth", "bits")}) for c in chain)
    runs: list[list] = []
    for step in steps:
        if runs and runs[-1][0] == step.scope:
            runs[-1][1] += 1
        else:
            runs.append([step.scope, 1])
    return CriticalPath(steps, tuple((s, n) for s, n in runs))


@dataclass(frozen=True)
class MergeSavings:
    """Rounds that merging independent opens of equal depth would save: ``sequential_rounds - rounds``, per
    top-level scope (``by_scope``; messages outside any scope under ``"(root)"``) and for the whole session
    (``total``). Per-scope savings need not add up to the total: calls of different scopes that share a
    depth are further merge candidates for the session as a whole."""

    total: int
    rounds: int
    sequential_rounds: int
    by_scope: dict[str, int]

    def as_dict(self) -> dict:
        return {"total": self.total, "rounds": self.rounds, "sequential_rounds": self.sequential_rounds,
                "by_scope": dict(self.by_scope)}


def merge_savings(session) -> MergeSavings:
    groups: dict[str, list] = {}
    for m in session.ledger.messages:
        if m.phase == ONLINE:
            groups.setdefault(m.scope.split("/", 1)[0] if m.scope else ROOT_SCOPE, []).append(m)
    by_scope = {}
    for scope, msgs in groups.items():
        c = cost_of(msgs, session.parties)
        by_scope[scope] = c.sequential_rounds - c.rounds
    total = session.ledger.cost()
    return MergeSavings(total.sequential_rounds - total.rounds, total.rounds, total.sequential_rounds, by_scope)
