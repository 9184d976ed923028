"""costmodel: pricing mpsim ledgers on networks and machines, and reporting them.

``profiles`` holds the network presets and the ``BANDWIDTH/PING`` parser, ``latency`` the pure pricing
function ``estimate`` (and the compute-throughput model), ``critical`` the call graph with its critical path
and merge savings, ``trace`` the priced rounds as a Chrome / Perfetto trace, ``report`` the
provenance-carrying report with its rich, JSON and CSV renderings.
"""
from .critical import CriticalPath, MergeSavings, call_graph, critical_path, merge_savings
from .latency import ComputeModel, LatencyBreakdown, calibrate, estimate
from .profiles import PROFILES, NetworkProfile, parse_profile, parse_profiles
from .report import Report, from_json, render, render_comparison, to_csv, to_json
from .trace import chrome_trace, write_trace

__all__ = [
    "PROFILES", "ComputeModel", "CriticalPath", "LatencyBreakdown", "MergeSavings", "NetworkProfile", "Report",
    "calibrate", "call_graph", "chrome_trace", "critical_path", "estimate", "from_json", "merge_savings",
    "parse_profile", "parse_profiles", "render", "render_comparison", "to_csv", "to_json", "write_trace",
]
