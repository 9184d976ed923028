"""A session's priced rounds as a timeline, in the Chrome Trace Event Format (Perfetto UI, chrome://tracing).

:func:`chrome_trace` returns one JSON object ``{"traceEvents": [...], "displayTimeUnit": "ms",
"otherData": {...}}``; :func:`write_trace` writes it to a file. Events are ``"X"`` complete events (``name``,
``cat``, ``ph``, ``pid``, ``tid``, ``ts`` and ``dur`` in microseconds, ``args``) and ``"M"`` metadata events
(``process_name``, ``thread_name``, ``thread_sort_index``) naming the tracks. Every position and duration
is a number of :func:`costmodel.latency.estimate`'s model, not a measurement.

Mapping from the ledger
-----------------------
* pid 0 is the session; tid ``i`` (thread "party i") is party i.
* **Rounds.** The online messages selected (all, or those after ``since``, a ``Session.mark()``) are grouped
  by communication depth, the grouping ``estimate`` uses. Round k (k-th depth in increasing order) costs
  ``latency + max link bits / bandwidth`` (``predicted_s``); rounds are laid back to back, so round k
  starts at ``k * latency + (max link bits of rounds < k) / bandwidth``, computed from the cumulative sums
  exactly as ``estimate`` computes ``rounds_s + bandwidth_s``: the last round ends at that sum.
* Every party gets one slice per round, also a party that sends nothing in it (``bytes`` 0, ``cat``
  "wait": it waits for the others), since the round costs every party its time. The slice's name is the
  round's most frequent scope by message count ("(root)" outside any scope), with "+n more" when n other
  scopes share the round; ``args``: ``round``, ``depth``, ``scopes`` (most frequent first), ``bytes`` and
  ``messages`` this party sent, ``round_bytes`` and ``round_messages`` (all parties), ``max_link_bytes``,
  ``predicted_s``.
* **Offline** (dealer) messages: with ``include_offline=True`` (as in ``estimate``) they are priced the
  same way, ``latency + max bits received by one party / bandwidth``, and shown as one slice on thread
  "dealer (offline)" (tid = number of parties) from 0, before the online phase, which then starts after
  it. Without it they are not placed in time: their bytes and message count are in
  ``otherData["offline"]`` only.
* **Compute** (``compute=ComputeModel``): ``estimate`` adds local work to the network time without placing
  it among the rounds (a ``Work`` entry is the busiest party's work in one protocol step, not one party's).
  The trace shows it on thread "compute (busiest party)" (tid = parties + 1) after the last round, one
  slice per run of consecutive work entries of one scope, laid back to back.

So the last slice ends at ``estimate(session, profile, per_round=..., include_offline=..., compute=...,
since=...).total_s`` (``otherData["total_s"]``; in microseconds up to float rounding). An empty selection
gives metadata events only and ``total_s`` 0.
"""
from __future__ import annotations

import json
from collections import Counter

from mpsim.ledger import ONLINE, Ledger

from .critical import ROOT_SCOPE
from .latency import ComputeModel
from .profiles import parse_profile

__all__ = ["chrome_trace", "write_trace"]


def _us(seconds: float) -> float:
    return seconds * 1e6


def _slice(name, cat, tid, start_s, end_s, args) -> dict:
    return {"name": name, "cat": cat, "ph": "X", "pid": 0, "tid": tid, "ts": _us(start_s),
            "dur": _us(end_s - start_s), "args": args}


def _meta(name, tid, value) -> dict:
    event = {"name": name, "ph": "M", "pid": 0, "args": value}
    if tid is not None:
        event["tid"] = tid
    return event


def _label(scope: str) -> str:
    return scope or ROOT_SCOPE


def chrome_trace(session, profile, *, since: int = 0, per_round: str = "half_rtt", include_offline: bool = False,
                 compute: ComputeModel | None = None) -> dict:
    """The Chrome trace (a dict, see the module docstring) of ``session`` (a Session or a Ledger) priced on
    ``profile`` (a NetworkProfile, a preset name or a ``BANDWIDTH/PING`` string); ``since`` a ledger position
    (``Session.mark()``), ``per_round``, ``include_offline`` and ``compute`` as in ``estimate``."""
    ledger = session if isinstance(session, Ledger) else getattr(session, "ledger", None)
    if not isinstance(ledger, Ledger):
        raise TypeError(f"chrome_trace() traces a Session or a Ledger, got {type(session).__name__}")
    profile = parse_profile(profile)
    latency = profile.latency(per_round)
    bw = profile.bandwidth_bps
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise ValueError(f"since must be a non-negative ledger position, got {since!r}")
    if compute is not None and not isinstance(compute, ComputeModel):
        raise TypeError(f"compute must be a ComputeModel or None, got {compute!r}")
    parties = ledger.parties
    messages = ledger.select(since=since)

    rounds: dict[int, list] = {}
    offline = []
    for m in messages:
        (rounds.setdefault(m.depth, []) if m.phase == ONLINE else offline).append(m)

    events = [_meta("process_name", None, {"name": f"mpsim session ({parties} parties) on {profile.name}"})]
    for p in range(parties):
        events.append(_meta("thread_name", p, {"name": f"party {p}"}))
        events.append(_meta("thread_sort_index", p, {"sort_index": p}))

    offline_recv: dict[int, int] = {}
    for m in offline:
        offline_recv[m.dst] = offline_recv.get(m.dst, 0) + m.bits
    offline_bits = sum(offline_recv.values())
    offline_s = 0.0
    if include_offline and offline:
        offline_s = latency + max(offline_recv.values()) / bw
        dealer = parties
        events.append(_meta("thread_name", dealer, {"name": "dealer (offline)"}))
        events.append(_meta("thread_sort_index", dealer, {"sort_index": -1}))
        ops = Counter(m.op for m in offline)
        events.append(_slice("offline", "offline", dealer, 0.0, offline_s, {
            "bytes": offline_bits / 8, "messages": len(offline),
            "received_bytes": [offline_recv.get(p, 0) / 8 for p in range(parties)],
            "ops": dict(ops.most_common()), "predicted_s": offline_s}))

    cum_bits = 0
    start = offline_s
    for k, depth in enumerate(sorted(rounds)):
        msgs = rounds[depth]
        links: dict[tuple[int, int], int] = {}
        sent_bits = [0] * parties
        sent_msgs = [0] * parties
        for m in msgs:
            links[(m.src, m.dst)] = links.get((m.src, m.dst), 0) + m.bits
            sent_bits[m.src] += m.bits
            sent_msgs[m.src] += 1
        max_link = max(links.values())
        cum_bits += max_link
        end = offline_s + ((k + 1) * latency + cum_bits / bw)
        scopes = [_label(s) for s, _ in Counter(m.scope for m in msgs).most_common()]
        name = scopes[0] + (f" +{len(scopes) - 1} more" if len(scopes) > 1 else "")
        for p in range(parties):
            events.append(_slice(name, "round" if sent_msgs[p] else "wait", p, start, end, {
                "round": k, "depth": depth, "scopes": scopes, "bytes": sent_bits[p] / 8,
                "messages": sent_msgs[p], "round_bytes": sum(sent_bits) / 8, "round_messages": len(msgs),
                "max_link_bytes": max_link / 8, "predicted_s": latency + max_link / bw}))
        start = end
    network_end = start

    compute_s = 0.0
    if compute is not None:
        work = [w for w in ledger.work if w.position >= since]
        runs: list[list] = []
        for w in work:
            if runs and runs[-1][0] == w.scope:
                runs[-1][1].append(w)
            else:
                runs.append([w.scope, [w]])
        if runs:
            tid = parties + 1
            events.append(_meta("thread_name", tid, {"name": "compute (busiest party)"}))
            events.append(_meta("thread_sort_index", tid, {"sort_index": tid}))
        macs = elems = 0
        prev = 0.0
        for scope, entries in runs:
            run_macs = sum(w.macs for w in entries)
            run_elems = sum(w.elems for w in entries)
            macs += run_macs
            elems += run_elems
            done = macs / compute.mac_per_s + elems / compute.elem_per_s
            events.append(_slice(_label(scope), "compute", parties + 1, network_end + prev, network_end + done, {
                "macs": run_macs, "elems": run_elems, "steps": len(entries), "predicted_s": done - prev}))
            prev = done
        compute_s = prev

    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "costmodel.trace", "profile": profile.as_dict(), "per_round": per_round,
            "include_offline": bool(include_offline), "compute": None if compute is None else compute.as_dict(),
            "since": since, "parties": parties, "rounds": len(rounds),
            "network_s": len(rounds) * latency + cum_bits / bw, "offline_s": offline_s, "compute_s": compute_s,
            "total_s": network_end + compute_s,
            "offline": {"bytes": offline_bits / 8, "messages": len(offline), "in_timeline": bool(offline_s)},
        },
    }


def write_trace(session, path, profile, **kw) -> dict:
    """Write :func:`chrome_trace` (same arguments) as JSON to ``path``; return the trace."""
    trace = chrome_trace(session, profile, **kw)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(trace, f)
    return trace
