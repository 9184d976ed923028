"""The correlation inventory (``Cost.inventory``): every correlation a run consumes, typed and counted.

Registry-driven: every cell of the additive scheme and of the FSS suite runs its example with every method of
its correlation source wrapped; each call must appear in the inventory as the hand count of its arguments
(units of that kind with those dimensions), the inventory must be the same on all three backends (share and
ideal for a randomized protocol), and the
dealer's price of the inventory (``costmodel.preprocessing.dealer_bits``) must be the offline bits the
ledger recorded, party by party.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import mpsim
from costmodel.preprocessing import dealer_bits
from mpsim.dealer import Dealer
from protocols.fss.keys import FssKeys
from protocols.registry import of

# Each scheme's sources of correlations: the FSS suite keeps the additive dealer for its Beaver products.
SOURCES = {"additive": [(Dealer, "dealer")], "fss": [(Dealer, "dealer"), (FssKeys, "keys")]}


def numel(shape) -> int:
    return int(np.prod(tuple(shape), dtype=np.int64))


def matrix(a, out):
    m, k, n = int(a[-2]), int(a[-1]), int(out[-1])
    return numel(out) // (m * n), (m, k, n)


# A hand count per correlation method: its call's arguments -> {(kind, dims): units}.
def hand_count(name, args, K):
    if name in ("beaver_triple",):
        return {("beaver_triple", ()): numel(np.broadcast_shapes(tuple(args[0]), tuple(args[1])))}
    if name in ("square_pair", "trunc_pair", "edabit", "dabit"):
        return {(name, ()): numel(args[0])}
    if name == "matmul_triple":
        units, dims = matrix(args[0], args[2])
        return {("matmul_triple", dims): units}
    if name == "reuse_triple":
        units, dims = matrix(args[0], args[2])
        return {("reuse_triple", dims): units}
    if name == "and_triple":
        return {("and_triple", ()): numel(args[0]) * args[1]}
    if name == "bit_select_triple":
        out = np.broadcast_shapes(tuple(args[0]), tuple(args[1]))
        return {("dabit", ()): numel(args[0]), ("bit_select_triple", ()): numel(out)}
    if name == "rotation_onehot":
        return {("rotation_onehot", (args[1],)): numel(args[0])}
    if name == "rotation_table":
        return {("rotation_table", (args[1], int(np.shape(args[2])[-1]))): numel(args[0])}
    if name == "shuffle_pass":
        return {("shuffle_pass", tuple(args[0][1:])): args[0][0]}
    if name == "msb_key":
        return {("msb_key", ("dcf", K - 1, 1, 1)): numel(args[0])}
    if name == "gate_key":
        return {("gate_key", ("dcf", K - 1, K, 2)): numel(args[0])}
    if name == "onehot_key":
        return {("onehot_key", ("dpf", args[1].bit_length() - 1, K, 1)): numel(args[0])}
    if name == "trunc_key":
        return {("trunc_key", ("dcf", K - 2, K, 1)): numel(args[0])}
    if name == "operand_mask":  # purely random: nothing to ship, nothing in the inventory
        return {}
    raise AssertionError(f"no hand count for the correlation {name!r}: add one")


def run_example(scheme, name, backend, K):
    s = mpsim.Session(parties=2, scheme=scheme, backend=backend, ring_bits=K, seed=1)
    calls = []
    for source, attr in SOURCES[scheme]:
        holder = getattr(s, attr)
        for method in source.correlations():
            original = getattr(holder, method)

            @functools.wraps(original)
            def wrapped(*args, _original=original, _method=method, **kwargs):
                calls.append((_method, args))
                return _original(*args, **kwargs)

            setattr(holder, method, wrapped)
    cell = of(scheme)[name]
    args, kwargs = cell.example(s)
    calls.clear()  # the example's inputs are not the protocol's
    mark = s.mark()
    cell.fn(*args, **kwargs)
    return s, s.cost(since=mark), calls


CELLS = [(scheme, name) for scheme in SOURCES for name in sorted(of(scheme)) if of(scheme)[name].parties(2)]


@pytest.mark.filterwarnings("ignore::mpsim.TruncationWarning")
@pytest.mark.parametrize("K", [32, 64])
@pytest.mark.parametrize("scheme,name", CELLS)
def test_the_inventory_is_the_hand_count_of_the_dealer_calls_and_the_dealer_price_is_the_ledger(scheme, name, K):
    inventories = {}
    for backend in ("share", "ideal", "count"):
        s, cost, calls = run_example(scheme, name, backend, K)
        expected: dict = {}
        for method, args in calls:
            for key, units in hand_count(method, args, K).items():
                expected[key] = expected.get(key, 0) + units
        assert cost.correlations == {k: v for k, v in expected.items() if v}, backend
        assert dealer_bits(cost.inventory, K, 2) == cost.offline_received_bits, backend
        inventories[backend] = cost.inventory
    assert inventories["share"] == inventories["ideal"]
    if of(scheme)[name].kind == "fixed":  # randomized: count draws the opened outcomes from their law
        assert inventories["share"] == inventories["count"]


def test_the_inventory_composes_like_the_costs():
    s = mpsim.Session(parties=2, backend="count")
    x = s.placeholder((3, 8))
    a = s.mark()
    _ = x * x
    b = s.mark()
    _ = x * x
    first, both = s.cost(since=a) - s.cost(since=b), s.cost(since=a)
    assert first.correlations == {("square_pair", ()): 24}
    assert (first + first).correlations == both.correlations == (first * 2).correlations
    assert (both - first).correlations == first.correlations
    assert both.as_dict()["inventory"] == [{"kind": "square_pair", "dims": [], "units": 48}]
