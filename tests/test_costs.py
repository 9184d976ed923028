"""Measured == declared for every registered protocol, and identical ledgers on all three backends."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mpsim
import protocols
from mpsim.testing import assert_declared
from protocols.registry import CELLS, REGISTRY, markdown_table

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("share", "ideal", "count")
CASES = [(name, n, k) for name in sorted(REGISTRY) for n in (2, 3, 4) for k in (32, 64)]
# Every cell of the other schemes, at the party counts they run with.
SCHEME_PARTIES = {"aby3": (3,), "fss": (2,)}
SCHEME_CASES = [(scheme, name, n, k) for (scheme, name) in sorted(CELLS) if scheme != "additive"
                for n in SCHEME_PARTIES[scheme] for k in (32, 64)]


def _session(parties, ring_bits, backend, seed=7, scheme="additive"):
    # With K = 32 the fixed-point scale must leave room for products at scale 2f.
    return mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=8 if ring_bits == 32 else 16,
                         seed=seed, backend=backend, scheme=scheme)


def test_every_protocol_has_a_complete_declaration():
    assert len(REGISTRY) >= 9
    for entry in REGISTRY.values():
        doc = entry.fn.__doc__ or ""
        for line in ("Rounds:", "Comm:", "Leaks:", "Ref:"):
            assert line in doc, f"{entry.name} docstring lacks {line!r}"
        assert entry.example is not None and entry.dims is not None and entry.ref


@pytest.mark.parametrize("name,parties,ring_bits", CASES)
def test_measured_equals_declared_on_every_backend(name, parties, ring_bits):
    """Measured == declared on every backend (a randomized protocol's formulas at the random variables its own
    run shows), every message in the protocol's scope, the backends' ledgers alike: ``assert_declared``."""
    configs = [(parties, ring_bits, backend) for backend in BACKENDS]
    if not REGISTRY[name].parties(parties):
        with pytest.raises(ValueError):
            assert_declared(REGISTRY[name], configs[:1])
        return
    assert_declared(REGISTRY[name], configs)


@pytest.mark.filterwarnings("ignore::mpsim.TruncationWarning")
@pytest.mark.parametrize("scheme,name,parties,ring_bits", SCHEME_CASES)
def test_every_scheme_cell_measured_equals_declared_on_every_backend(scheme, name, parties, ring_bits):
    """The same check for the cells of every other scheme (ABY3): primitives declared as formulas, protocols
    written once over them declared by composing their callees' cells."""
    assert_declared(CELLS[(scheme, name)], [(parties, ring_bits, backend) for backend in BACKENDS])


def test_every_scheme_cell_has_a_complete_declaration():
    for (scheme, name), entry in CELLS.items():
        doc = entry.fn.__doc__ or ""
        for line in ("Rounds:", "Comm:", "Leaks:", "Ref:"):
            assert line in doc, f"{scheme}/{name} docstring lacks {line!r}"
        assert entry.example is not None and entry.dims is not None and entry.ref
        entry.formula  # composes (every callee exists in the scheme)


def _variant_calls(s):
    """Calls whose declaration depends on a choice made from the arguments (the registered examples cover
    one choice each): (registry name, args, kwargs)."""
    rng = np.random.default_rng(3)
    x = s.input(np.round(rng.uniform(-3, 3, (3, 6)), 2))
    y = s.input(np.round(rng.uniform(-3, 3, (6,)), 2), owner=s.parties - 1)
    idx = s.input(rng.integers(0, 6, (2, 3)), frac_bits=0)
    fidx = s.input(np.array([0.0, 3.0, 5.0]))
    table = s.input(np.round(rng.uniform(-3, 3, (6, 2)), 2))
    cond = protocols.lt(x, y)
    return [
        ("where", (cond, x, y), {}), ("where", (protocols.b2a_bit(cond), 1.5, y), {}),
        ("where", (cond[:, :1], x, -1.0), {}),
        ("lt", (x, y), {}), ("eq", (0.5, x), {}), ("maximum", (x, 0.25), {}), ("minimum", (y, x), {}),
        ("max", (x,), {"axis": 0}), ("argmin", (x,), {"axis": 0, "return_index": True}),
        ("onehot", (idx, 6), {}), ("onehot", (idx, 6), {"method": "equality"}), ("onehot", (fidx, 6), {}),
        ("onehot", (idx, 1), {}),
        ("gather", (table, idx), {"kind": "index"}), ("gather", (table, protocols.onehot(idx, 6)), {}),
        ("gather", (protocols.mask_operand(table), idx), {}),
        ("softmax", (x,), {"axis": 0, "method": "puma"}),
        ("topk", (x, 2), {"method": "max"}), ("topk", (x, 3), {"axis": 0, "method": "sort"}),
        ("topk", (x, 3), {"method": "shuffle", "sorted": True}),
        ("topk", (s.placeholder((4, 64)) if not s.backend.has_data else s.input(rng.uniform(-3, 3, (4, 64))), 8), {}),
    ]


@pytest.mark.parametrize("parties,ring_bits", [(2, 64), (3, 32)])
def test_dispatching_protocols_declare_the_variant_that_runs(parties, ring_bits):
    """where (boolean or arithmetic condition), onehot (rotation or equality), gather (index or one-hot,
    shared or masked matrix), softmax (exact or puma) and topk (max, sort, shuffle, auto) declare the cost of
    what actually runs, on every backend."""
    for backend in BACKENDS:
        s = _session(parties, ring_bits, backend)
        for name, args, kwargs in _variant_calls(s):
            entry = REGISTRY[name]
            mark = s.mark()
            entry.fn(*args, **kwargs)
            measured, messages = s.cost(since=mark), s.ledger.messages[mark:]
            declared = entry.declared_for(s, *args, messages=messages, **kwargs)
            assert measured == declared, (name, kwargs, backend, measured, declared)
    dims = REGISTRY["topk"].dims(s.placeholder((32, 512)), 50)
    # auto picks shuffle on the issue's shape at K = 64; at K = 32 (f = 8) its packed keys (9 index bits) leave
    # the session's product range, and so do sort's: max is the one method in its domain
    expected = (0, 0, 1) if ring_bits == 64 else (1, 0, 0)
    assert (dims["mx"], dims["so"], dims["sh"]) == expected


@pytest.mark.parametrize("parties", [2, 3])
def test_recorded_local_work_is_the_same_on_every_backend(parties):
    """The compute-time model's input (ring MACs, elementwise ops) depends on shapes only."""
    works = []
    for backend in BACKENDS:
        s = _session(parties, 64, backend)
        x = s.input(np.linspace(-1, 1, 24).reshape(4, 6))
        protocols.max(x @ x.T * x[:, :4], axis=-1)
        works.append(s.ledger.work)
    assert works[0] == works[1] == works[2]
    assert sum(w.macs for w in works[0]) == 3 * 4 * 4 * 6  # the Beaver matmul's three local products
    assert sum(w.elems for w in works[0]) > 0


def test_declared_formula_matches_the_issue_statement():
    """Beaver mul: 1 round, 2K(N-1) bits per party per element; matmul: K(N-1)(mk+kn)."""
    for K in (32, 64):
        for N in (2, 3, 4):
            c = REGISTRY["beaver_mul"].declared(K, N, nx=10, ny=10, n=10)
            assert c.rounds == 1 and c.sent_bits == (2 * K * (N - 1) * 10,) * N
            m, k, n = 3, 5, 7
            c = REGISTRY["beaver_matmul"].declared(K, N, nx=m * k, ny=k * n, n=m * n)
            assert c.sent_bits == (K * (N - 1) * (m * k + k * n),) * N and c.offline_bits == K * m * n


@pytest.mark.parametrize("parties,trunc", [(2, "local"), (2, "dealer"), (3, "dealer")])
def test_fixed_point_products_cost_ring_protocol_plus_truncation(parties, trunc):
    s = mpsim.Session(parties=parties, seed=3, backend="count", trunc=trunc)
    x = s.input(np.ones((4, 8)))
    y = s.input(np.ones((8, 3)))
    tr = REGISTRY["trunc_local" if trunc == "local" else "trunc_pr"]
    K, N = 64, parties
    cases = [
        (lambda: x * x, REGISTRY["beaver_square"].declared(K, N, n=32), 32),
        (lambda: x * (x + 1), REGISTRY["beaver_mul"].declared(K, N, nx=32, ny=32, n=32), 32),
        (lambda: x @ y, REGISTRY["beaver_matmul"].declared(K, N, nx=32, ny=24, n=12), 12),
        (lambda: x * 0.5, mpsim.Cost(0, 0, (0,) * N, 0, (0,) * N), 32),
    ]
    for op, ring_cost, n_out in cases:
        mark = s.mark()
        op()
        got = s.cost(since=mark)
        want = ring_cost + tr.declared(K, N, n=n_out)
        assert (got.rounds, got.sent_bits, got.offline_bits) == (want.rounds, want.sent_bits, want.offline_bits)


def test_integer_products_need_no_truncation():
    s = mpsim.Session(parties=3, seed=1, backend="ideal")
    i = s.input(np.array([3, -4, 5]), frac_bits=0)
    x = s.input(np.array([0.5, 1.5, -2.0]))
    mark = s.mark()
    z = i * x  # scale 0 + 16: no truncation, so only the Beaver product is paid
    assert s.cost(since=mark) == REGISTRY["beaver_mul"].declared(64, 3, nx=3, ny=3, n=3)
    np.testing.assert_array_equal(s.reveal(z), [1.5, -6.0, -10.0])
    np.testing.assert_array_equal(s.reveal(i * 7), [21, -28, 35])


def test_complexity_doc_is_current():
    doc = (ROOT / "docs" / "complexity.md").read_text()
    assert doc == markdown_table(), "docs/complexity.md is stale: run `mpsim table > docs/complexity.md`"


def test_table_command_prints_every_protocol():
    out = subprocess.run([sys.executable, "-m", "mpsim.cli", "table"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == markdown_table()
    for name in REGISTRY:
        assert f"`{name}`" in out.stdout
