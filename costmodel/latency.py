"""Pricing a ledger on a network: estimated wall-clock seconds from counted messages and local work.

:func:`estimate` is a pure function of what was counted (a Session's ledger, a Ledger, a list of Messages,
or, coarsely, a Cost) and a :class:`~costmodel.profiles.NetworkProfile`; the ledger knows nothing of
networks (MP-SPDZ's "count first, price later").

Model
-----
Assumptions: links are full duplex; in a round every party sends at once; each directed link (src -> dst)
has the profile's bandwidth B, independently of the others (no shared bottleneck, no congestion, no TCP
slow start); a round's latency is RTT/2 by default (one simultaneous exchange: every party sends and then
waits for the others' messages to arrive, one-way delay each), or the full RTT with ``per_round="rtt"``
(a request/response pattern); local computation does not overlap communication.

1. **Rounds.** The online messages selected are grouped by communication depth (the critical path: opens
   at equal depth travel together). Each depth d costs ``latency + max_link bits(d) / B``, where
   ``max_link bits(d)`` is the largest number of bits sent on one directed link at that depth. With
   ``sequential=True`` the grouping is by channel call instead (every call is its own round, as when
   independent opens are not merged). ``rounds_s`` is the latency part (number of groups x latency),
   ``bandwidth_s`` the transfer part (sum over groups of max link bits / B).
2. **Offline** (``include_offline=True``): the dealer's traffic as one extra transfer,
   ``latency + max over parties of offline bits received / B``.
3. **Compute** (``compute=ComputeModel(...)``): each ledger ``Work`` entry is the busiest party's local
   work in one protocol step; its time is ``macs / mac_per_s + elems / elem_per_s``, summed.

``total_s = rounds_s + bandwidth_s + offline_s + compute_s``; ``dominant`` names the largest of the
rounds, bandwidth and compute terms.

Worked example (the README's ``(x * x) @ w`` then reveal, 2 parties, K = 64, x of 512 elements, w 512 x 64),
priced on ``wan`` (400 Mbit/s, 40 ms ping). Depth 1 (square): 64 * 512 = 32,768 bits on each of the links
0->1 and 1->0. Depth 2 (matmul): 64 * (512 + 512 * 64) = 2,129,920 bits per link. Depth 3 (reveal): 64 * 64
= 4,096 bits per link. ``rounds_s = 3 * 20 ms = 60 ms``, ``bandwidth_s = (32,768 + 2,129,920 + 4,096) /
4e8 = 5.41696 ms``, total 65.41696 ms, dominated by rounds.

A :class:`mpsim.Cost` carries no per-depth or per-link detail, so for a Cost only a coarse form is
available (flagged ``coarse=True``): ``rounds * latency + max over parties of bits sent / B`` (which
over-charges parties that send to several others at once).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from numbers import Real
from typing import Iterable

import numpy as np

from mpsim.ledger import ONLINE, Cost, Ledger, Message, Work, scope_matches

from .profiles import NetworkProfile, format_time, parse_profile

__all__ = ["ComputeModel", "LatencyBreakdown", "calibrate", "estimate"]

TERMS = ("rounds", "bandwidth", "compute")


@dataclass(frozen=True)
class ComputeModel:
    """Local compute throughput of one party: ring multiply-accumulates per second (matrix products) and
    elementwise ring operations per second. ``source`` says where the numbers come from."""

    mac_per_s: float
    elem_per_s: float
    source: str = ""

    def __post_init__(self):
        for name in ("mac_per_s", "elem_per_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
            object.__setattr__(self, name, float(value))

    def seconds(self, work: Iterable[Work]) -> float:
        macs = elems = 0
        for w in work:
            macs += w.macs
            elems += w.elems
        return macs / self.mac_per_s + elems / self.elem_per_s

    def as_dict(self) -> dict:
        return {"mac_per_s": self.mac_per_s, "elem_per_s": self.elem_per_s, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "ComputeModel":
        return cls(d["mac_per_s"], d["elem_per_s"], d.get("source", ""))


def calibrate(quick: bool = True) -> ComputeModel:
    """Measure this machine's ring throughput with :mod:`mpsim.kernels` (one party's share of the work).

    MACs/s: ``ring_matmul`` on a 256^3 product (512^3 with ``quick=False``), best of several runs after one
    warm-up (which also loads or compiles the numba kernels). Elements/s: ``ring_add`` (1 op per element)
    and ``beaver_combine`` on a single party row (6 ops per element: c + e*b + f*a + e*f, as the protocols
    count it) over 2^20 elements (2^22), total ops over total best time. Takes well under a second once the
    kernels are compiled (numba caches them); nothing is cached by this function, on disk or in memory:
    keep the returned model, or construct a :class:`ComputeModel` yourself to override it.
    """
    from mpsim import kernels

    n = 256 if quick else 512
    m = 1 << (20 if quick else 22)
    repeats = 3 if quick else 7
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64 - 1, size=(n, n), dtype=np.uint64, endpoint=True)
    b = rng.integers(0, 2**64 - 1, size=(n, n), dtype=np.uint64, endpoint=True)
    x = rng.integers(0, 2**64 - 1, size=(1, m), dtype=np.uint64, endpoint=True)
    y = rng.integers(0, 2**64 - 1, size=(1, m), dtype=np.uint64, endpoint=True)
    e = x[0].copy()
    out = np.empty_like(x)

    def best(fn) -> float:
        fn()  # warm-up: kernel load / compile, first-touch of the output
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return max(min(times), 1e-9)

    t_mm = best(lambda: kernels.ring_matmul(a, b))
    t_add = best(lambda: kernels.ring_add(x, y, out=out))
    t_bv = best(lambda: kernels.beaver_combine(x, y, x, e, e, out=out))
    source = (f"calibrated on this machine ({os.cpu_count()} CPUs, numpy {np.__version__}): ring_matmul "
              f"{n}x{n}x{n} best of {repeats}; ring_add and beaver_combine over {m} elements")
    return ComputeModel(n**3 / t_mm, 7 * m / (t_add + t_bv), source)


@dataclass(frozen=True)
class LatencyBreakdown:
    """Estimated seconds of a computation on one network profile (see the module docstring for the model).

    ``rounds`` is the number of rounds charged (distinct depths, or channel calls with ``sequential``).
    """

    profile: NetworkProfile
    rounds: int
    rounds_s: float
    bandwidth_s: float
    compute_s: float = 0.0
    offline_s: float = 0.0
    per_round: str = "half_rtt"
    sequential: bool = False
    include_offline: bool = False
    coarse: bool = False
    compute: ComputeModel | None = field(default=None, compare=True)

    @property
    def total_s(self) -> float:
        return self.rounds_s + self.bandwidth_s + self.offline_s + self.compute_s

    @property
    def dominant(self) -> str:
        """The largest of the rounds, bandwidth and compute terms ("none" when all are zero); ties go to
        the first of rounds, bandwidth, compute."""
        terms = (self.rounds_s, self.bandwidth_s, self.compute_s)
        if max(terms) <= 0:
            return "none"
        return TERMS[terms.index(max(terms))]

    def __str__(self) -> str:
        parts = [f"{format_time(self.total_s)} on {self.profile.name}", f"{self.rounds} rounds "
                 f"{format_time(self.rounds_s)}", f"bandwidth {format_time(self.bandwidth_s)}"]
        if self.compute is not None:
            parts.append(f"compute {format_time(self.compute_s)}")
        if self.include_offline:
            parts.append(f"offline {format_time(self.offline_s)}")
        return ", ".join(parts) + f" (dominant: {self.dominant}{', coarse' if self.coarse else ''})"

    def as_dict(self) -> dict:
        return {
            "profile": self.profile.as_dict(),
            "rounds": self.rounds,
            "rounds_s": self.rounds_s,
            "bandwidth_s": self.bandwidth_s,
            "compute_s": self.compute_s,
            "offline_s": self.offline_s,
            "total_s": self.total_s,
            "dominant": self.dominant,
            "per_round": self.per_round,
            "sequential": self.sequential,
            "include_offline": self.include_offline,
            "coarse": self.coarse,
            "compute": None if self.compute is None else self.compute.as_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyBreakdown":
        return cls(
            NetworkProfile.from_dict(d["profile"]), d["rounds"], d["rounds_s"], d["bandwidth_s"], d["compute_s"],
            d["offline_s"], d["per_round"], d["sequential"], d["include_offline"], d["coarse"],
            None if d.get("compute") is None else ComputeModel.from_dict(d["compute"]),
        )


def _source_parts(source, scope, since):
    """(messages, work or None) of a Session, Ledger or list of Messages, after scope / since selection."""
    ledger = getattr(source, "ledger", None) if not isinstance(source, Ledger) else source
    if isinstance(ledger, Ledger):
        messages = ledger.select(scope=scope, since=since)
        work = ledger.work
    elif isinstance(source, (list, tuple)) and all(isinstance(m, Message) for m in source):
        messages = [m for m in source[since:] if scope is None or scope_matches(m.scope, scope)]
        work = None
    else:
        raise TypeError("estimate() prices a Session, a Ledger, a list of Messages or a Cost, "
                        f"got {type(source).__name__}")
    if work is not None:
        # Each Work entry records how many messages preceded it, so since= selects it like a message.
        work = [w for w in work if w.position >= since and (scope is None or scope_matches(w.scope, scope))]
    return messages, work


def estimate(
    source,
    profile,
    *,
    per_round: str = "half_rtt",
    sequential: bool = False,
    include_offline: bool = False,
    compute: ComputeModel | None = None,
    scope: str | None = None,
    since: int = 0,
) -> LatencyBreakdown:
    """Estimated seconds of ``source`` (Session, Ledger, list of Messages, or Cost) on ``profile`` (a
    NetworkProfile, a preset name or a ``BANDWIDTH/PING`` string). See the module docstring for the model.

    ``scope`` and ``since`` select messages (and local work) as ``Session.cost`` does. ``compute`` needs a
    source with a work log (a Session or a Ledger).
    """
    profile = parse_profile(profile)
    latency = profile.latency(per_round)
    bw = profile.bandwidth_bps
    if compute is not None and not isinstance(compute, ComputeModel):
        raise TypeError(f"compute must be a ComputeModel or None, got {compute!r}")
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise ValueError(f"since must be a non-negative ledger position, got {since!r}")
    opts = dict(per_round=per_round, sequential=bool(sequential), include_offline=bool(include_offline),
                compute=compute)

    if isinstance(source, Cost):
        if scope is not None or since:
            raise ValueError("a Cost is already a selection: scope= and since= apply to a Session or Ledger")
        if compute is not None:
            raise ValueError("a Cost carries no work log: price compute from a Session or Ledger")
        rounds = source.sequential_rounds if sequential else source.rounds
        offline_s = 0.0
        if include_offline and source.offline_bits:
            offline_s = latency + max(source.offline_received_bits, default=0) / bw
        return LatencyBreakdown(profile, rounds, rounds * latency, max(source.sent_bits, default=0) / bw,
                                0.0, offline_s, coarse=True, **opts)

    messages, work = _source_parts(source, scope, since)
    if compute is not None and work is None:
        raise ValueError("compute time needs a Session or Ledger (a list of Messages has no work log)")

    links: dict[int, dict[tuple[int, int], int]] = {}
    offline_recv: dict[int, int] = {}
    for m in messages:
        if m.phase == ONLINE:
            per_link = links.setdefault(m.call if sequential else m.depth, {})
            per_link[(m.src, m.dst)] = per_link.get((m.src, m.dst), 0) + m.bits
        else:
            offline_recv[m.dst] = offline_recv.get(m.dst, 0) + m.bits
    rounds = len(links)
    transfer_bits = sum(max(per_link.values()) for per_link in links.values())
    offline_s = 0.0
    if include_offline and offline_recv:
        offline_s = latency + max(offline_recv.values()) / bw
    compute_s = compute.seconds(work) if compute is not None else 0.0
    return LatencyBreakdown(profile, rounds, rounds * latency, transfer_bits / bw, compute_s, offline_s, **opts)
