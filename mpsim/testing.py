"""Testing helpers for protocol authors (also a pytest plugin, registered as ``mpsim``).

* ``mpc_session`` fixture: a fresh seeded session, parametrized over party counts and backends
  (``MPC_CONFIGS``); a test using it runs once per configuration.
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

    from mpsim.testing import assert_protocol
    import protocols as P
    assert_protocol(lambda s, x: P.relu(x), lambda x: np.maximum(x, 0), [np.linspace(-2, 2, 9)], ulps=0)
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest

from .session import Session

MPC_CONFIGS = [(2, "share"), (3, "share"), (2, "ideal"), (2, "count")]


def _ledger_view(session: Session, mark: int, work_mark: int):
    msgs = [(m.scope, m.op, m.depth, m.call, m.src, m.dst, m.bits, m.phase) for m in session.ledger.messages[mark:]]
    return msgs, list(session.ledger.work[work_mark:])


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


@pytest.fixture(params=MPC_CONFIGS, ids=[f"N{n}-{b}" for n, b in MPC_CONFIGS])
def mpc_session(request):
    """A seeded session per (parties, backend) in ``MPC_CONFIGS``."""
    parties, backend = request.param
    with Session(parties=parties, backend=backend, seed=1234) as s:
        yield s
