"""The ledger: an append-only record of every message, and the ``Cost`` counters computed from it.

Every message is recorded once, at its sender, by :class:`mpsim.channel.Channel` (online traffic between
parties) or :class:`mpsim.dealer.Dealer` (offline traffic from the trusted dealer). A record holds the scope
path, the operation, the communication depth, the channel call it belongs to, source, destination, bits and
phase. The ledger knows nothing of networks; pricing a ledger on a network is the cost model's job.

Rounds are counted two ways (MP-SPDZ counts depth, CrypTen and SPU count calls; we report both):

* ``rounds``: the critical-path depth, i.e. the number of distinct communication depths among the selected
  online messages. A tensor computed from inputs at depths d_i by one exchange sits at max(d_i) + 1, so for a
  whole session this is the depth of the deepest message.
* ``sequential_rounds``: the number of online channel calls. ``sequential_rounds - rounds`` is the number of
  rounds that merging independent opens of equal depth would save.

Counter algebra on :class:`Cost` (documented composition rules):

* ``a + b``: sequential composition, b runs after a: rounds, calls and bits add.
* ``a - b``: the difference of two snapshots of one ledger (later minus earlier).
* ``k * a``: a repeated k times in sequence.
* ``a | b``: parallel composition, a and b run side by side with their opens merged call for call:
  rounds and sequential rounds take the maximum, bits add.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass, field
from typing import Iterable

ONLINE = "online"
OFFLINE = "offline"
DEALER = -1  # source index of dealer messages


@dataclass(frozen=True, slots=True)  # a decode step at 128k tokens records ~26k of them
class Message:
    scope: str
    op: str
    depth: int
    call: int
    src: int
    dst: int
    bits: int
    phase: str
    units: int = 0  # offline: how many correlations of kind ``op`` this message delivers (0: a part of one)
    dims: tuple = ()  # offline: what one of them is (its parameters; see ``Cost.inventory``)


@dataclass(frozen=True)
class Cost:
    """Exact communication counters. Bits are integers; bytes are bits / 8 (fractional when a party sent
    fewer than 8 bits)."""

    rounds: int = 0
    sequential_rounds: int = 0
    sent_bits: tuple[int, ...] = ()
    offline_bits: int = 0
    offline_received_bits: tuple[int, ...] = field(default=())
    # ((kind, dims, units), ...) sorted: the correlated randomness consumed (``correlations``); not compared,
    # since declarations price bits, not the dealer's itemisation
    inventory: tuple = field(default=(), compare=False)

    # -- derived views -------------------------------------------------------------------------------
    @property
    def parties(self) -> int:
        return len(self.sent_bits)

    @property
    def sent(self) -> tuple[float, ...]:
        """Online bytes sent by each party."""
        return tuple(b / 8 for b in self.sent_bits)

    @property
    def total_bits(self) -> int:
        return sum(self.sent_bits)

    @property
    def total_bytes(self) -> float:
        """Online bytes sent by all parties together."""
        return self.total_bits / 8

    @property
    def offline_bytes(self) -> float:
        """Bytes the dealer sent in total."""
        return self.offline_bits / 8

    @property
    def correlations(self) -> dict[tuple[str, tuple], int]:
        """The inventory as {(kind, dims): units}: e.g. ("beaver_triple", ()) -> elementwise triples,
        ("matmul_triple", (m, k, n)) -> matrix triples of those dimensions, ("gate_key", ("dcf", K - 1, K, 2))
        -> FSS keys (``mpsim.dealer``, ``protocols.fss.keys`` document each kind's units and dims)."""
        return {(kind, dims): units for kind, dims, units in self.inventory}

    @staticmethod
    def _merge(a: tuple, b: tuple, sign: int = 1, scale: int = 1) -> tuple:
        out: dict = {}
        for kind, dims, units in a:
            out[(kind, dims)] = out.get((kind, dims), 0) + units * scale
        for kind, dims, units in b:
            out[(kind, dims)] = out.get((kind, dims), 0) + sign * units
        return _inventory(out)

    # -- algebra ---------------------------------------------------------------------------------------
    def _check(self, other: "Cost") -> None:
        if not isinstance(other, Cost):
            raise TypeError(f"cannot combine Cost with {type(other).__name__}")
        if self.parties and other.parties and self.parties != other.parties:
            raise ValueError(f"cannot combine costs of {self.parties} and {other.parties} parties")

    @staticmethod
    def _zip(a: tuple[int, ...], b: tuple[int, ...], sign: int) -> tuple[int, ...]:
        n = max(len(a), len(b))
        a = a + (0,) * (n - len(a))
        b = b + (0,) * (n - len(b))
        return tuple(x + sign * y for x, y in zip(a, b))

    def __add__(self, other: "Cost") -> "Cost":
        self._check(other)
        return Cost(
            self.rounds + other.rounds,
            self.sequential_rounds + other.sequential_rounds,
            self._zip(self.sent_bits, other.sent_bits, 1),
            self.offline_bits + other.offline_bits,
            self._zip(self.offline_received_bits, other.offline_received_bits, 1),
            self._merge(self.inventory, other.inventory),
        )

    def __sub__(self, other: "Cost") -> "Cost":
        self._check(other)
        return Cost(
            self.rounds - other.rounds,
            self.sequential_rounds - other.sequential_rounds,
            self._zip(self.sent_bits, other.sent_bits, -1),
            self.offline_bits - other.offline_bits,
            self._zip(self.offline_received_bits, other.offline_received_bits, -1),
            self._merge(self.inventory, other.inventory, sign=-1),
        )

    def __mul__(self, k: int) -> "Cost":
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise TypeError(f"a Cost can be repeated a non-negative integer number of times, got {k!r}")
        return Cost(
            self.rounds * k,
            self.sequential_rounds * k,
            tuple(b * k for b in self.sent_bits),
            self.offline_bits * k,
            tuple(b * k for b in self.offline_received_bits),
            self._merge(self.inventory, (), scale=k),
        )

    __rmul__ = __mul__

    def __or__(self, other: "Cost") -> "Cost":
        self._check(other)
        return Cost(
            max(self.rounds, other.rounds),
            max(self.sequential_rounds, other.sequential_rounds),
            self._zip(self.sent_bits, other.sent_bits, 1),
            self.offline_bits + other.offline_bits,
            self._zip(self.offline_received_bits, other.offline_received_bits, 1),
            self._merge(self.inventory, other.inventory),
        )

    def __str__(self) -> str:
        sent = ", ".join(_fmt_bytes(b) for b in self.sent)
        return (
            f"{self.rounds} rounds ({self.sequential_rounds} sequential), sent per party [{sent}], "
            f"online total {_fmt_bytes(self.total_bytes)}, offline {_fmt_bytes(self.offline_bytes)}"
        )

    def as_dict(self) -> dict:
        return {
            "rounds": self.rounds,
            "sequential_rounds": self.sequential_rounds,
            "sent_bits": list(self.sent_bits),
            "offline_bits": self.offline_bits,
            "offline_received_bits": list(self.offline_received_bits),
            "inventory": [{"kind": kind, "dims": list(dims), "units": units} for kind, dims, units in self.inventory],
        }


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g} B"


@functools.lru_cache(maxsize=1 << 16)  # few distinct (path, scope) pairs, asked for every message
def scope_matches(path: str, scope: str) -> bool:
    """True when ``scope`` (a/b/c) is a contiguous run of the components of ``path``.

    "attention/qk" matches "layer3/attention/qk/beaver_mul"; a leading "/" anchors at the root.
    """
    if scope.startswith("/"):
        want = scope.strip("/").split("/")
        have = path.split("/")
        return have[: len(want)] == want
    want = scope.strip("/").split("/")
    have = path.split("/") if path else []
    n = len(want)
    return any(have[i : i + n] == want for i in range(len(have) - n + 1))


@dataclass(frozen=True, slots=True)
class Work:
    """Local computation of the busiest party in one protocol step: ring multiply-accumulates of matrix
    products, and other elementwise ring (or boolean word) operations. Counted from shapes, like messages."""

    scope: str
    op: str
    macs: int
    elems: int
    position: int = 0  # number of messages recorded before this work (for cost(since=...)-style selection)


class Ledger:
    """Append-only message log of one session (and a log of local work for the compute-time model)."""

    def __init__(self, parties: int):
        self.parties = parties
        self.messages: list[Message] = []
        self.work: list[Work] = []

    def record_work(self, scope: str, op: str, macs: int = 0, elems: int = 0) -> None:
        if macs or elems:
            self.work.append(Work(scope, op, int(macs), int(elems), len(self.messages)))

    def record(self, scope: str, op: str, depth: int, call: int, src: int, dst: int, bits: int, phase: str,
               units: int = 0, dims: tuple = ()):
        """One message; an offline one delivering whole correlations says how many (``units``) of what
        (``dims``), which ``Cost.inventory`` sums."""
        if bits < 0:
            raise ValueError("a message cannot carry a negative number of bits")
        if bits == 0:
            return
        self.messages.append(Message(scope, op, depth, call, src, dst, int(bits), phase, int(units), tuple(dims)))

    def __len__(self) -> int:
        return len(self.messages)

    def select(self, scope: str | None = None, since: int = 0, until: int | None = None) -> list[Message]:
        msgs = self.messages[since:until]
        if scope is not None:
            msgs = [m for m in msgs if scope_matches(m.scope, scope)]
        return msgs

    def cost(self, scope: str | None = None, since: int = 0, until: int | None = None) -> Cost:
        return cost_of(self.select(scope, since, until), self.parties)

    def scopes(self) -> list[str]:
        seen: dict[str, None] = {}
        for m in self.messages:
            seen.setdefault(m.scope, None)
        return list(seen)


def _inventory(counts: dict) -> tuple:
    return tuple(sorted(((kind, dims, units) for (kind, dims), units in counts.items() if units),
                        key=lambda item: (item[0], repr(item[1]))))


def cost_of(messages: Iterable[Message], parties: int) -> Cost:
    depths: set[int] = set()
    calls: set[int] = set()
    sent = [0] * parties
    offline = 0
    offline_recv = [0] * parties
    counts: dict = {}
    for m in messages:
        if m.phase == ONLINE:
            depths.add(m.depth)
            calls.add(m.call)
            sent[m.src] += m.bits
        else:
            offline += m.bits
            offline_recv[m.dst] += m.bits
            if m.units:
                counts[(m.op, m.dims)] = counts.get((m.op, m.dims), 0) + m.units
    return Cost(len(depths), len(calls), tuple(sent), offline, tuple(offline_recv), _inventory(counts))
