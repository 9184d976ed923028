"""costmodel.trace: the Chrome Trace Event Format export, checked by a validator and against estimate()."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import mpsim
import protocols as P
from costmodel import ComputeModel, chrome_trace, estimate, write_trace
from mpsim.ledger import DEALER, OFFLINE, ONLINE, Ledger

METADATA = {"process_name", "thread_name", "thread_sort_index"}


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(trace: dict) -> list[dict]:
    """Check ``trace`` against the Trace Event Format as this exporter uses it ("X" and "M" events); return
    the "X" slices."""
    assert set(trace) == {"traceEvents", "displayTimeUnit", "otherData"}
    assert isinstance(trace["traceEvents"], list) and isinstance(trace["otherData"], dict)
    assert trace["displayTimeUnit"] in ("ms", "ns")
    json.dumps(trace, allow_nan=False)  # plain JSON, finite numbers
    processes, threads, slices = set(), set(), []
    for e in trace["traceEvents"]:
        assert isinstance(e, dict) and e.get("ph") in ("X", "M"), e
        assert isinstance(e["name"], str) and e["name"] and _int(e["pid"]) and isinstance(e["args"], dict), e
        if e["ph"] == "M":
            assert e["name"] in METADATA, e
            if e["name"] == "process_name":
                assert isinstance(e["args"]["name"], str) and e["args"]["name"]
                processes.add(e["pid"])
            else:
                assert _int(e["tid"]), e
                if e["name"] == "thread_name":
                    assert isinstance(e["args"]["name"], str) and e["args"]["name"]
                    threads.add((e["pid"], e["tid"]))
                else:
                    assert _int(e["args"]["sort_index"])
        else:
            assert set(e) == {"name", "cat", "ph", "pid", "tid", "ts", "dur", "args"}, e
            assert isinstance(e["cat"], str) and _int(e["tid"]), e
            assert _number(e["ts"]) and _number(e["dur"]) and e["ts"] >= 0 and e["dur"] >= 0, e
            slices.append(e)
    tracks: dict[tuple, list] = {}
    for e in slices:
        assert e["pid"] in processes and (e["pid"], e["tid"]) in threads, f"unnamed track for {e}"
        tracks.setdefault((e["pid"], e["tid"]), []).append(e)
    for track in tracks.values():
        track.sort(key=lambda e: e["ts"])
        for a, b in zip(track, track[1:]):
            assert b["ts"] >= a["ts"] + a["dur"] - 1e-9 * max(1.0, b["ts"]), f"overlap: {a} and {b}"
    return slices


def _end_us(slices) -> float:
    return max(e["ts"] + e["dur"] for e in slices)


def _softmax_session(parties=2, **kw):
    s = mpsim.Session(parties=parties, backend="count", **kw)
    x = s.input(np.zeros((4, 16)))
    with s.scope("layer0"):
        P.softmax(x, axis=-1)
    return s


@pytest.mark.parametrize("parties, kw", [(2, {}), (3, {}), (3, {"scheme": "aby3"})])
@pytest.mark.parametrize("profile", ["wan", "lan", "1gbit/0.5ms"])
def test_softmax_trace_is_valid_and_ends_at_the_estimate(parties, kw, profile):
    s = _softmax_session(parties, **kw)
    trace = chrome_trace(s, profile)
    slices = validate(trace)
    cost = s.cost()
    assert {e["tid"] for e in slices} == set(range(parties))
    assert len(slices) == cost.rounds * parties  # every party shows every round
    est = estimate(s, profile)
    assert trace["otherData"]["total_s"] == est.total_s == est.rounds_s + est.bandwidth_s
    assert trace["otherData"]["rounds"] == est.rounds == cost.rounds
    assert _end_us(slices) == pytest.approx(est.total_s * 1e6, rel=1e-12)
    assert sum(e["args"]["predicted_s"] for e in slices if e["tid"] == 0) == pytest.approx(est.total_s, rel=1e-12)
    for p in range(parties):  # each party's bytes add up to what the ledger says it sent
        assert sum(e["args"]["bytes"] for e in slices if e["tid"] == p) == cost.sent[p]
    online_scopes = {m.scope for m in s.ledger.messages if m.phase == ONLINE}
    for e in slices:  # named by the round's most frequent scope, all of them in args
        assert e["name"].split(" +")[0] == e["args"]["scopes"][0] and set(e["args"]["scopes"]) <= online_scopes
    assert any(e["name"].startswith("layer0/softmax") for e in slices)


def test_rounds_are_back_to_back_in_depth_order_with_the_model_numbers():
    s = _softmax_session()
    slices = sorted((e for e in validate(chrome_trace(s, "wan")) if e["tid"] == 0), key=lambda e: e["ts"])
    assert slices[0]["ts"] == 0
    depths = [e["args"]["depth"] for e in slices]
    assert depths == sorted(set(depths)) and [e["args"]["round"] for e in slices] == list(range(len(slices)))
    for a, b in zip(slices, slices[1:]):
        assert b["ts"] == pytest.approx(a["ts"] + a["dur"], rel=1e-12)
    for e in slices:
        assert e["dur"] == pytest.approx(e["args"]["predicted_s"] * 1e6, rel=1e-9)
        assert e["args"]["predicted_s"] == pytest.approx(0.02 + e["args"]["max_link_bytes"] * 8 / 400e6, rel=1e-12)


def test_hand_built_ledger_worked_example():
    """The latency docstring's example: depths 1..3 with 32,768 / 2,129,920 / 4,096 bits per link on wan."""
    ledger = Ledger(2)
    for call, (depth, bits) in enumerate(((1, 32_768), (2, 2_129_920), (3, 4_096))):
        for src, dst in ((0, 1), (1, 0)):
            ledger.record("x" if depth == 1 else "y", "open", depth, call, src, dst, bits, ONLINE)
    slices = validate(chrome_trace(ledger, "wan"))
    ends = sorted({round(e["ts"] + e["dur"], 6) for e in slices})
    assert ends == pytest.approx([20_081.92, 45_406.72, 65_416.96], rel=1e-12)
    assert _end_us(slices) == pytest.approx(estimate(ledger, "wan").total_s * 1e6, rel=1e-12)


def test_idle_party_and_several_scopes_in_one_round():
    ledger = Ledger(3)
    ledger.record("a", "open", 1, 0, 0, 1, 64, ONLINE)
    ledger.record("a", "open", 1, 0, 0, 2, 64, ONLINE)
    ledger.record("b/c", "open", 1, 1, 1, 0, 640, ONLINE)
    ledger.record("", "open", 2, 2, 2, 0, 8, ONLINE)
    slices = validate(chrome_trace(ledger, "lan"))
    first = {e["tid"]: e for e in slices if e["args"]["depth"] == 1}
    assert first[0]["name"] == "a +1 more" and first[0]["args"]["scopes"] == ["a", "b/c"]
    assert first[2]["cat"] == "wait" and first[2]["args"]["bytes"] == 0 and first[2]["args"]["messages"] == 0
    assert first[0]["args"]["bytes"] == 16 and first[0]["args"]["messages"] == 2 and first[1]["args"]["bytes"] == 80
    assert first[0]["args"]["round_messages"] == 3 and first[0]["args"]["max_link_bytes"] == 80
    second = [e for e in slices if e["args"]["depth"] == 2]
    assert len(second) == 3 and {e["name"] for e in second} == {"(root)"}


def test_empty_session_gives_named_tracks_and_no_slices():
    s = mpsim.Session(parties=2, backend="count")
    trace = chrome_trace(s, "wan")
    assert validate(trace) == []
    assert trace["otherData"]["total_s"] == estimate(s, "wan").total_s == 0
    assert trace["otherData"]["rounds"] == 0
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names == {"party 0", "party 1"}


def test_since_traces_one_step():
    s = mpsim.Session(parties=2, backend="count")
    x = s.input(np.zeros((2, 8)))
    with s.scope("prefill"):
        P.softmax(x, axis=-1)
    s.barrier()
    mark = s.mark()
    with s.scope("decode"):
        P.softmax(x, axis=-1)
    trace = chrome_trace(s, "wan", since=mark)
    slices = validate(trace)
    assert slices and all(e["name"].startswith("decode") for e in slices)
    assert trace["otherData"]["rounds"] == s.cost(since=mark).rounds
    assert trace["otherData"]["total_s"] == estimate(s, "wan", since=mark).total_s
    assert min(e["ts"] for e in slices) == 0
    assert validate(chrome_trace(s, "wan", since=s.mark())) == []


@pytest.mark.parametrize("per_round", ["half_rtt", "rtt"])
def test_offline_and_compute_match_estimate_with_the_same_options(per_round):
    s = _softmax_session()
    assert s.cost().offline_bits and s.ledger.work
    model = ComputeModel(1e9, 2e8, "test")
    opts = dict(per_round=per_round, include_offline=True, compute=model)
    trace = chrome_trace(s, "wan", **opts)
    slices = validate(trace)
    est = estimate(s, "wan", **opts)
    assert trace["otherData"]["total_s"] == est.total_s
    assert _end_us(slices) == pytest.approx(est.total_s * 1e6, rel=1e-12)
    assert trace["otherData"]["offline_s"] == est.offline_s and trace["otherData"]["compute_s"] == est.compute_s
    dealer = [e for e in slices if e["cat"] == "offline"]
    compute = [e for e in slices if e["cat"] == "compute"]
    rounds = [e for e in slices if e["cat"] in ("round", "wait")]
    assert len(dealer) == 1 and dealer[0]["ts"] == 0 and dealer[0]["tid"] == 2
    assert dealer[0]["args"]["bytes"] == s.cost().offline_bytes
    assert min(e["ts"] for e in rounds) == pytest.approx(dealer[0]["dur"], rel=1e-12)  # online after offline
    assert min(e["ts"] for e in compute) == pytest.approx(max(e["ts"] + e["dur"] for e in rounds), rel=1e-12)
    assert {e["tid"] for e in compute} == {3}
    assert sum(e["args"]["macs"] for e in compute) == sum(w.macs for w in s.ledger.work)
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names == {0: "party 0", 1: "party 1", 2: "dealer (offline)", 3: "compute (busiest party)"}


def test_offline_left_out_of_the_timeline_by_default():
    s = _softmax_session()
    trace = chrome_trace(s, "wan")
    assert all(e["cat"] in ("round", "wait") for e in validate(trace))
    assert trace["otherData"]["offline"] == {"bytes": s.cost().offline_bytes, "messages": Counter(
        m.phase for m in s.ledger.messages)[OFFLINE], "in_timeline": False}


def test_offline_only_ledger():
    ledger = Ledger(2)
    ledger.record("", "beaver_triple", 0, -1, DEALER, 0, 8000, OFFLINE, 1)
    trace = chrome_trace(ledger, "1gbit/1ms", include_offline=True)
    (only,) = validate(trace)
    assert only["ts"] == 0 and only["dur"] == pytest.approx(500 + 8, rel=1e-12)
    assert trace["otherData"]["total_s"] == estimate(ledger, "1gbit/1ms", include_offline=True).total_s


def test_write_trace_round_trips(tmp_path):
    s = _softmax_session()
    path = tmp_path / "softmax.json"
    trace = write_trace(s, path, "wan", per_round="rtt")
    loaded = json.loads(path.read_text())
    assert loaded == json.loads(json.dumps(trace))
    assert len(validate(loaded)) == 2 * s.cost().rounds


def test_rejects_bad_arguments():
    s = _softmax_session()
    with pytest.raises(ValueError):
        chrome_trace(s, "wan", since=-1)
    with pytest.raises(ValueError):
        chrome_trace(s, "fast")
    with pytest.raises(ValueError):
        chrome_trace(s, "wan", per_round="quarter")
    with pytest.raises(TypeError):
        chrome_trace(s, "wan", compute=1e9)
    with pytest.raises(TypeError):
        chrome_trace(object(), "wan")
