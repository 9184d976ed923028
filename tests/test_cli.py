"""Every `mpsim` command through its entry point, with assertions on what it prints."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from mpsim.cli import main


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_op_prints_the_breakdown_with_latency_per_profile(capsys):
    code, out, _ = run(["op", "max", "--shape", "4x16", "--net", "lan,wan"], capsys)
    assert code == 0
    # 4 tournament levels of (MSB: 7 rounds + select: 1 round)
    assert "rounds 32" in out and "msb" in out and "select" in out
    assert "lan" in out and "wan" in out and "dominant" in out


def test_op_json_is_a_report_with_exact_numbers(capsys):
    code, out, _ = run(["op", "eqz", "--shape", "3x5", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["schema_version"] == 1
    total = report["totals"]
    assert total["rounds"] == 7
    # eqz: (N-1) n (K + 2(K-1)) bits = 15 * 190 bits per party
    assert total["sent_bytes"] == [15 * 190 / 8] * 2
    assert report["tree"]["children"][0]["path"] == "eqz"
    assert report["provenance"]["config"]["parties"] == 2 and report["provenance"]["extra"]["op"] == "eqz"


def test_op_csv_has_a_header_and_one_row_per_scope(capsys):
    code, out, _ = run(["op", "relu", "--shape", "8", "--csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    scopes = [r["path"] for r in rows]
    # the op's scope holds the protocol's own (registry) scope "relu", which holds its parts
    assert "relu/msb" in scopes and "relu/bit_select" in scopes


def test_save_and_compare_reports_with_ratios(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run(["op", "onehot", "--shape", "4x5", "--n", "64", "--save", str(a)], capsys)[0] == 0
    assert run(["op", "onehot_equality", "--shape", "4x5", "--n", "64", "--save", str(b)], capsys)[0] == 0
    code, out, _ = run(["compare", str(a), str(b)], capsys)
    assert code == 0
    assert "ratios against onehot 4x5 n=64" in out and "onehot_equality" in out and "8.00x" in out  # 8 rounds vs 1
    code, out, _ = run(["compare", str(a), str(b), "--json"], capsys)
    data = json.loads(out)
    rotation, equality = data["runs"]
    assert rotation["ratio_vs_first"]["rounds"] == 1.0
    assert equality["ratio_vs_first"]["max_sent_bytes"] > 100  # 64 equality tests vs 6 bits per index


def test_sweep_json_and_csv(capsys):
    code, out, _ = run(["op", "max", "--shape", "2xN", "--sweep", "N=4,8,16", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert [p["N"] for p in result["points"]] == [4, 8, 16]
    assert [p["rounds"] for p in result["points"]] == [16, 24, 32]  # log2 N levels of 8 rounds
    assert all(p["latency_s"]["wan"] > p["latency_s"]["lan"] for p in result["points"])
    code, out, _ = run(["op", "max", "--shape", "2xN", "--sweep", "N=4,8", "--csv"], capsys)
    lines = out.strip().splitlines()
    assert lines[0].startswith("N,rounds") and len(lines) == 3


def test_sweep_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    code, out, _ = run(["op", "max", "--shape", "2xN", "--sweep", "N=4,8", "--plot", str(png)], capsys)
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(["op", "max", "--shape", "2xN", "--sweep", "N=4", "--plot", str(tmp_path / "x.png")], capsys)
    assert code == 2 and "mpsim[plot]" in err


def test_profiles_and_table_and_list(capsys):
    code, out, _ = run(["profiles", "--json"], capsys)
    names = {p["name"]: p for p in json.loads(out)["profiles"]}
    assert names["lan"]["bandwidth_bps"] == 3e9 and names["wan"]["rtt_s"] == 0.04
    code, out, _ = run(["op", "--list"], capsys)
    assert code == 0 and "topk" in out and "onehot" in out
    code, out, _ = run(["table"], capsys)
    assert code == 0 and "| `msb` |" in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["op", "nope"], "unknown operation"),
        (["op", "max", "--shape", "0x3"], "bad shape"),
        (["op", "max", "--sweep", "N="], "bad --sweep"),
        (["op", "max", "--shape", "4xN", "--sweep", "M=4"], "does not appear"),
        (["op", "max", "--net", "fast"], "BANDWIDTH/PING"),
        (["op", "matmul", "--shape", "4x4"], "MxKxN"),
        (["op", "onehot", "--shape", "4"], "--n"),
        (["compare", "/nonexistent.json"], "cannot read"),
        (["op", "max", "--parties", "0"], "positive integer"),
    ],
)
def test_bad_arguments_are_one_line_and_nonzero(argv, needle, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_console_script_is_installed_and_runs():
    exe = shutil.which("mpsim")
    cmd = [exe] if exe else [sys.executable, "-m", "mpsim.cli"]
    out = subprocess.run(cmd + ["profiles", "--csv"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("name,bandwidth_bps,rtt_s,source")


def test_decode_compares_policies_with_the_documented_json_schema(capsys):
    code, out, _ = run(["decode", "--model", "mpcache-proxy", "--seq", "512", "--policy", "full",
                        "--compare", "streaming", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    full, streaming = result["policies"]
    assert (full["name"], streaming["name"]) == ("full", "streaming")
    for entry in (full, streaming):
        assert set(entry) >= {"name", "rounds", "sent_bytes", "offline_bytes", "latency_s", "scopes"}
        assert set(entry["latency_s"]) == {"lan", "wan"} and len(entry["sent_bytes"]) == 2
    assert streaming["scopes"]["attention/softmax"]["sent_bytes"][0] < full["scopes"]["attention/softmax"]["sent_bytes"][0]
    code, out, _ = run(["decode", "--model", "mpcache-proxy", "--seq", "512", "--compare", "streaming"], capsys)
    assert code == 0 and "attention/softmax" in out and "full / streaming" in out


def test_sweep_over_sequence_lengths(tmp_path, capsys):
    code, out, _ = run(["sweep", "--model", "mpcache-proxy", "--seq", "256,1024", "--policy", "full", "--json"],
                       capsys)
    points = json.loads(out)["points"]
    assert [p["seq_len"] for p in points] == [256, 1024]
    assert points[1]["sent_bytes"][0] > points[0]["sent_bytes"][0]  # full attention grows with length
    code, _, err = run(["sweep", "--seq", "12,x"], capsys)
    assert code == 2 and "bad --seq" in err
    code, _, err = run(["decode", "--model", "gpt5"], capsys)
    assert code == 2 and "unknown model" in err
    pytest.importorskip("matplotlib")  # the PNG part needs the [plot] extra (CI installs it)
    png = tmp_path / "s.png"
    assert run(["sweep", "--model", "gpt2", "--seq", "128,256", "--plot", str(png)], capsys)[0] == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sweep_and_demo_take_a_scheme(capsys):
    """--scheme aby3: three parties by default, every party's bytes, the same workload in 3PC."""
    code, out, _ = run(["sweep", "--model", "mpcache-proxy", "--seq", "256", "--policy", "full,mpcache",
                        "--scheme", "aby3", "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["scheme"] == "aby3" and result["parties"] == 3
    full, ours = result["points"]
    assert len(full["sent_bytes"]) == 3 and max(ours["sent_bytes"]) < max(full["sent_bytes"])
    code, out, _ = run(["demo", "--seq", "1024", "--scheme", "aby3", "--json"], capsys)
    assert code == 0 and json.loads(out)["parties"] == 3
    code, _, err = run(["demo", "--block", "--scheme", "aby3"], capsys)
    assert code == 2 and "additive scheme" in err
    code, _, err = run(["sweep", "--seq", "256", "--scheme", "aby3", "--parties", "2"], capsys)
    assert code == 2 and "exactly 3 parties" in err


def test_demo_is_mpcache_vs_full_on_llama2(capsys):
    code, out, _ = run(["demo", "--seq", "1024", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["model"] == "llama2-7b" and result["seq_len"] == 1024
    full, mpcache = result["policies"]
    assert (full["name"], mpcache["name"]) == ("full", "mpcache")
    # the softmax over the selected tokens is far smaller than over the whole cache
    assert mpcache["scopes"]["attention/softmax"]["sent_bytes"][0] < full["scopes"]["attention/softmax"]["sent_bytes"][0]


def test_table_takes_json_and_csv_with_one_row_per_scheme_and_protocol(capsys):
    from protocols.registry import CELLS

    code, out, _ = run(["table", "--json"], capsys)
    rows = json.loads(out)["declarations"]
    assert code == 0 and {(r["scheme"], r["protocol"]) for r in rows} == set(CELLS)
    fss_msb = next(r for r in rows if (r["scheme"], r["protocol"]) == ("fss", "msb"))
    assert fss_msb["rounds"] == "1" and "to each party p" in fss_msb["offline"]
    code, out, _ = run(["table", "--csv"], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("scheme,protocol,rounds") and len(lines) == len(rows) + 1


def test_op_lists_and_runs_every_comparison_protocol(capsys):
    code, out, _ = run(["op", "--list"], capsys)
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    for name in ("lt", "gt", "le", "ge", "eq", "ltz", "eqz", "sign", "maximum", "minimum", "relu", "abs"):
        assert name in listed, name
    for name in ("sign", "minimum", "gt", "ge", "le"):
        code, out, _ = run(["op", name, "--shape", "2x4", "--json"], capsys)
        assert code == 0 and json.loads(out)["totals"]["rounds"] >= 1, name


def test_decode_lists_the_correlations_and_its_json_prices_to_the_offline_bytes(capsys):
    from costmodel.preprocessing import dealer_bits

    code, out, _ = run(["decode", "--model", "mpcache-proxy", "--seq", "512", "--compare", "mpcache",
                        "--inventory"], capsys)
    assert code == 0 and "Correlations consumed by the step" in out and "reuse_triple" in out
    code, out, _ = run(["decode", "--model", "mpcache-proxy", "--seq", "512", "--compare", "mpcache",
                        "--scheme", "fss", "--json"], capsys)
    for policy in json.loads(out)["policies"]:
        inventory = {(i["kind"], tuple(i["dims"])): i["units"] for i in policy["inventory"]}
        assert any(kind == "gate_key" for kind, _ in inventory)
        assert sum(dealer_bits(inventory, 64, 2)) == policy["offline_bytes"] * 8
