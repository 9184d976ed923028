"""The channel: the only transport between parties, and the only place online traffic is counted.

Every exchange is one *call*: a set of point-to-point messages sent simultaneously. Each message is recorded
once, at its sender, in the ledger, with the current scope path, the operation name, the call number and the
communication depth. An exchange whose inputs sit at depths d_i happens at depth max(d_i) + 1, and its
outputs sit there too; this stamping is what makes ``Cost.rounds`` the critical-path depth. Opening several
values in one call is one round.

Message sizes come only from public shapes and widths, never from data, so the ledger is the same under
every backend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .ledger import OFFLINE, ONLINE, Ledger
from .profiler import Profiler


@dataclass(frozen=True)
class Opening:
    """One value to open: its payload, its shape, its width in bits per element, its depth."""

    payload: object
    shape: tuple[int, ...]
    width: int
    depth: int = 0
    kind: str = "A"  # "A": additive shares, opened by summing; "B": XOR shares, opened by XOR
    calls: frozenset = frozenset()  # the calls whose results the value combines (for the call graph)


@dataclass(frozen=True)
class Observation:
    """What the receivers of one value in one call saw, for transcript tests (``Channel.watch``).

    ``rows[q]`` is party q's contribution (its share of an opened value, or the message it sent); only the
    rows of ``senders`` travel, to ``receivers``, ``width`` bits per element each. ``value`` is what a
    receiver reconstructs from its own row and the ones it received (their sum mod 2^K, or their XOR).
    Rows and value are None under the count backend; under the ideal backend there is one row, the value.
    """

    call: int
    scope: str
    op: str
    width: int
    kind: str
    rows: object
    value: object
    senders: tuple[int, ...]
    receivers: tuple[int, ...]
    opening: bool = True  # False for the rows of a reshare (``exchange`` with contents)
    # value is None when no receiver reconstructs anything (replicated reshares: each gets one row)


@dataclass(frozen=True)
class CallInfo:
    """One channel call: where it happened and which earlier calls it waited for."""

    call: int
    scope: str
    op: str
    depth: int
    parents: tuple[int, ...]


class Channel:
    def __init__(self, parties: int, ledger: Ledger, profiler: Profiler, backend):
        self.parties = parties
        self.ledger = ledger
        self.profiler = profiler
        self.backend = backend
        self.calls = 0
        self.max_depth = 0
        self.floor = 0  # every value that existed at the last barrier is available from this depth on
        self.call_info: list[CallInfo] = []
        self._latest_at_depth: dict[int, int] = {}
        self._watchers: list = []

    def watch(self, callback):
        """Call ``callback(observation)`` for every value delivered from now on (see :class:`Observation`);
        returns a function that stops the watching. For transcript tests; the ledger does not depend on it."""
        self._watchers.append(callback)

        def stop():
            if callback in self._watchers:
                self._watchers.remove(callback)

        return stop

    def _notify(self, observation: Observation) -> None:
        for callback in list(self._watchers):
            callback(observation)

    def barrier(self) -> None:
        """Start a new phase: everything computed so far counts as available at the current depth, so a value
        made long ago (a masked KV cache from the setup) does not start its next exchange earlier than a
        value of the new phase; rounds within the phase are then its own critical path."""
        self.floor = self.max_depth

    def frontier(self, depth: int) -> frozenset:
        """The default parents of a value made at ``depth``: the latest call there (none at depth 0)."""
        call = self.latest_call(depth)
        return frozenset((call,)) if call >= 0 else frozenset()

    def latest_call(self, depth: int) -> int:
        """The most recent call at ``depth`` (-1 for depth 0 or none)."""
        return self._latest_at_depth.get(depth, -1)

    def exchange(self, op: str, sends: Sequence[tuple[int, int, int]], depth_in: int, parents=(),
                 contents=None, kind: str = "A", reconstructs: bool = True) -> int:
        """Record one simultaneous exchange of (src, dst, bits) messages; return its depth.

        This is the single counted path: every other online operation is built on it. ``parents`` are the
        calls whose results this exchange waits for (default: the latest call at ``depth_in``). ``contents``
        (optional, for watchers): the stacked per-party rows of a reshare whose senders' rows travel to
        their receivers, each of whom adds them to its own row (``kind`` "B": XORs them); or a list of
        (rows, width bits per element[, the parties whose rows travel (None: every sender)[, whether they
        reconstruct a value]]) when one call carries several values. ``reconstructs=False``: no receiver
        combines the rows (each receives one component of a replicated sharing), so watchers get the rows
        and no value (an entry's own flag overrides it).
        """
        depth = max(depth_in, self.floor) + 1
        call = self.calls
        self.calls += 1
        parents = tuple(sorted({p for p in parents if p >= 0})) or (
            (self.latest_call(depth_in),) if depth_in > 0 else ())
        self.call_info.append(CallInfo(call, self.profiler.path, op, depth, parents))
        self._latest_at_depth[depth] = call
        for src, dst, bits in sends:
            if not (0 <= src < self.parties and 0 <= dst < self.parties) or src == dst:
                raise ValueError(f"bad message {src} -> {dst} among {self.parties} parties")
            self.ledger.record(self.profiler.path, op, depth, call, src, dst, bits, ONLINE)
        self.max_depth = max(self.max_depth, depth)
        if contents is not None and self._watchers:
            senders = tuple(sorted({src for src, _, _ in sends}))
            receivers = tuple(sorted({dst for _, dst, _ in sends}))
            if not isinstance(contents, list):
                elements = max(int(math.prod(contents.shape[1:])), 1)
                contents = [(contents, sends[0][2] // elements if sends else 0)]
            for rows, width, *extra in contents:
                if rows is None:
                    continue
                from_ = tuple(extra[0]) if extra and extra[0] is not None else senders
                if not (extra[1] if len(extra) > 1 else reconstructs):
                    value = None
                elif kind == "B":
                    value = np.bitwise_xor.reduce(rows, axis=0)
                else:
                    value = np.sum(rows, axis=0, dtype=np.uint64) & np.uint64(self.backend.ring.mask)
                self._notify(Observation(call, self.profiler.path, op, width, kind, rows, value, from_,
                                         receivers, opening=False))
        return depth

    def offline(self, op: str, sends: Sequence[tuple[int, int, int]], contents=None) -> None:
        """Record an offline exchange between parties (input-independent traffic that makes correlated
        randomness, e.g. ABY3's rotation one-hots) in the ledger, and hand its rows to the watchers like
        ``exchange``'s (each receiver gets its sender's row; no value is reconstructed)."""
        for src, dst, bits in sends:
            if not (0 <= src < self.parties and 0 <= dst < self.parties) or src == dst:
                raise ValueError(f"bad message {src} -> {dst} among {self.parties} parties")
            self.ledger.record(self.profiler.path, op, 0, -1, src, dst, bits, OFFLINE)
        if contents is not None and self._watchers:
            receivers = tuple(sorted({dst for _, dst, _ in sends}))
            for rows, width, senders in contents:
                if rows is not None:
                    self._notify(Observation(-1, self.profiler.path, op, width, "A", rows, None, tuple(senders),
                                             receivers, opening=False))

    def open(self, op: str, items: Sequence[Opening], to: int | None = None, simulate=None,
             route: Sequence[tuple[int, int]] | None = None, rows=None) -> tuple[list, int]:
        """Open several shared values in one call; return (opened values, depth of the result).

        ``to=None`` opens to every party: each party sends its share of every element to each other party,
        width * (N - 1) bits per element per party. ``to=i`` opens to party i only: every other party sends
        width bits per element to i. Opened values are ndarrays (or None under the count backend).

        ``simulate`` is the seam for "randomized" protocols, which open values that are provably independent
        of the secrets and then branch on them (e.g. comparison outcomes after an oblivious shuffle): under
        the count backend, which has no data, the opened values are drawn by ``simulate(rng)`` from their
        data-independent distribution with the session-seeded generator ``backend.sim_rng``.

        ``route`` replaces the all-to-all pattern for schemes whose parties already hold part of each value
        (replicated sharing: each party receives only the one component it lacks): (src, dst) pairs, each
        carrying ``width`` bits per element of every item. ``rows(payload)`` then gives, per party, the row
        it sends (for watchers; default the payload's own rows).
        """
        if to is not None and not (isinstance(to, (int, np.integer)) and 0 <= to < self.parties):
            raise ValueError(f"cannot open to party {to!r}: parties are 0..{self.parties - 1}")
        bits = sum(item.width * int(math.prod(item.shape)) for item in items)
        if route is not None:
            sends = [(s, d, bits) for s, d in route]
        elif to is None:
            sends = [(s, d, bits) for s in range(self.parties) for d in range(self.parties) if s != d]
        else:
            sends = [(s, int(to), bits) for s in range(self.parties) if s != to]
        # Local work of an opening: each receiver sums N shares of every element.
        elements = sum(int(math.prod(item.shape)) for item in items)
        self.ledger.record_work(self.profiler.path, op, 0, elements * self.parties)
        deepest = max((item.depth for item in items), default=0)
        parents = [c for item in items if item.depth > 0 for c in item.calls]
        depth = self.exchange(op, sends, deepest, parents)
        if simulate is not None and not self.backend.has_data:
            values = list(simulate(self.backend.sim_rng))
            if len(values) != len(items):
                raise ValueError(f"simulate returned {len(values)} values for {len(items)} openings")
            return values, depth
        values = [self.backend.open(item.payload) if item.kind == "A" else self.backend.open_xor(item.payload)
                  for item in items]
        if self._watchers:
            call = self.calls - 1
            if route is not None:
                senders = tuple(sorted({s for s, _ in route}))
                receivers = tuple(sorted({d for _, d in route}))
            else:
                receivers = tuple(range(self.parties)) if to is None else (int(to),)
                senders = tuple(q for q in range(self.parties) if to is None or q != to)
            for item, value in zip(items, values):
                sent = item.payload if rows is None or item.payload is None else rows(item.payload)
                self._notify(Observation(call, self.profiler.path, op, item.width, item.kind, sent, value,
                                         senders, receivers))
        return values, depth
