"""costmodel: network profiles, the latency model on hand-built ledgers, the call graph, and reports."""
from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime

import numpy as np
import pytest
from rich.console import Console

import mpsim
from costmodel import (
    PROFILES, ComputeModel, NetworkProfile, Report, calibrate, call_graph, critical_path, estimate, from_json,
    merge_savings, parse_profile, parse_profiles, render, render_comparison, to_csv, to_json,
)
from costmodel.report import SCHEMA_VERSION, csv_header
from mpsim.ledger import DEALER, OFFLINE, ONLINE, Ledger

APPROX = dict(abs=1e-12, rel=1e-12)


# -- profiles ------------------------------------------------------------------------------------------------
def test_presets_have_the_stated_numbers_and_sources():
    assert (PROFILES["lan"].bandwidth_bps, PROFILES["lan"].rtt_s) == (3e9, 0.3e-3)
    assert (PROFILES["wan"].bandwidth_bps, PROFILES["wan"].rtt_s) == (400e6, 40e-3)
    assert (PROFILES["lan-1g"].bandwidth_bps, PROFILES["lan-1g"].rtt_s) == (1e9, 0.5e-3)
    assert (PROFILES["wan-100m"].bandwidth_bps, PROFILES["wan-100m"].rtt_s) == (100e6, 80e-3)
    for name in ("lan", "wan"):
        assert "Cheetah" in PROFILES[name].source and "BumbleBee" in PROFILES[name].source
    assert all(p.source for p in PROFILES.values())


@pytest.mark.parametrize("text, bps, rtt", [
    ("1gbit/0.5ms", 1e9, 0.5e-3),
    ("400mbit/40ms", 400e6, 40e-3),
    ("3gbps/300us", 3e9, 300e-6),
    ("100mbit/0.08s", 100e6, 0.08),
    ("100Mbit/s/80ms", 100e6, 80e-3),
    ("2.5gbitps/1ms", 2.5e9, 1e-3),
    (" 512kbit / 2 s ", 512e3, 2.0),
    ("800bit/1us", 800.0, 1e-6),
])
def test_parse_profile_forms(text, bps, rtt):
    p = parse_profile(text)
    assert p.bandwidth_bps == pytest.approx(bps, rel=1e-15) and p.rtt_s == pytest.approx(rtt, rel=1e-15)
    assert p.name == text.strip().lower() and p.source.startswith("user-specified")


def test_parse_profile_presets_and_lists():
    assert parse_profile("WAN") is PROFILES["wan"]
    ps = parse_profiles("lan,wan, 1gbit/0.5ms")
    assert [p.name for p in ps] == ["lan", "wan", "1gbit/0.5ms"]


@pytest.mark.parametrize("text", ["", "fast", "1gb/1ms", "1gbit", "1gbit/1", "-1mbit/1ms", "1tbit/1ms",
                                  "1gbit/1min", "1 gbyte/1ms"])
def test_parse_profile_rejects_with_the_accepted_forms(text):
    with pytest.raises(ValueError) as err:
        parse_profile(text)
    msg = str(err.value)
    assert "BANDWIDTH/PING" in msg and "ms" in msg and all(name in msg for name in PROFILES)


@pytest.mark.parametrize("text", ["0gbit/1ms", "1gbit/0ms"])
def test_parse_profile_rejects_zero(text):
    with pytest.raises(ValueError, match="positive"):
        parse_profile(text)


def test_parse_profiles_rejects_empty_items_and_duplicates():
    with pytest.raises(ValueError, match="empty"):
        parse_profiles("lan,,wan")
    with pytest.raises(ValueError, match="twice: lan"):
        parse_profiles("lan,wan,LAN")


def test_network_profile_validation():
    with pytest.raises(ValueError, match="bandwidth_bps"):
        NetworkProfile("x", 0, 1)
    with pytest.raises(ValueError, match="rtt_s"):
        NetworkProfile("x", 1, float("inf"))
    with pytest.raises(TypeError, match="bandwidth_bps"):
        NetworkProfile("x", "1gbit", 1)
    with pytest.raises(ValueError, match="name"):
        NetworkProfile("", 1, 1)
    with pytest.raises(ValueError, match="per_round"):
        NetworkProfile("x", 1, 1).latency("half")
    p = NetworkProfile("x", 10, 2)
    assert p.latency() == 1 and p.latency("rtt") == 2
    assert NetworkProfile.from_dict(p.as_dict()) == p


# -- latency on hand-built ledgers --------------------------------------------------------------------------
NET = NetworkProfile("test", 1000.0, 0.5)  # 1000 bit/s per link; RTT 0.5 s, so 0.25 s per round by default


def two_party_ledger() -> Ledger:
    """Depth 1 (call 0): 1000 bits 0->1, 3000 bits 1->0. Depth 2: call 1 sends 500 bits 0->1; call 2 sends
    250 bits 0->1 and 600 bits 1->0. Dealer: 800 + 200 bits to party 0, 300 bits to party 1."""
    lg = Ledger(2)
    lg.record("a", "open", 1, 0, 0, 1, 1000, ONLINE)
    lg.record("a", "open", 1, 0, 1, 0, 3000, ONLINE)
    lg.record("b", "open", 2, 1, 0, 1, 500, ONLINE)
    lg.record("c", "open", 2, 2, 0, 1, 250, ONLINE)
    lg.record("c", "open", 2, 2, 1, 0, 600, ONLINE)
    lg.record("a", "triple", 0, -1, DEALER, 0, 800, OFFLINE)
    lg.record("b", "triple", 0, -1, DEALER, 1, 300, OFFLINE)
    lg.record("c", "triple", 0, -1, DEALER, 0, 200, OFFLINE)
    return lg


def test_depth_rounds_charge_the_busiest_link_per_depth():
    est = estimate(two_party_ledger(), NET)
    # depth 1: max(1000, 3000) = 3000; depth 2: link 0->1 carries 500 + 250 = 750 > 600 on 1->0.
    assert est.rounds == 2
    assert est.rounds_s == 2 * 0.25
    assert est.bandwidth_s == (3000 + 750) / 1000
    assert (est.compute_s, est.offline_s) == (0.0, 0.0)
    assert est.total_s == 4.25 and est.dominant == "bandwidth" and not est.coarse


def test_sequential_charges_every_call():
    est = estimate(two_party_ledger(), NET, sequential=True)
    # call 0: 3000; call 1: 500; call 2: max(250, 600) = 600.
    assert est.rounds == 3 and est.rounds_s == 0.75
    assert est.bandwidth_s == pytest.approx(4.1, **APPROX)
    assert est.total_s == pytest.approx(4.85, **APPROX)


def test_rtt_per_round_and_offline():
    lg = two_party_ledger()
    est = estimate(lg, NET, per_round="rtt")
    assert est.rounds_s == 1.0 and est.total_s == 4.75
    est = estimate(lg, NET, include_offline=True)
    # one extra transfer: 0.25 s latency + the busiest receiver (party 0: 800 + 200 bits) / 1000 bit/s.
    assert est.offline_s == 0.25 + 1.0
    assert est.total_s == 4.25 + 1.25
    assert estimate(lg, NET, include_offline=True, per_round="rtt").offline_s == 0.5 + 1.0
    with pytest.raises(ValueError, match="per_round"):
        estimate(lg, NET, per_round="half")


def test_scope_and_since_select_messages():
    lg = two_party_ledger()
    est = estimate(lg, NET, scope="c")
    assert (est.rounds, est.bandwidth_s) == (1, 0.6)
    est = estimate(lg, NET, since=2)  # the depth-2 messages only
    assert (est.rounds, est.bandwidth_s) == (1, 0.75)
    est = estimate(lg.messages[:2], NET)  # a list of messages
    assert (est.rounds, est.bandwidth_s) == (1, 3.0)


def test_three_parties_charge_links_not_parties():
    lg = Ledger(3)
    # depth 1: open to everyone, 640 bits on each of the 6 directed links.
    for s in range(3):
        for d in range(3):
            if s != d:
                lg.record("open", "open", 1, 0, s, d, 640, ONLINE)
    # depth 2: open to party 0 (640 bits from 1 and from 2), and in the same call 1000 more bits 2 -> 1.
    lg.record("to0", "open", 2, 1, 1, 0, 640, ONLINE)
    lg.record("to0", "open", 2, 1, 2, 0, 640, ONLINE)
    lg.record("to0", "open", 2, 1, 2, 1, 1000, ONLINE)
    est = estimate(lg, NET)
    assert est.rounds == 2 and est.bandwidth_s == (640 + 1000) / 1000 and est.total_s == 0.5 + 1.64
    # The coarse form from a Cost charges a party's total (party 2: 1280 + 640 + 1000 bits) as one transfer.
    coarse = estimate(lg.cost(), NET)
    assert coarse.coarse and coarse.rounds == 2 and coarse.bandwidth_s == 2.92


def test_coarse_cost_form():
    lg = two_party_ledger()
    c = lg.cost()
    est = estimate(c, NET, include_offline=True)
    assert est.coarse and est.rounds == 2 and est.rounds_s == 0.5
    assert est.bandwidth_s == 3.6  # party 1 sent 3000 + 600 bits
    assert est.offline_s == 0.25 + 1.0
    assert estimate(c, NET, sequential=True).rounds == 3
    with pytest.raises(ValueError, match="Cost"):
        estimate(c, NET, scope="a")
    with pytest.raises(ValueError, match="work log"):
        estimate(c, NET, compute=ComputeModel(1, 1))


def test_compute_term_sums_work_of_the_selected_scopes():
    lg = two_party_ledger()
    lg.record_work("a", "combine", macs=4_000_000, elems=50_000)
    lg.record_work("b", "combine", elems=100_000)
    model = ComputeModel(mac_per_s=1e6, elem_per_s=1e5, source="test")
    est = estimate(lg, NET, compute=model)
    assert est.compute_s == 4.0 + 0.5 + 1.0 and est.dominant == "compute"
    assert est.total_s == 4.25 + 5.5
    assert estimate(lg, NET, compute=model, scope="b").compute_s == 1.0
    assert estimate(lg, NET, compute=model, since=len(lg.messages)).compute_s == 5.5  # work after every message
    later = Ledger(2)
    later.record_work("a", "before", elems=100_000)
    later.record("a", "open", 1, 0, 0, 1, 64, ONLINE)
    later.record_work("a", "after", elems=200_000)
    assert estimate(later, NET, compute=model, since=1).compute_s == 2.0  # only the work after the mark
    with pytest.raises(ValueError, match="work log"):
        estimate(lg.messages, NET, compute=model)
    with pytest.raises(TypeError):
        estimate(object(), NET)


def test_breakdown_as_dict_and_dominant():
    est = estimate(two_party_ledger(), NET)
    d = est.as_dict()
    assert d["total_s"] == 4.25 and d["dominant"] == "bandwidth" and d["profile"]["name"] == "test"
    for key in ("rounds_s", "bandwidth_s", "compute_s", "offline_s", "rounds"):
        assert key in d
    assert estimate(Ledger(2), NET).dominant == "none"
    slow = NetworkProfile("slow", 1e12, 100.0)
    assert estimate(two_party_ledger(), slow).dominant == "rounds"


def test_compute_model_validation_and_calibration():
    with pytest.raises(ValueError, match="mac_per_s"):
        ComputeModel(0, 1)
    with pytest.raises(ValueError, match="elem_per_s"):
        ComputeModel(1, float("nan"))
    model = calibrate()
    assert 1e6 < model.mac_per_s < 1e13 and 1e6 < model.elem_per_s < 1e13
    assert "calibrated" in model.source
    assert ComputeModel.from_dict(model.as_dict()) == model


# -- real sessions -------------------------------------------------------------------------------------------
def readme_session(repeat: int = 1) -> mpsim.Session:
    with mpsim.Session(parties=2, frac_bits=16, seed=1) as s:
        x = s.input(np.linspace(-4, 4, 512), owner=0)
        w = s.input(np.random.default_rng(0).normal(size=(512, 64)), owner=1)
        ys = []
        with s.scope("layer"):
            for _ in range(repeat):
                ys.append((x * x) @ w)
        for y in ys:
            s.reveal(y)
    return s


def test_worked_example_of_the_module_docstring():
    est = estimate(readme_session(), "wan")
    assert est.rounds == 3 and est.rounds_s == pytest.approx(0.06, **APPROX)
    assert est.bandwidth_s == (32_768 + 2_129_920 + 4_096) / 400e6
    assert est.total_s == pytest.approx(0.06541696, **APPROX) and est.dominant == "rounds"


def dependency_session() -> mpsim.Session:
    """Two independent products, a chain of dependent ones, two independent reveals, one final reveal."""
    with mpsim.Session(parties=2, seed=0) as s:
        a = s.input(np.ones(4), owner=0)
        b = s.input(np.ones(4), owner=1)
        with s.scope("first"):
            p = a * b                      # call 0, depth 1
        with s.scope("second"):
            q = a * a                      # call 1, depth 1
        with s.scope("third"):
            r = p * q                      # call 2, depth 2
            r = r * r                      # call 3, depth 3
            r = r * r                      # call 4, depth 4
        with s.scope("out"):
            s.reveal(p)                    # call 5, depth 2
            s.reveal(q)                    # call 6, depth 2
        with s.scope("final"):
            s.reveal(r)                    # call 7, depth 5
    return s


def test_call_graph_nodes_and_edges():
    s = dependency_session()
    g = call_graph(s)
    assert sorted(g.nodes) == list(range(8))
    assert g.nodes[2]["scope"] == "third/beaver_mul" and g.nodes[2]["depth"] == 2
    assert g.nodes[0]["bits"] == 2 * 2 * 4 * 64  # two operands of 4 elements, both parties, K = 64
    assert g.nodes[1]["bits"] == 2 * 4 * 64
    for parent, child in g.edges:
        assert g.nodes[parent]["depth"] < g.nodes[child]["depth"]
    assert set(g.predecessors(3)) == {2} and set(g.predecessors(7)) == {4}
    assert set(g.predecessors(5)) == {0} and set(g.predecessors(6)) == {1}


def test_call_graph_product_waits_for_both_operands():
    g = call_graph(dependency_session())
    assert set(g.predecessors(2)) == {0, 1}


def test_critical_path_and_merge_savings():
    s = dependency_session()
    path = critical_path(s)
    assert path.depth == s.cost().rounds == 5 and len(path) == 5
    assert path.calls == (1, 2, 3, 4, 7)
    assert path.runs == (("second/beaver_square", 1), ("third/beaver_mul", 1), ("third/beaver_square", 2),
                         ("final/reveal", 1))
    assert path.format().startswith("second/beaver_square x1 -> third/beaver_mul x1")
    saved = merge_savings(s)
    assert (saved.rounds, saved.sequential_rounds, saved.total) == (5, 8, 3)
    assert saved.by_scope == {"first": 0, "second": 0, "third": 0, "out": 1, "final": 0}
    empty = mpsim.Session(parties=2)
    assert critical_path(empty).runs == () and merge_savings(empty).total == 0


def test_sequential_estimate_on_a_session_charges_unmerged_reveals():
    s = dependency_session()
    depth, seq = estimate(s, "lan"), estimate(s, "lan", sequential=True)
    assert (depth.rounds, seq.rounds) == (5, 8)
    assert seq.rounds_s - depth.rounds_s == pytest.approx(3 * 0.15e-3, **APPROX)
    assert estimate(s, "lan", scope="out").rounds == 1
    assert estimate(s, "lan", scope="out", sequential=True).rounds == 2


# -- reports --------------------------------------------------------------------------------------------------
def text_of(fn, *args) -> str:
    console = Console(record=True, width=200)
    fn(*args, console)
    return console.export_text()


def test_report_tree_content_and_provenance():
    s = readme_session()
    r = Report.from_session(s, ["lan", "wan"], name="readme", extra_config={"shape": [512, 64]})
    assert r.schema_version == SCHEMA_VERSION and r.name == "readme"
    prov = r.provenance
    for key in ("config", "extra", "seed", "mpsim_version", "git_commit", "timestamp", "model"):
        assert key in prov
    assert prov["config"]["parties"] == 2 and prov["config"]["trunc"] == "local" and "approx" in prov["config"]
    assert prov["seed"] == 1 and prov["extra"] == {"shape": [512, 64]} and prov["mpsim_version"] == mpsim.__version__
    assert prov["git_commit"] is None or len(prov["git_commit"].removesuffix("-dirty")) == 40  # "-dirty": uncommitted changes
    datetime.fromisoformat(prov["timestamp"])
    assert prov["model"] == {"per_round": "half_rtt", "include_offline": False, "compute": None}
    assert [p.name for p in r.profiles] == ["lan", "wan"]

    root = r.tree
    assert (root.rounds, root.sequential_rounds, root.sent_bytes, root.offline_bytes, root.share) == (
        3, 3, [270848.0, 270848.0], 4608.0, 1.0)
    assert root.seconds["wan"] == pytest.approx(0.06541696, **APPROX)
    layer = root.children[0]
    assert layer.path == "layer" and [c.name for c in layer.children] == ["beaver_square", "beaver_matmul"]  # as they ran
    assert layer.share == pytest.approx(540672 / 541696, **APPROX)
    # per-scope time: the layer's two rounds on wan, with its own bits.
    assert layer.seconds["wan"] == pytest.approx(0.04 + (32_768 + 2_129_920) / 400e6, **APPROX)
    assert r.totals["estimates"]["wan"]["total_s"] == root.seconds["wan"]
    assert r.totals["critical_path"] == [["layer/beaver_square", 1], ["layer/beaver_matmul", 1], ["reveal", 1]]

    text = text_of(render, r)
    assert "readme  rounds 3 (3 seq)  sent 271 kB/party  offline 4.61 kB  lan 1.17 ms  wan 65.4 ms  100.0%" in text
    assert "layer  rounds 2 (2 seq)" in text and "99.8%" in text
    assert "beaver_matmul  rounds 1 (1 seq)  sent 266 kB/party  offline 512 B" in text
    assert "wan (400 Mbit/s, 40 ms RTT): 65.4 ms = rounds 60 ms + bandwidth 5.42 ms  (dominant: rounds)" in text
    assert "critical path: layer/beaver_square x1 -> layer/beaver_matmul x1 -> reveal x1" in text
    assert "save 0 of 3 sequential rounds" in text
    assert "2 parties, K=64, f=16, share backend, trunc local, seed 1" in text


def test_report_with_compute_and_offline():
    s = readme_session()
    model = ComputeModel(1e9, 1e9, "fixed for the test")
    r = Report.from_session(s, "lan", compute=model, include_offline=True, per_round="rtt")
    est = r.totals["estimates"]["lan"]
    work = s.ledger.work
    assert est["compute_s"] == pytest.approx(sum(w.macs + w.elems for w in work) / 1e9, **APPROX)
    assert est["offline_s"] == pytest.approx(0.3e-3 + 4608 * 8 / 3e9, **APPROX)
    assert r.provenance["model"]["compute"]["source"] == "fixed for the test"
    text = text_of(render, r)
    assert "+ compute" in text and "+ offline" in text and "compute modelled" in text
    with pytest.raises(ValueError, match="distinct"):
        Report.from_session(s, ["lan", PROFILES["lan"]])


def test_json_round_trip_is_exact():
    r = Report.from_session(readme_session(), ["lan", "wan", "1gbit/0.5ms"], compute=ComputeModel(3e9, 1e9),
                            name="readme")
    text = to_json(r)
    back = from_json(text)
    assert back == r
    assert to_json(back) == text
    assert text_of(render, back) == text_of(render, r)
    data = json.loads(text)
    assert list(data) == ["schema_version", "name", "provenance", "profiles", "tree", "totals"]
    assert data["schema_version"] == SCHEMA_VERSION
    with pytest.raises(ValueError, match="schema_version"):
        from_json(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(ValueError, match="invalid JSON"):
        from_json("{not json")


def test_csv_rows_per_scope():
    r = Report.from_session(readme_session(), "lan,wan", name="readme")
    rows = list(csv.reader(io.StringIO(to_csv(r))))
    assert rows[0] == csv_header(r) == [
        "path", "name", "level", "rounds", "sequential_rounds", "sent_bytes_p0", "sent_bytes_p1",
        "max_sent_bytes", "total_bytes", "offline_bytes", "share", "seconds_lan", "seconds_wan"]
    assert [row[0] for row in rows[1:]] == ["", "layer", "layer/beaver_square", "layer/beaver_matmul", "reveal"]
    root = dict(zip(rows[0], rows[1]))
    assert root["name"] == "(session)" and root["level"] == "0" and root["rounds"] == "3"
    assert float(root["sent_bytes_p0"]) == 270848.0 and float(root["total_bytes"]) == 541696.0
    assert float(root["seconds_wan"]) == r.tree.seconds["wan"]
    assert dict(zip(rows[0], rows[3]))["level"] == "2"


def test_comparison_table_ratios():
    one = Report.from_session(readme_session(1), "lan,wan", name="once")
    two = Report.from_session(readme_session(2), "wan,wan-100m", name="twice")
    text = text_of(render_comparison, [one, two])
    assert "ratios against once" in text and "twice / once" in text
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in text.splitlines() if line.startswith("│")}
    # the second product runs alongside the first: same depth, twice the calls and bytes.
    assert lines["rounds"] == ["3", "3", "1.00x"]
    assert lines["sequential rounds"] == ["3", "6", "2.00x"]
    assert lines["bytes/party (max)"] == ["271 kB", "542 kB", "2.00x"]
    assert lines["offline bytes"] == ["4.61 kB", "9.22 kB", "2.00x"]
    assert lines["time on lan"][1:] == ["-", "-"] and lines["time on wan-100m"][0] == "-"
    wan = lines["time on wan"]
    ratio = two.totals["estimates"]["wan"]["total_s"] / one.totals["estimates"]["wan"]["total_s"]
    assert wan[2] == f"{ratio:.2f}x" and math.isfinite(ratio)
    with pytest.raises(ValueError):
        render_comparison([], Console())


def test_report_on_count_backend_workload():
    from mpsim.cli.demo import run_attention_step

    s = mpsim.Session(parties=3, seed=0, backend="count")
    run_attention_step(s, seq=16, heads=2, head_dim=8)
    r = Report.from_session(s, "lan", name="attention")
    assert [c.name for c in r.tree.children] == ["setup", "step"]
    assert len(r.tree.sent_bytes) == 3 and r.provenance["config"]["backend"] == "count"
    assert sum(c.share for c in r.tree.children) == pytest.approx(1.0, **APPROX)
    assert from_json(to_json(r)) == r


def test_the_scope_tree_lists_siblings_in_execution_order():
    """layer10 after layer9, attention before linear when it ran first: not alphabetical (issue 17)."""
    s = mpsim.Session(parties=2, backend="count")
    x = s.placeholder((4, 8))
    for i in range(12):
        with s.scope(f"layer{i}"):
            with s.scope("attention"):
                _ = x * x
            with s.scope("linear"):
                _ = x * x
    tree = s.cost_tree()
    assert [c.name for c in tree.children] == [f"layer{i}" for i in range(12)]
    assert [c.name for c in tree.children[10].children] == ["attention", "linear"]
    report = Report.from_session(s, "lan")
    assert [c.name for c in report.tree.children][9:] == ["layer9", "layer10", "layer11"]
