"""Testing helpers for protocol authors (also a pytest plugin, registered as ``mpsim``).

* ``mpc_session`` fixture: a fresh seeded session, parametrized over (parties, ring bits, backend)
  configurations; a test using it runs once per configuration. The grid is ``MPC_CONFIGS`` (N = 2 and 3 on
  the share backend, N = 2 on ideal and count, all at K = 64) unless the command line gives another,
  ``pytest --mpc-configs 2:64:share,4:32:count``, or a test its own,
  ``@pytest.mark.mpc_configs((2, 32, "share"), (4, 32, "count"))``.
* ``assert_declared(protocol, configs=None, scheme=None)``: for a protocol registered with ``@protocol(..., example=...)``
  (the function the decorator returned, one of its registry cells, or its name), runs its example on each
  configuration (parties, ring bits, backend) and asserts that the measured rounds, channel calls, bits sent
  per party and offline bits equal its declared formulas; the AssertionError names the protocol, scheme,
  configuration and every quantity that differs, declared vs measured. It also checks that every message
  of the call carries the protocol's scope and that the backends' ledgers agree. By default it runs every
  scheme the protocol is registered for, at N in {2, 3, 4} and K in {32, 64} on all three backends, keeping
  the party counts that the protocol (``parties=``) and its scheme accept; ``scheme="aby3"`` picks one.
  Returns the measured costs by (scheme, parties, ring bits, backend). ``tests/test_costs.py`` runs it on
  every registered protocol.
* ``assert_protocol(fn, reference, inputs, ulps=...)``: runs ``fn(session, *shared_inputs)`` on the share and
  ideal backends for each party count, reveals, compares with ``reference(*inputs)`` within ``ulps`` units
  of 2^-f, and checks that the three backends' ledgers (messages and local work) are identical. ``ulps``
  may also be an array (a per-element bound, e.g. a derived error bound) or a dict by backend
  (``{"ideal": 0, "share": bound}``); ``owner`` may give one input party per input; ``outputs={}`` collects
  the revealed outputs for further checks.
* ``assert_cost(fn, inputs, rounds=..., sent=..., offline=...)``: checks a protocol's measured cost against
  the author's own declaration (bytes; ``sent`` per party or one number for all).
* ``capture_openings(session)``: for security tests, records what the parties see opened: returns a list
  that gets, for every later opening call, that call's list of opened values (``mpsim.transcript`` has
  the whole per-party view and the independence tests of ``tests/test_transcripts.py``).

Example::

    from mpsim.testing import assert_declared, assert_protocol
    import protocols as P
    assert_protocol(lambda s, x: P.relu(x), lambda x: np.maximum(x, 0), [np.linspace(-2, 2, 9)], ulps=0)
    assert_declared(P.relu)
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

import numpy as np
import pytest

from .backend import BACKENDS
from .ledger import Cost
from .scheme import load_scheme
from .session import DEFAULT_FRAC_BITS, Session

# The default grid of the mpc_session fixture: (parties, ring bits, backend).
MPC_CONFIGS = [(2, 64, "share"), (3, 64, "share"), (2, 64, "ideal"), (2, 64, "count")]
CONFIG_FORMAT = "PARTIES:RING_BITS:BACKEND, e.g. 2:64:share,4:32:count"
# assert_declared's default grid, before keeping what the protocol and its scheme run with.
PARTY_COUNTS = (2, 3, 4)
RING_BITS = (32, 64)
EXAMPLE_SEED = 7  # the seed of every example run: a randomized protocol's outcomes replay identically


def _message_view(messages) -> list[tuple]:
    return [(m.scope, m.op, m.depth, m.call, m.src, m.dst, m.bits, m.phase) for m in messages]


def _ledger_view(session: Session, mark: int, work_mark: int):
    return _message_view(session.ledger.messages[mark:]), list(session.ledger.work[work_mark:])


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def run_protocol(fn: Callable, inputs: Sequence, parties: int, backend: str, frac_bits: int = 16, seed: int = 0,
                 owner=0, **session_kwargs):
    """Share ``inputs`` (reals; integer arrays are shared as integers), run ``fn``; returns
    (session, outputs tuple, cost of the call, ledger view). ``owner``: the party inputting every value, or
    one party per input (a negative one counts from the last party, as in Python indexing)."""
    s = Session(parties=parties, frac_bits=frac_bits, seed=seed, backend=backend, **session_kwargs)
    owners = list(owner) if isinstance(owner, (list, tuple)) else [owner] * len(inputs)
    if len(owners) != len(inputs):
        raise ValueError(f"{len(owners)} owners for {len(inputs)} inputs")
    shared = []
    for value, who in zip(inputs, owners):
        array = np.asarray(value)
        integer = np.issubdtype(array.dtype, np.integer)
        shared.append(s.input(array, owner=who % parties, frac_bits=0 if integer else None))
    mark, work_mark = s.mark(), len(s.ledger.work)
    outputs = _as_tuple(fn(s, *shared))
    return s, outputs, s.cost(since=mark), _ledger_view(s, mark, work_mark)


def assert_protocol(fn: Callable, reference: Callable, inputs: Sequence, ulps=1, parties=(2, 3),
                    frac_bits: int = 16, seed: int = 0, owner=0, outputs: dict | None = None,
                    **session_kwargs) -> dict:
    """Check a protocol against a numpy reference (in units of 2^-frac_bits) and its ledgers across backends.

    ``ulps``: a number, an array broadcast against every output (a per-element bound), or a dict by backend
    ("share", "ideal") of either (a backend left out must match exactly). ``owner``: the input party, or
    one per input. ``outputs``: a dict to fill with {(parties, backend): tuple of revealed outputs}. Output
    shapes are checked on every backend (count too). Returns {(parties, backend): Cost}. Boolean-shared
    outputs are opened with ``protocols.reveal_bits``.
    """
    expected = _as_tuple(reference(*[np.asarray(v) for v in inputs]))
    costs = {}
    for n in parties:
        views = {}
        for backend in ("share", "ideal", "count"):
            s, outs, cost, view = run_protocol(fn, inputs, n, backend, frac_bits, seed, owner, **session_kwargs)
            costs[(n, backend)] = cost
            views[backend] = view
            assert len(outs) == len(expected), f"{len(outs)} outputs, reference gave {len(expected)}"
            for i, (out, ref) in enumerate(zip(outs, expected)):
                assert out.shape == np.shape(ref), f"output {i} on {backend}: shape {out.shape} != {np.shape(ref)}"
            if backend == "count":
                continue
            revealed = []
            bound = ulps.get(backend, 0) if isinstance(ulps, dict) else ulps
            for i, (out, ref) in enumerate(zip(outs, expected)):
                got = s.scheme.reveal_bits(out) if out.kind == "B" else s.reveal(out)
                ref = np.asarray(ref)
                assert got.shape == ref.shape, f"output {i}: shape {got.shape} != reference {ref.shape}"
                unit = 2.0 ** -(out.frac if out.kind == "A" else 0)
                diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
                excess = diff - np.asarray(bound, dtype=np.float64) * unit
                assert not np.any(excess > 0), (
                    f"output {i} on {backend}, {n} parties: max error {diff.max()} exceeds its bound of "
                    f"{np.max(bound)} ulp(s) (worst excess {excess.max() / unit} ulps)")
                revealed.append(got)
            if outputs is not None:
                outputs[(n, backend)] = tuple(revealed)
        assert views["share"] == views["ideal"] == views["count"], f"ledgers differ across backends ({n} parties)"
    return costs


def assert_cost(fn: Callable, inputs: Sequence, rounds: int | None = None, sent=None, offline: float | None = None,
                parties: int = 2, backend: str = "count", sequential_rounds: int | None = None, **session_kwargs):
    """Check the measured cost of ``fn(session, *shared_inputs)`` against declared values (bytes)."""
    _, _, cost, _ = run_protocol(fn, inputs, parties, backend, **session_kwargs)
    if rounds is not None:
        assert cost.rounds == rounds, f"rounds: measured {cost.rounds}, declared {rounds}"
    if sequential_rounds is not None:
        assert cost.sequential_rounds == sequential_rounds, (
            f"sequential rounds: measured {cost.sequential_rounds}, declared {sequential_rounds}")
    if sent is not None:
        want = tuple(sent) if isinstance(sent, (tuple, list)) else (sent,) * parties
        assert cost.sent == tuple(float(w) for w in want), f"bytes sent: measured {cost.sent}, declared {want}"
    if offline is not None:
        assert cost.offline_bytes == offline, f"offline bytes: measured {cost.offline_bytes}, declared {offline}"
    return cost


# Cost fields that a declaration fixes, and how a failure names them.
_QUANTITIES = (("rounds", "rounds"), ("sequential_rounds", "channel calls"), ("sent_bits", "bits sent per party"),
               ("offline_bits", "offline bits"), ("offline_received_bits", "offline bits received per party"))


def _registered_cells(name: str) -> dict:
    """{scheme: cell} of every cell named ``name``. The engine imports no protocol (tests/test_layering.py);
    a name can only be registered once the protocol registry is loaded, so it is read where it is loaded."""
    registry = sys.modules.get("protocols.registry")
    cells = {} if registry is None else {sc: cell for (sc, n), cell in registry.CELLS.items() if n == name}
    if not cells:
        raise ValueError(f"no protocol named {name!r} is registered: import the module that registers it, "
                         f"or pass the function @protocol returned")
    return cells


def _cells_of(protocol) -> dict:
    """{scheme: cell} of a protocol given as its name, the function ``@protocol`` returned, or one cell."""
    if isinstance(protocol, str):
        return _registered_cells(protocol)
    if hasattr(protocol, "cells"):  # the wrapper @protocol returns: its cell per scheme
        return dict(protocol.cells)
    if hasattr(protocol, "declared_for") and hasattr(protocol, "scheme"):  # one registry cell
        return {protocol.scheme: protocol}
    raise TypeError(f"assert_declared takes a protocol registered with @protocol (the decorated function, a "
                    f"registry cell or its name), got {protocol!r}")


def _scheme_runs(scheme, parties: int, ring_bits: int) -> bool:
    """Whether the scheme runs with this party count and ring (its ``truncation_mode`` refuses the rest)."""
    try:
        scheme.truncation_mode(parties, ring_bits, "auto")
    except ValueError:
        return False
    return True


def default_configs(cell) -> list[tuple[int, int, str]]:
    """assert_declared's default grid for one cell: PARTY_COUNTS x RING_BITS x every backend, keeping the party
    counts that the cell (its ``parties``) and its scheme run with."""
    scheme = load_scheme(cell.scheme)
    return [(n, k, backend) for n in PARTY_COUNTS for k in RING_BITS
            if cell.parties(n) and _scheme_runs(scheme, n, k) for backend in BACKENDS]


def _measure_example(cell, parties: int, ring_bits: int, backend: str):
    """Run the cell's registered example once; returns (measured Cost, declared Cost, the call's messages).
    A randomized protocol's formulas are evaluated at the random variables observed in its own messages."""
    if cell.example is None:
        raise ValueError(f"{cell.name} has no example= in its @protocol registration to measure")
    # the session's default scale (f = 8 at K = 32) leaves room for products at scale 2f
    s = Session(parties=parties, ring_bits=ring_bits, seed=EXAMPLE_SEED, backend=backend, scheme=cell.scheme)
    args, kwargs = cell.example(s)
    mark = s.mark()
    cell.fn(*args, **kwargs)
    measured, messages = s.cost(since=mark), s.ledger.messages[mark:]
    return measured, cell.declared_for(s, *args, messages=messages, **kwargs), messages


def _check_cost(where: str, measured: Cost, declared: Cost) -> None:
    wrong = [f"{label}: declared {getattr(declared, field)}, measured {getattr(measured, field)}"
             for field, label in _QUANTITIES if getattr(declared, field) != getattr(measured, field)]
    assert not wrong, f"{where}: " + "; ".join(wrong)
    assert measured == declared, f"{where}: measured {measured} != declared {declared}"


def _check_ledgers(where: str, cell, ledgers: dict) -> None:
    """The backends' messages agree: exactly for a fixed protocol; share and ideal only for a randomized one,
    whose outcomes the count backend draws from their distribution."""
    compared = [b for b in ledgers if cell.kind == "fixed" or b != "count"]
    for backend in compared[1:]:
        assert ledgers[backend] == ledgers[compared[0]], (
            f"{where}: the {compared[0]} and {backend} backends' ledgers differ (the protocol's messages "
            f"must depend on shapes and public values only)")


def _assert_cell_declared(cell, grid) -> dict:
    """assert_declared for one cell on its grid: {(scheme, parties, ring bits, backend): measured Cost}."""
    measured, ledgers = {}, {}
    for parties, ring_bits, backend in grid:
        where = f"{cell.name} ({cell.scheme} scheme, N={parties}, K={ring_bits}, {backend} backend)"
        cost, declared, messages = _measure_example(cell, parties, ring_bits, backend)
        _check_cost(where, cost, declared)
        outside = sorted({m.scope for m in messages if cell.name not in m.scope.split("/")})
        assert not outside, f"{where}: messages outside the protocol's scope: {outside}"
        ledgers.setdefault((parties, ring_bits), {})[backend] = _message_view(messages)
        measured[(cell.scheme, parties, ring_bits, backend)] = cost
    for (parties, ring_bits), by_backend in ledgers.items():
        _check_ledgers(f"{cell.name} ({cell.scheme} scheme, N={parties}, K={ring_bits})", cell, by_backend)
    return measured


def assert_declared(protocol, configs=None, scheme: str | None = None) -> dict:
    """Measured == declared for a registered protocol's example on each (parties, ring bits, backend) of
    ``configs`` (default: ``default_configs``), in every scheme it is registered for or in ``scheme``; see the
    module docstring. Returns {(scheme, parties, ring bits, backend): measured Cost}."""
    cells = _cells_of(protocol)
    if scheme is not None and scheme not in cells:
        raise ValueError(f"{next(iter(cells.values())).name} has no cell in the {scheme} scheme; "
                         f"it has {sorted(cells)}")
    measured = {}
    for cell in cells.values() if scheme is None else [cells[scheme]]:
        grid = default_configs(cell) if configs is None else [check_mpc_config(c) for c in configs]
        measured.update(_assert_cell_declared(cell, grid))
    return measured


def capture_openings(session: Session) -> list:
    """Record every opening of ``session`` from now on (the transcript the parties observe).

    Returns a list to which each later ``Channel.open`` call appends the list of its opened
    values, as ``Channel.open`` returns them. For security tests: e.g. check that opened masks look uniform
    whatever the secret; ``mpsim.transcript`` has the full per-party view and the statistical tests.
    """
    seen, calls = [], []

    def keep(observation):
        if not observation.opening:
            return
        if not calls or calls[-1] != observation.call:
            calls.append(observation.call)
            seen.append([])
        seen[-1].append(observation.value)

    session.channel.watch(keep)
    return seen


def check_mpc_config(config) -> tuple[int, int, str]:
    """One (parties, ring bits, backend) configuration, validated; ValueError saying what is wrong."""
    if not isinstance(config, (tuple, list)) or len(config) != 3:
        raise ValueError(f"a configuration is (parties, ring_bits, backend), got {config!r}")
    parties, ring_bits, backend = config
    if isinstance(parties, bool) or not isinstance(parties, (int, np.integer)) or parties < 2:
        raise ValueError(f"parties must be an integer >= 2, got {parties!r} in {config!r}")
    if ring_bits not in DEFAULT_FRAC_BITS:
        raise ValueError(f"ring bits must be one of {sorted(DEFAULT_FRAC_BITS)}, got {ring_bits!r} in {config!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r} in {config!r}")
    return int(parties), int(ring_bits), backend


def parse_mpc_configs(text: str) -> list[tuple[int, int, str]]:
    """The value of ``--mpc-configs``: ``"2:64:share,4:32:count"`` -> [(2, 64, "share"), (4, 32, "count")]."""
    configs = []
    for item in text.split(","):
        fields = [f.strip() for f in item.split(":")]
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise ValueError(f"bad --mpc-configs entry {item.strip()!r}: use {CONFIG_FORMAT}")
        try:
            configs.append(check_mpc_config((int(fields[0]), int(fields[1]), fields[2])))
        except ValueError as error:
            raise ValueError(f"bad --mpc-configs entry {item.strip()!r}: {error}") from None
    return configs


_GRID = pytest.StashKey[list]()


def pytest_addoption(parser):
    parser.addoption("--mpc-configs", default=None, metavar="N:K:BACKEND,...",
                     help=f"the mpc_session fixture's configurations ({CONFIG_FORMAT}); default: "
                          + ",".join(f"{n}:{k}:{b}" for n, k, b in MPC_CONFIGS))


def pytest_configure(config):
    config.addinivalue_line("markers", "mpc_configs(*configs): run this test's mpc_session on these "
                                       "(parties, ring_bits, backend) configurations instead of the grid")
    text = config.getoption("--mpc-configs", default=None)
    try:
        config.stash[_GRID] = MPC_CONFIGS if text is None else parse_mpc_configs(text)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def _config_id(config) -> str:
    parties, ring_bits, backend = config
    return f"N{parties}-K{ring_bits}-{backend}"


def pytest_generate_tests(metafunc):
    """Parametrize ``mpc_session`` by the test's ``mpc_configs`` marker, else the session's grid."""
    if "mpc_session" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("mpc_configs")
    if marker is None:
        configs = metafunc.config.stash.get(_GRID, MPC_CONFIGS)
    elif not marker.args:
        raise ValueError(f"{metafunc.definition.nodeid}: mpc_configs needs at least one (parties, ring_bits, "
                         f"backend) configuration")
    else:
        configs = [check_mpc_config(c) for c in marker.args]
    metafunc.parametrize("mpc_session", configs, ids=[_config_id(c) for c in configs], indirect=True)


@pytest.fixture
def mpc_session(request):
    """A seeded session per (parties, ring bits, backend) of the grid (module docstring)."""
    if not hasattr(request, "param"):
        pytest.fail("mpc_session is parametrized when tests are collected: name it as an argument of the test "
                    "(or of a fixture the test uses), not through request.getfixturevalue", pytrace=False)
    parties, ring_bits, backend = request.param
    with Session(parties=parties, ring_bits=ring_bits, backend=backend, seed=1234) as s:
        yield s
