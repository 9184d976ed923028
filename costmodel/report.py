"""Reports: a session's cost tree priced on network profiles, with provenance, rendered or serialised.

:meth:`Report.from_session` freezes everything a result needs to be reproduced and compared: the session's
configuration (including the approximation knobs), the profiles and compute model used, the mpsim version
and git commit, and per scope the rounds, bytes and estimated seconds. :func:`render` prints it as a rich
Tree, :func:`render_comparison` puts several reports side by side with ratios against the first, and
:func:`to_json` / :func:`from_json` / :func:`to_csv` serialise it.

Schema
------
``to_json`` writes one JSON object (2-space indent, keys in the order below), ``schema_version`` 1:

* ``schema_version`` (int): 1. ``from_json`` refuses other versions.
* ``name`` (str): the report's label (used as the column title in comparisons).
* ``provenance`` (object): ``config`` (``Session.config``: parties, ring_bits, frac_bits, backend, trunc,
  seed, max_abs, check_domain, approx), ``extra`` (the caller's ``extra_config`` or null), ``seed``,
  ``mpsim_version``, ``git_commit`` (``git rev-parse HEAD`` in the installed package's directory, with "-dirty" appended when tracked files have uncommitted changes, null when
  that fails), ``timestamp`` (UTC, ISO 8601, seconds), ``model`` (``per_round``, ``include_offline``,
  ``compute``: the ComputeModel as ``{mac_per_s, elem_per_s, source}`` or null).
* ``profiles`` (array): each ``{name, bandwidth_bps, rtt_s, source}``.
* ``tree`` (object): the root scope (the whole session), each node ``{name, path, rounds,
  sequential_rounds, sent_bytes, offline_bytes, share, seconds, children}``: ``path`` is the scope path
  ("" for the root), ``sent_bytes`` the online bytes each party sent (array, one per party), ``offline_bytes``
  what the dealer sent, ``share`` the node's fraction of the session's online bytes (0..1), ``seconds`` the
  estimated total seconds of the scope's messages per profile name (``costmodel.latency.estimate`` on the
  messages of the scope and its sub-scopes), ``children`` the sub-scopes (same shape). Every node includes
  its sub-scopes.
* ``totals`` (object): ``rounds``, ``sequential_rounds``, ``sent_bytes``, ``total_bytes``, ``offline_bytes``,
  ``estimates`` (profile name -> ``LatencyBreakdown.as_dict()``: rounds_s, bandwidth_s, compute_s,
  offline_s, total_s, dominant, ...), ``critical_path`` (array of ``[scope, calls]`` runs, from the first
  exchange to a deepest one), ``merge_savings`` (``{total, rounds, sequential_rounds, by_scope}``).

``to_csv`` writes one row per scope (pre-order, root first) with the header ``path, name, level, rounds,
sequential_rounds, sent_bytes_p0 .. sent_bytes_p{N-1}, max_sent_bytes, total_bytes, offline_bytes, share``,
then one ``seconds_<profile>`` column per profile. The root row has an empty path and the name
``(session)``; ``level`` is the nesting depth (root 0).
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from mpsim.ledger import Ledger

from .critical import critical_path, format_runs, merge_savings
from .latency import ComputeModel, estimate
from .profiles import NetworkProfile, format_time, parse_profile, parse_profiles

__all__ = ["SCHEMA_VERSION", "Report", "ScopeEntry", "breakdown_csv", "from_json", "render", "render_breakdown",
           "render_comparison", "to_csv", "to_json"]

SCHEMA_VERSION = 1
ROOT_LABEL = "(session)"


@dataclass
class ScopeEntry:
    """One node of a report's scope tree (see the module docstring, "Schema")."""

    name: str
    path: str
    rounds: int
    sequential_rounds: int
    sent_bytes: list[float]
    offline_bytes: float
    share: float
    seconds: dict[str, float]
    children: list["ScopeEntry"] = field(default_factory=list)

    def walk(self, level: int = 0):
        yield level, self
        for child in self.children:
            yield from child.walk(level + 1)

    def as_dict(self) -> dict:
        return {
            "name": self.name, "path": self.path, "rounds": self.rounds, "sequential_rounds": self.sequential_rounds,
            "sent_bytes": list(self.sent_bytes), "offline_bytes": self.offline_bytes, "share": self.share,
            "seconds": dict(self.seconds), "children": [c.as_dict() for c in self.children],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ScopeEntry":
        return cls(d["name"], d["path"], d["rounds"], d["sequential_rounds"], list(d["sent_bytes"]),
                   d["offline_bytes"], d["share"], dict(d["seconds"]), [cls.from_dict(c) for c in d["children"]])


def _git_commit() -> str | None:
    import mpsim

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(mpsim.__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    try:  # a working tree with uncommitted changes is not that commit: say so
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(mpsim.__file__).resolve().parent, capture_output=True, text=True, timeout=5)
        if dirty.returncode == 0 and dirty.stdout.strip():
            commit += "-dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    return commit


def _plain(value):
    """``value`` as JSON would give it back (tuples become lists, keys strings), so reports round-trip."""
    return json.loads(json.dumps(value, default=str))


def _as_profiles(profiles) -> list[NetworkProfile]:
    if isinstance(profiles, str):
        return parse_profiles(profiles)
    result = [parse_profile(p) for p in profiles]
    names = [p.name for p in result]
    if len(set(names)) != len(names):
        raise ValueError(f"profile names must be distinct, got {names}")
    return result


@dataclass
class Report:
    """A priced, self-describing cost report of one session (see the module docstring, "Schema")."""

    name: str
    provenance: dict
    profiles: list[NetworkProfile]
    tree: ScopeEntry
    totals: dict
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_session(
        cls,
        session,
        profiles=("lan", "wan"),
        compute: ComputeModel | None = None,
        name: str = "session",
        extra_config: dict | None = None,
        *,
        per_round: str = "half_rtt",
        include_offline: bool = False,
    ) -> "Report":
        """Price ``session`` on ``profiles`` (NetworkProfiles, preset names / ``BANDWIDTH/PING`` strings, or
        one comma-separated string); ``compute`` adds the compute term; ``extra_config`` (JSON-able dict)
        is stored in the provenance, e.g. the workload's shapes."""
        import mpsim

        profiles = _as_profiles(profiles)
        if not profiles:
            raise ValueError("a report needs at least one network profile")
        opts = dict(per_round=per_round, include_offline=include_offline, compute=compute)
        parties = session.parties

        # Messages and work of every scope path, including sub-scopes (as Session.cost_tree groups them).
        by_path: dict[str, Ledger] = {}

        def ledger_of(path: str) -> Ledger:
            if path not in by_path:
                by_path[path] = Ledger(parties)
            return by_path[path]

        def prefixes(scope: str):
            parts = scope.split("/") if scope else []
            return ("/".join(parts[:i]) for i in range(len(parts) + 1))

        for m in session.ledger.messages:
            for p in prefixes(m.scope):
                ledger_of(p).messages.append(m)
        for w in session.ledger.work:
            for p in prefixes(w.scope):
                ledger_of(p).work.append(w)

        tree = session.cost_tree()
        total_bits = tree.cost.total_bits

        def entry(node) -> ScopeEntry:
            c = node.cost
            ledger = by_path.get(node.path, Ledger(parties))
            seconds = {p.name: estimate(ledger, p, **opts).total_s for p in profiles}
            sent = list(c.sent) if c.sent else [0.0] * parties
            return ScopeEntry(node.name, node.path, c.rounds, c.sequential_rounds, sent, c.offline_bytes,
                              c.total_bits / total_bits if total_bits else 0.0, seconds,
                              [entry(child) for child in node.children])

        root = entry(tree)
        whole = session.cost()
        estimates = {p.name: estimate(session, p, **opts).as_dict() for p in profiles}
        path = critical_path(session)
        totals = {
            "rounds": whole.rounds,
            "sequential_rounds": whole.sequential_rounds,
            "sent_bytes": list(whole.sent) if whole.sent else [0.0] * parties,
            "total_bytes": whole.total_bytes,
            "offline_bytes": whole.offline_bytes,
            "estimates": estimates,
            "critical_path": [[scope, n] for scope, n in path.runs],
            "merge_savings": merge_savings(session).as_dict(),
        }
        provenance = {
            "config": session.config,
            "extra": extra_config,
            "seed": session.seed,
            "mpsim_version": mpsim.__version__,
            "git_commit": _git_commit(),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": {"per_round": per_round, "include_offline": bool(include_offline),
                      "compute": None if compute is None else compute.as_dict()},
        }
        return cls(str(name), _plain(provenance), profiles, root, _plain(totals))

    def as_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "provenance": self.provenance,
            "profiles": [p.as_dict() for p in self.profiles],
            "tree": self.tree.as_dict(),
            "totals": self.totals,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported report schema_version {version!r} (this mpsim reads {SCHEMA_VERSION})")
        return cls(d["name"], d["provenance"], [NetworkProfile.from_dict(p) for p in d["profiles"]],
                   ScopeEntry.from_dict(d["tree"]), d["totals"], version)


# -- serialisation -----------------------------------------------------------------------------------------
def to_json(report: Report) -> str:
    """The report as JSON text (schema in the module docstring); ``from_json`` reads it back exactly."""
    return json.dumps(report.as_dict(), indent=2) + "\n"


def from_json(text: str) -> Report:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a report: invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError("not a report: expected a JSON object")
    return Report.from_dict(data)


def csv_header(report: Report) -> list[str]:
    parties = len(report.tree.sent_bytes)
    return (["path", "name", "level", "rounds", "sequential_rounds"]
            + [f"sent_bytes_p{i}" for i in range(parties)]
            + ["max_sent_bytes", "total_bytes", "offline_bytes", "share"]
            + [f"seconds_{p.name}" for p in report.profiles])


def to_csv(report: Report) -> str:
    """One row per scope, root first (columns in the module docstring, "Schema")."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_header(report))
    for level, node in report.tree.walk():
        writer.writerow([node.path, node.name or ROOT_LABEL, level, node.rounds, node.sequential_rounds,
                         *node.sent_bytes, max(node.sent_bytes, default=0.0), sum(node.sent_bytes),
                         node.offline_bytes, node.share, *(node.seconds[p.name] for p in report.profiles)])
    return buf.getvalue()


# -- rendering ---------------------------------------------------------------------------------------------
def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g} B"


def _per_party(sent: list[float]) -> str:
    if sent and all(s == sent[0] for s in sent):
        return f"{format_bytes(sent[0])}/party"
    return "[" + ", ".join(format_bytes(s) for s in sent) + "]"


def _label(node: ScopeEntry, profiles: list[NetworkProfile], title: str) -> str:
    times = "  ".join(f"{escape(p.name)} {format_time(node.seconds[p.name])}" for p in profiles)
    return (f"[bold]{escape(title)}[/]  rounds {node.rounds} ({node.sequential_rounds} seq)  "
            f"sent {_per_party(node.sent_bytes)}  offline {format_bytes(node.offline_bytes)}  "
            f"{times}  [cyan]{node.share:.1%} of online bytes[/]")


def _provenance_line(report: Report) -> str:
    prov = report.provenance
    cfg = prov.get("config", {})
    commit = prov.get("git_commit")
    model = prov.get("model", {})
    return (f"mpsim {prov.get('mpsim_version')}, commit {commit[:12] if commit else 'unknown'}, "
            f"{cfg.get('parties')} parties, K={cfg.get('ring_bits')}, f={cfg.get('frac_bits')}, "
            f"{cfg.get('backend')} backend, trunc {cfg.get('trunc')}, seed {prov.get('seed')}; "
            f"latency per round: {model.get('per_round')}, offline "
            f"{'included' if model.get('include_offline') else 'excluded'}, compute "
            f"{'modelled' if model.get('compute') else 'not modelled'}; {prov.get('timestamp')}")


def breakdown_csv(rows: list[dict], profiles) -> str:
    """``costmodel.breakdown`` rows as CSV: group, rounds, sent bytes per party, the busiest party's, offline
    bytes, messages, then seconds per profile."""
    parties = len(rows[0]["sent_bytes"]) if rows else 0
    names = [p if isinstance(p, str) else p.name for p in profiles]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["group", "rounds", *[f"sent_bytes_p{i}" for i in range(parties)], "max_sent_bytes",
                     "offline_bytes", "messages", *[f"seconds_{n}" for n in names]])
    for r in rows:
        writer.writerow([r["group"], r["rounds"], *r["sent_bytes"], max(r["sent_bytes"]), r["offline_bytes"],
                         r["messages"], *(r["latency_s"][n] for n in names)])
    return buf.getvalue()


def render_breakdown(rows: list[dict], profiles, by: str, title: str, console: Console | None = None) -> None:
    """A table of ``costmodel.breakdown`` rows (execution order), with what its columns mean."""
    console = console or Console()
    names = [p if isinstance(p, str) else p.name for p in profiles]
    table = Table(title=escape(title), caption="sent: online bytes of the busiest party (the maximum over "
                  "parties); a row's rounds and time are its messages' alone (rows at the same depth share rounds)")
    for col in [by, "rounds", "sent", "offline", "messages"] + [f"time {n}" for n in names]:
        table.add_column(col, justify="left" if col == by else "right", no_wrap=col == by)
    for r in rows:
        table.add_row(escape(r["group"]), f"{r['rounds']:,}", format_bytes(max(r["sent_bytes"], default=0)),
                      format_bytes(r["offline_bytes"]), f"{r['messages']:,}",
                      *[format_time(r["latency_s"][n]) for n in names])
    console.print(table)


def render(report: Report, console: Console | None = None, tree: bool = True) -> None:
    """Print the scope tree (rounds, sent bytes per party, offline bytes, estimated time per profile, share of
    the online bytes), the per-profile breakdown of the total, the critical path and provenance; ``tree=False``
    leaves the tree out (when a flat breakdown is printed instead)."""
    console = console or Console()
    if tree:
        root = Tree(_label(report.tree, report.profiles, report.name))

        def add(branch, node):
            for child in node.children:
                add(branch.add(_label(child, report.profiles, child.name)), child)

        add(root, report.tree)
        console.print(root)
    totals = report.totals
    for p in report.profiles:
        est = totals["estimates"][p.name]
        parts = [f"rounds {format_time(est['rounds_s'])}", f"bandwidth {format_time(est['bandwidth_s'])}"]
        if est.get("compute") is not None:
            parts.append(f"compute {format_time(est['compute_s'])}")
        if est.get("include_offline"):
            parts.append(f"offline {format_time(est['offline_s'])}")
        console.print(f"  {escape(p.name)} ({escape(p.describe())}): {format_time(est['total_s'])} = "
                      f"{' + '.join(parts)}  (dominant: {est['dominant']})")
    runs = escape(format_runs(totals["critical_path"]))
    folded = "  ([...] xN: that run of exchanges N times in a row)" if "] x" in runs or ") x" in runs else ""
    console.print(f"  critical path: {runs or '(no communication)'}{folded}")
    saving = totals["merge_savings"]["total"]
    console.print(f"  merging independent opens would save {saving} of {totals['sequential_rounds']} "
                  "sequential rounds")
    console.print(f"  [dim]{escape(_provenance_line(report))}[/]")


def _ratio(value: float, base: float) -> str:
    if base == 0:
        return "1.00x" if value == 0 else "n/a"
    return f"{value / base:.2f}x"


def render_comparison(reports: list[Report], console: Console | None = None) -> None:
    """Print a table of the reports' totals side by side, with a ratio column (run / first run) after each
    run but the first: rounds, sequential rounds, bytes sent by the busiest party, online and offline bytes,
    and the estimated time on every profile any report was priced on."""
    if not reports:
        raise ValueError("render_comparison needs at least one report")
    console = console or Console()
    base = reports[0]
    table = Table(title=f"Comparison (ratios against {escape(base.name)})")
    table.add_column("metric")
    for i, r in enumerate(reports):
        table.add_column(escape(r.name), justify="right")
        if i:
            table.add_column(f"{escape(r.name)} / {escape(base.name)}", justify="right")

    profile_names: list[str] = []
    for r in reports:
        for p in r.profiles:
            if p.name not in profile_names:
                profile_names.append(p.name)

    def seconds(r: Report, name: str):
        est = r.totals["estimates"].get(name)
        return None if est is None else est["total_s"]

    rows = [
        ("rounds", lambda r: r.totals["rounds"], str),
        ("sequential rounds", lambda r: r.totals["sequential_rounds"], str),
        ("bytes/party (max)", lambda r: max(r.totals["sent_bytes"], default=0.0), format_bytes),
        ("online bytes (total)", lambda r: r.totals["total_bytes"], format_bytes),
        ("offline bytes", lambda r: r.totals["offline_bytes"], format_bytes),
    ] + [(f"time on {name}", (lambda r, n=name: seconds(r, n)), format_time) for name in profile_names]
    for label, get, fmt in rows:
        first = get(base)
        cells = [escape(label)]
        for i, r in enumerate(reports):
            value = get(r)
            cells.append("-" if value is None else fmt(value))
            if i:
                cells.append("-" if value is None or first is None else _ratio(value, first))
        table.add_row(*cells)
    console.print(table)
