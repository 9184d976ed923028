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

import networkx as nx

from mpsim.ledger import ONLINE, cost_of

__all__ = ["CriticalPath", "MergeSavings", "call_graph", "critical_path", "merge_savings"]

ROOT_SCOPE = "(root)"  # label of messages sent outside any scope


def call_graph(session) -> nx.DiGraph:
    """The channel calls of ``session`` as a DiGraph: node = call number with attributes ``scope``, ``op``,
    ``depth`` and ``bits`` (online bits of the call, all parties); edges parent -> call."""
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
        return " -> ".join(f"{scope or ROOT_SCOPE} x{n}" for scope, n in self.runs)


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
