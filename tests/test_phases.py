"""Rounds of a phase and the call graph: two ledger defects found on the way to the scheme seam.

1. A decode step's operations inherited the depth stamps of setup objects (the masked KV cache): a product
   with the cache started from the setup's depth while a fresh input started from 0, so the step's distinct
   depths overcounted its rounds (about 10 rounds on MPCache's step). ``Session.barrier()`` starts a phase;
   the decode step calls it.
2. A value combining two calls remembered only the deeper one, so the call graph (and the critical path)
   lost the other dependency (MPCache's similarity -> top-k). Values now carry every call they wait for.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

import mpsim
import protocols as P
from costmodel.critical import call_graph, critical_path
from mpcache.decode import decode_step, prepare
from mpcache.models import MODELS


def _deep(s, x, n):
    for _ in range(n):
        x = P.beaver_mul(x, x)
    return x


def _phase_rounds(barrier: bool) -> int:
    s = mpsim.Session(parties=2, seed=0, backend="count")
    old = _deep(s, s.placeholder((4,)), 5)  # made in the setup, at depth 5
    if barrier:
        s.barrier()
    mark = s.mark()
    fresh = s.placeholder((4,))
    _deep(s, old, 3)  # two independent branches of 3 rounds each
    _deep(s, fresh, 3)
    return s.cost(since=mark).rounds


def test_a_phase_after_a_barrier_counts_its_own_critical_path():
    assert _phase_rounds(barrier=True) == 3
    assert _phase_rounds(barrier=False) == 6  # the defect: depths 6..8 and 1..3 counted apart


def test_a_value_made_of_two_calls_waits_for_both():
    s = mpsim.Session(parties=2, seed=0, backend="count")
    a = _deep(s, s.placeholder((3,)), 2)
    b = _deep(s, s.placeholder((3,)), 1)
    calls_a, calls_b = a.calls, b.calls
    P.beaver_mul(a + b, s.placeholder((3,)))
    last = s.channel.call_info[-1]
    assert set(last.parents) == set(calls_a) | set(calls_b) and len(last.parents) == 2
    assert last.depth == 3


def _step_graph(policy):
    s = mpsim.Session(parties=2, seed=0, backend="count")
    run = prepare(s, MODELS["mpcache-proxy"], 1024, policy)
    first, mark = len(s.channel.call_info), s.mark()
    decode_step(run)
    graph = call_graph(s).subgraph(range(first, len(s.channel.call_info)))
    return s, graph, s.cost(since=mark)


def test_a_decode_step_costs_its_own_critical_path():
    """Rounds of the step == the longest chain of calls within the step (edges into the setup dropped)."""
    for policy in ("full", "mpcache"):
        _, graph, cost = _step_graph(policy)
        assert cost.rounds == nx.dag_longest_path_length(graph) + 1, policy


def test_mpcaches_critical_path_runs_from_the_similarity_into_the_top_k():
    s, graph, _ = _step_graph("mpcache")
    edges = {(graph.nodes[u]["scope"], graph.nodes[v]["scope"]) for u, v in graph.edges}
    assert any("/similarity" in su and "/topk" in sv for su, sv in edges)
    scopes = [step.scope for step in critical_path(s).steps]
    similarity = next(i for i, sc in enumerate(scopes) if "/similarity" in sc)
    assert "/topk" in scopes[similarity + 1]


def test_values_keep_their_calls_through_local_operations():
    s = mpsim.Session(parties=2, seed=1)
    x, y = s.input(np.ones((2, 2))), s.input(np.ones((2, 2)))
    u, v = P.beaver_mul(x, y), P.beaver_mul(y, y)
    joined = mpsim.concatenate([u, v], axis=0)
    assert joined.calls == u.calls | v.calls and len(joined.calls) == 2
    assert (u.reshape(4).calls, u.T.calls, (u * 3).calls) == (u.calls,) * 3
