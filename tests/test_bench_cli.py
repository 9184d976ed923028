"""The researcher's bench (commit c6c8301) through the command line: folded critical paths, labelled columns,
full width when piped, per-row rounds and latency, --by breakdowns, --ring/--seed/--save, compare on decode
JSON and its CSV, seeds with intervals, policy hyperparameters, --model-config, plots, quiet progress, traces,
and measure(by=, after_step=).

Every test names the finding it guards in its docstring. Count backend and small configurations only.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re

import pytest

from mpsim.cli import main

PROXY = ["--model", "mpcache-proxy"]
TINY_LLAMA = {"model_type": "llama", "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
              "hidden_size": 128, "intermediate_size": 256, "hidden_act": "silu", "_name_or_path": "tiny-llama"}
SMOLLM2_SHAPE = {"model_type": "llama", "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                 "hidden_size": 576, "intermediate_size": 1536, "hidden_act": "silu",
                 "_name_or_path": "HuggingFaceTB/SmolLM2-135M"}


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(argv, capsys):
    code, out, err = run(argv + ["--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def run_csv(argv, capsys):
    code, out, err = run(argv + ["--csv"], capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    return rows[0], rows[1:]


def write_config(tmp_path, cfg, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return str(path)


def table_cells(out: str, first: str, prefix: bool = False) -> list[str]:
    """The cells of the text table row whose first cell is ``first`` (or starts with it, ``prefix``: the step
    total row may carry a qualifier such as "(online)")."""
    for line in out.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            if cells[0] == first or (prefix and cells[0].startswith(first)):
                return cells
    raise AssertionError(f"no table row {first!r} in:\n{out}")


def assert_rows_add_up(rows, sent_bytes, offline_bytes):
    """Bytes add up exactly: per party (online) and for the dealer (offline)."""
    assert rows
    parties = len(sent_bytes)
    assert all(len(r["sent_bytes"]) == parties for r in rows)
    assert [sum(r["sent_bytes"][p] for r in rows) for p in range(parties)] == list(sent_bytes)
    assert sum(r["offline_bytes"] for r in rows) == offline_bytes


# -- 1. the folded critical path ---------------------------------------------------------------------------
def test_format_runs_folds_tandem_repeats():
    """Finding 1: the critical path was printed unrolled ("msb x7 -> topk_shuffle x1" fifteen times); a
    repeated run is folded into "[a x7 -> b x1] x15"."""
    from costmodel.critical import compress, format_runs

    assert format_runs([("a", 7), ("b", 1)] * 15) == "[a x7 -> b x1] x15"
    assert format_runs([("x", 1)] + [("a", 7), ("b", 1)] * 3 + [("y", 2)]) == "x x1 -> [a x7 -> b x1] x3 -> y x2"
    assert format_runs([("a", 1), ("a", 1), ("a", 1)]) == "(a x1) x3"
    assert compress(list("abab")) == [("repeat", ["a", "b"], 2)]


def test_format_runs_nests_groups_and_leaves_non_repeats_alone():
    """Finding 1: groups nest ("[[a -> b] x2 -> c] x3") and nothing is folded when nothing repeats."""
    from costmodel.critical import format_runs

    a, b, c = ("a", 1), ("b", 1), ("c", 2)
    assert format_runs([a, b, a, b, c] * 3) == "[[a x1 -> b x1] x2 -> c x2] x3"
    assert format_runs([("a", 7), ("b", 1), ("c", 2)]) == "a x7 -> b x1 -> c x2"
    assert format_runs([("", 3), ("a", 1)]) == "(root) x3 -> a x1"
    assert format_runs([]) == ""


def test_op_max_prints_its_critical_path_folded(capsys):
    """Finding 1: `mpsim op max --shape 4x64` showed six unrolled copies of "msb x7 -> bit_select x1"."""
    code, out, _ = run(["op", "max", "--shape", "4x64"], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if "critical path:" in line)
    assert "[max/msb x7 -> max/bit_select x1] x6" in line
    assert line.count("max/msb x7") == 1
    assert "that run of exchanges N times in a row" in line


# -- 2. the labelled % column --------------------------------------------------------------------------------
def test_op_tree_percentages_say_of_online_bytes(capsys):
    """Finding 2: the op tree's % column had no label; every percentage now says "of online bytes"."""
    code, out, _ = run(["op", "max", "--shape", "4x64"], capsys)
    assert code == 0
    percentages = re.findall(r"\d+\.\d%( of online bytes)?", out)
    assert len(percentages) >= 4  # the session, max, msb, bit_select
    assert all(label for label in percentages), out
    assert "100.0% of online bytes" in out


# -- 3. full width when piped --------------------------------------------------------------------------------
def test_piped_decode_table_is_not_wrapped_at_80_columns(capsys):
    """Finding 3: piped output wrapped at 80 columns; under capsys (not a terminal) the comparison table is
    wider than 80 and no row is split over two lines."""
    code, out, _ = run(["decode", *PROXY, "--seq", "256", "--policy", "full", "--compare", "mpcache"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) > 80
    rows = [line for line in lines if line.startswith("│")]
    assert rows
    for line in rows:  # a split row would leave a continuation line with an empty first cell
        cells = [c.strip() for c in line.strip("│").split("│")]
        assert cells[0], f"row split over lines: {line!r}"
        assert len(cells) == 1 + 2 * 4  # scope, then MB, rounds, lan, wan per policy
    assert any(line.startswith("│ attention/softmax ") for line in rows)


def test_width_option_caps_every_line(capsys):
    """Finding 3: `--width 100` caps every line of the text at 100 columns."""
    code, out, _ = run(["decode", *PROXY, "--seq", "256", "--policy", "full", "--compare", "mpcache",
                        "--width", "100"], capsys)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    code, out, _ = run(["op", "max", "--shape", "4x64", "--width", "100"], capsys)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100


# -- 4. per-row rounds and latency, and what "MB" means ------------------------------------------------------------
def test_decode_table_has_per_row_rounds_and_latency_and_says_busiest_party(capsys):
    """Finding 4: the decode table had per-scope MB only and "MB/party" was silently the maximum over
    parties: every row now has rounds and latency per profile, and the text says so."""
    argv = ["decode", *PROXY, "--seq", "256", "--policy", "full", "--compare", "mpcache"]
    data = run_json(argv, capsys)
    code, out, _ = run(argv, capsys)
    assert code == 0
    from mpsim.cli.common import _fmt_s

    words = " ".join(out.split())
    assert "busiest party" in words and "maximum over parties" in words
    for name in ("attention/softmax", "mlp", "norm"):
        cells = table_cells(out, name)
        for i, policy in enumerate(data["policies"]):
            row = policy["scopes"][name]
            mb, rounds, lan, wan = cells[1 + 4 * i:5 + 4 * i]
            assert mb == f"{max(row['sent_bytes']) / 1e6:,.2f}"
            assert rounds == f"{row['rounds']:,.0f}"
            assert (lan, wan) == (_fmt_s(row["latency_s"]["lan"]), _fmt_s(row["latency_s"]["wan"]))
    header = [line for line in out.splitlines() if line.startswith("┃")]
    assert sum(line.count("rounds") for line in header) == 2 and sum(line.count("wan") for line in header) == 2


# -- 5. --by layer | protocol | scope --------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["layer", "protocol", "scope"])
def test_op_by_rows_add_up_in_json_csv_and_text(by, capsys):
    """Finding 5 (op): for every grouping the rows' bytes per party and offline bytes add up exactly to the
    op's totals; the CSV has a header and one row per group; the text prints the groups."""
    argv = ["op", "max", "--shape", "4x64", "--by", by]
    data = run_json(argv, capsys)
    assert data["breakdown"]["by"] == by
    rows = data["breakdown"]["rows"]
    assert_rows_add_up(rows, data["totals"]["sent_bytes"], data["totals"]["offline_bytes"])
    groups = [r["group"] for r in rows]
    assert len(set(groups)) == len(groups)
    expected = {"layer": ["(outside layers)"], "protocol": ["msb", "bit_select"],
                "scope": ["max/msb", "max/bit_select"]}[by]
    assert groups == expected
    header, body = run_csv(argv, capsys)
    assert header[:4] == ["group", "rounds", "sent_bytes_p0", "sent_bytes_p1"] and "offline_bytes" in header
    assert [r[0] for r in body] == groups
    for row, line in zip(rows, body):
        cells = dict(zip(header, line))
        assert float(cells["sent_bytes_p0"]) == row["sent_bytes"][0]
        assert float(cells["offline_bytes"]) == row["offline_bytes"]
        assert int(cells["rounds"]) == row["rounds"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and f"by {by}" in out
    assert all(table_cells(out, g)[1] == f"{r['rounds']:,}" for g, r in zip(groups, rows))


@pytest.mark.parametrize("by", ["layer", "protocol", "scope"])
def test_decode_by_rows_add_up_to_the_step_in_json_csv_and_text(by, capsys):
    """Finding 5 (decode): the step's rows add up exactly (bytes per party, offline bytes) for both
    policies; by protocol names msb and beaver_mul; the CSV has one row per group plus the step total."""
    argv = ["decode", *PROXY, "--seq", "256", "--policy", "full", "--compare", "mpcache", "--by", by]
    data = run_json(argv, capsys)
    assert data["by"] == by
    for policy in data["policies"]:
        assert policy["breakdown"]["by"] == by
        assert_rows_add_up(policy["breakdown"]["rows"], policy["sent_bytes"], policy["offline_bytes"])
    groups = {p["label"]: [r["group"] for r in p["breakdown"]["rows"]] for p in data["policies"]}
    if by == "layer":
        assert groups == {"full": ["layer0"], "mpcache": ["layer0"]}
    if by == "protocol":
        assert {"msb", "beaver_mul"} <= set(groups["full"]) and {"msb", "beaver_mul"} <= set(groups["mpcache"])
    if by == "scope":
        assert all(g.startswith("step/layer0/") for g in groups["mpcache"])
    header, body = run_csv(argv, capsys)
    assert header[:5] == ["policy", "row", "rounds", "max_sent_bytes", "offline_bytes"]
    for policy in data["policies"]:
        mine = [line for line in body if line[0] == policy["label"]]
        names = [line[1] for line in mine]
        assert names[:len(groups[policy["label"]])] == groups[policy["label"]]
        assert names.count("step total") == 1
        assert all(n in groups[policy["label"]] or n == "step total" or n.startswith("offline (") for n in names)
        by_name = {line[1]: line for line in mine}
        for r in policy["breakdown"]["rows"]:
            assert float(by_name[r["group"]][3]) == max(r["sent_bytes"])
            assert float(by_name[r["group"]][4]) == r["offline_bytes"]
        total = by_name["step total"]
        assert float(total[3]) == max(policy["sent_bytes"]) and float(total[4]) == policy["offline_bytes"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    for group in groups["mpcache"]:
        assert table_cells(out, group)


def test_decode_by_layer_on_a_model_config_lists_every_layer_in_order(tmp_path, capsys):
    """Finding 5: by layer on a --model-config with 3 layers gives layer0, layer1, layer2 in order, adding
    up to the step."""
    cfg = write_config(tmp_path, TINY_LLAMA)
    data = run_json(["decode", "--model-config", cfg, "--seq", "256", "--by", "layer"], capsys)
    policy = data["policies"][0]
    assert [r["group"] for r in policy["breakdown"]["rows"]] == ["layer0", "layer1", "layer2"]
    assert_rows_add_up(policy["breakdown"]["rows"], policy["sent_bytes"], policy["offline_bytes"])


@pytest.mark.parametrize("by", ["layer", "protocol", "scope"])
def test_sweep_by_rows_add_up_per_point_in_json_csv_and_text(by, capsys):
    """Finding 5 (mpsim sweep): every point's rows add up to the point; the CSV has one row per group and a
    step total per point."""
    argv = ["sweep", *PROXY, "--seq", "256,512", "--policy", "full", "--by", by]
    data = run_json(argv, capsys)
    assert [p["seq_len"] for p in data["points"]] == [256, 512]
    for point in data["points"]:
        assert point["breakdown"]["by"] == by
        assert_rows_add_up(point["breakdown"]["rows"], point["sent_bytes"], point["offline_bytes"])
        if by == "layer":
            assert [r["group"] for r in point["breakdown"]["rows"]] == ["layer0"]
        if by == "protocol":
            assert {"msb", "beaver_mul"} <= {r["group"] for r in point["breakdown"]["rows"]}
    header, body = run_csv(argv, capsys)
    assert header[:3] == ["seq_len", "policy", "row"]
    col = {name: i for i, name in enumerate(header)}
    for point in data["points"]:
        mine = [line for line in body if int(line[0]) == point["seq_len"]]
        groups = [r["group"] for r in point["breakdown"]["rows"]]
        assert [line[2] for line in mine] == groups + ["step total"]
        for r, line in zip(point["breakdown"]["rows"], mine):
            assert float(line[col["max_sent_bytes"]]) == max(r["sent_bytes"])
            assert float(line[col["offline_bytes"]]) == r["offline_bytes"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and by in out and "step total" in out


@pytest.mark.parametrize("by", ["layer", "protocol", "scope"])
def test_op_sweep_by_rows_add_up_per_point(by, capsys):
    """Finding 5 (mpsim op --sweep): every point's rows add up to the point; the CSV has one row per group
    and a total per point."""
    argv = ["op", "max", "--shape", "4xN", "--sweep", "N=32,64", "--by", by]
    data = run_json(argv, capsys)
    for point in data["points"]:
        assert point["breakdown"]["by"] == by
        assert_rows_add_up(point["breakdown"]["rows"], point["sent_bytes"], point["offline_bytes"])
    header, body = run_csv(argv, capsys)
    assert header[:2] == ["N", "row"]
    for point in data["points"]:
        groups = [r["group"] for r in point["breakdown"]["rows"]]
        assert [line[1] for line in body if int(line[0]) == point["N"]] == groups + ["total"]


# -- 6. --ring, --seed, --save on decode and sweep; compare reads them -------------------------------------------------
def test_decode_ring_and_seed_are_recorded_and_ring_changes_the_bytes(capsys):
    """Finding 6: decode had no --ring/--seed: --ring 32 shows as ring_bits 32 and changes the bytes;
    --seed is recorded."""
    base = run_json(["decode", *PROXY, "--seq", "256"], capsys)
    small = run_json(["decode", *PROXY, "--seq", "256", "--ring", "32", "--seed", "7"], capsys)
    assert (base["ring_bits"], small["ring_bits"]) == (64, 32)
    assert (base["seed"], small["seed"]) == (0, 7)
    config = small["policies"][0]["config"]
    assert config["ring_bits"] == 32 and config["seed"] == 7
    assert max(small["policies"][0]["sent_bytes"]) < max(base["policies"][0]["sent_bytes"])


def test_sweep_ring_and_seed_are_recorded(capsys):
    """Finding 6: sweep had no --ring/--seed either."""
    base = run_json(["sweep", *PROXY, "--seq", "256"], capsys)
    small = run_json(["sweep", *PROXY, "--seq", "256", "--ring", "32", "--seed", "3"], capsys)
    assert (small["ring_bits"], small["seed"]) == (32, 3)
    assert small["points"][0]["sent_bytes"] != base["points"][0]["sent_bytes"]


@pytest.mark.parametrize("command", ["decode", "sweep"])
def test_save_writes_the_json_and_compare_reads_it(command, tmp_path, capsys):
    """Finding 6: --save writes the JSON --json prints, and `mpsim compare` reads it (it failed on a decode
    JSON with "unsupported report schema_version None")."""
    saved = tmp_path / f"{command}.json"
    extra = ["--compare", "mpcache"] if command == "decode" else ["--seq", "256,512"]
    argv = [command, *PROXY, "--policy", "full", *extra] + (["--seq", "256"] if command == "decode" else [])
    printed = run_json(argv + ["--save", str(saved)], capsys)
    on_disk = json.loads(saved.read_text())
    assert on_disk == printed  # every key, every number
    assert on_disk["schema"] == f"mpsim.{command}" and on_disk["schema_version"] == 1
    code, out, err = run(["compare", str(saved)], capsys)
    assert code == 0, err
    assert "schema_version" not in err and "full (mpcache-proxy, 256 tokens)" in out
    comparison = run_json(["compare", str(saved)], capsys)
    entries = printed.get("policies") or printed["points"]
    assert [r["rounds"] for r in comparison["runs"]] == [e["rounds"] for e in entries]
    assert [r["max_sent_bytes"] for r in comparison["runs"]] == [max(e["sent_bytes"]) for e in entries]
    assert [r["seconds"] for r in comparison["runs"]] == [e["latency_s"] for e in entries]


def test_compare_reads_an_op_sweep_save(tmp_path, capsys):
    """Finding 6, same symptom on `mpsim op --sweep ... --save`: compare's help and its error message say it
    reads "mpsim op/decode/sweep ... --save FILE", but the op sweep's JSON carries no schema, so compare
    refuses it with "unsupported report schema_version None"."""
    saved = tmp_path / "op_sweep.json"
    code, _, err = run(["op", "max", "--shape", "4xN", "--sweep", "N=32,64", "--save", str(saved)], capsys)
    assert code == 0, err
    code, out, err = run(["compare", str(saved)], capsys)
    assert "schema_version None" not in err
    assert code == 0, err


# -- 7. compare --csv: one table --------------------------------------------------------------------------------
def test_compare_csv_is_one_table_matching_the_json(tmp_path, capsys):
    """Finding 7: `compare --csv` printed two trees; it prints one table (metric, a column per run, ratio
    columns after every run but the first) whose values are the JSON comparison's."""
    decode_file, op_file = tmp_path / "decode.json", tmp_path / "op.json"
    assert run(["decode", *PROXY, "--seq", "256", "--compare", "mpcache", "--save", str(decode_file)],
               capsys)[0] == 0
    assert run(["op", "max", "--shape", "4x64", "--save", str(op_file)], capsys)[0] == 0
    files = [str(decode_file), str(op_file)]
    data = run_json(["compare", *files], capsys)
    runs = data["runs"]
    names = [r["name"] for r in runs]
    assert names == ["full (mpcache-proxy, 256 tokens)", "mpcache (mpcache-proxy, 256 tokens)", "max 4x64"]
    code, out, _ = run(["compare", *files, "--csv"], capsys)
    assert code == 0
    table = list(csv.reader(io.StringIO(out)))
    header, body = table[0], table[1:]
    assert header == ["metric", names[0], names[1], f"{names[1]} / {names[0]}", names[2], f"{names[2]} / {names[0]}"]
    assert sum(1 for line in table if line and line[0] == "metric") == 1  # one table, not one per file
    assert all(len(line) == len(header) for line in body)
    keys = {"rounds": "rounds", "bytes/party (max)": "max_sent_bytes", "offline bytes": "offline_bytes"}
    assert [line[0] for line in body] == list(keys) + ["time on lan", "time on wan"]
    assert runs[0]["ratio_vs_first"] == {"rounds": 1.0, "max_sent_bytes": 1.0, "offline_bytes": 1.0,
                                         "seconds": {"lan": 1.0, "wan": 1.0}}
    for line in body:
        if line[0] in keys:
            values = [r[keys[line[0]]] for r in runs]
            ratios = [r["ratio_vs_first"][keys[line[0]]] for r in runs]
        else:
            profile = line[0].removeprefix("time on ")
            values = [r["seconds"][profile] for r in runs]
            ratios = [r["ratio_vs_first"]["seconds"][profile] for r in runs]
        assert [float(line[1]), float(line[2]), float(line[4])] == values
        assert [float(line[3]), float(line[5])] == ratios[1:]


# -- 8. seeds and intervals ------------------------------------------------------------------------------------
def test_t_quantile_matches_the_published_table():
    """Finding 8: the intervals use Student's t; t_{0.975, dof} agrees with published tables."""
    from costmodel.stats import interval, t_quantile

    for dof, table in ((1, 12.706), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert round(t_quantile(0.975, dof), 3) == table
    single = interval([5.0])
    assert single == {"n": 1, "mean": 5.0, "lo": 5.0, "hi": 5.0, "values": [5.0]}
    five = interval([1, 2, 3, 4, 5])  # sd sqrt(2.5): half-width 2.776 * 1.5811 / sqrt(5)
    assert five["mean"] == 3.0 and round(five["lo"], 3) == 1.037 and round(five["hi"], 3) == 4.963
    with pytest.raises(ValueError):
        interval([])


def test_interval_of_identical_values_is_degenerate():
    """Finding 8 (bug): interval's docstring says lo = hi = mean for identical values, but the float mean of
    three equal latencies is not the latency (0.1 * 3 / 3 = 0.10000000000000002), so sd > 0 and lo < hi."""
    from costmodel.stats import interval

    for values in ([0.1] * 3, [0.025850534666666668] * 3, [0.1] * 10):
        st = interval(values)
        assert st["lo"] == st["hi"] == st["mean"] == values[0], st


def test_op_sweep_seeds_give_intervals_whose_mean_is_the_single_runs_mean(capsys):
    """Finding 8: a randomized protocol (shuffle top-k) over --seeds 4: lo <= mean <= hi, n == 4, and the
    mean is the mean of the four single-seed runs --seed 0..3."""
    argv = ["op", "topk", "--shape", "1xN", "--k", "8", "--method", "shuffle", "--sweep", "N=256,512"]
    data = run_json(argv + ["--seeds", "4"], capsys)
    singles = [run_json(argv + ["--seed", str(seed)], capsys) for seed in range(4)]
    assert data["seeds"] == 4
    for i, point in enumerate(data["points"]):
        st = point["seed_stats"]["rounds"]
        rounds = [s["points"][i]["rounds"] for s in singles]
        assert st["n"] == 4 and st["values"] == rounds
        assert st["lo"] <= st["mean"] <= st["hi"] and st["lo"] < st["hi"]  # the permutations differ
        assert math.isclose(st["mean"], sum(rounds) / 4, rel_tol=1e-12)
        assert math.isclose(point["rounds"], sum(rounds) / 4, rel_tol=1e-12)
        for profile, lat in point["seed_stats"]["latency_s"].items():
            assert lat["lo"] <= lat["mean"] <= lat["hi"]
            assert math.isclose(lat["mean"], sum(s["points"][i]["latency_s"][profile] for s in singles) / 4,
                                rel_tol=1e-12)


def test_op_sweep_seeds_of_a_deterministic_op_collapse(capsys):
    """Finding 8: a deterministic op (max) over seeds has lo == hi == mean."""
    data = run_json(["op", "max", "--shape", "4xN", "--sweep", "N=32,64", "--seeds", "4"], capsys)
    for point in data["points"]:
        for key in ("rounds", "max_sent_bytes"):
            st = point["seed_stats"][key]
            assert st["n"] == 4 and st["lo"] == st["hi"] == st["mean"]
        assert point["seed_stats"]["rounds"]["mean"] == point["rounds"]


def test_decode_seeds_of_a_deterministic_policy_collapse(capsys):
    """Finding 8: decode --seeds 2 with the deterministic full policy: every interval is degenerate and the
    table prints plain numbers, no [lo, hi]."""
    argv = ["decode", *PROXY, "--seq", "256", "--policy", "full", "--seeds", "2"]
    data = run_json(argv, capsys)
    policy = data["policies"][0]
    st = policy["seed_stats"]
    assert st["seeds"] == [0, 1] and data["seeds"] == 2
    for key in ("rounds", "max_sent_bytes", "offline_bytes"):
        assert st[key]["n"] == 2 and st[key]["lo"] == st[key]["hi"] == st[key]["mean"]
    for profile, lat in st["latency_s"].items():
        assert lat["lo"] == lat["hi"] == lat["mean"] == policy["latency_s"][profile]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "mean of 2 seeds" in out
    assert not any("[" in cell for cell in table_cells(out, "step total", prefix=True))


def test_decode_three_seeds_of_a_deterministic_policy_print_no_interval(capsys):
    """Finding 8 (bug, seen by a user): with --seeds 3 the full policy's step total prints
    "25.85 ms [25.85 ms, 25.85 ms]" on lan, a spurious interval from costmodel.stats.interval's float mean."""
    argv = ["decode", *PROXY, "--seq", "256", "--policy", "full", "--seeds", "3"]
    data = run_json(argv, capsys)
    policy = data["policies"][0]
    for profile, lat in policy["seed_stats"]["latency_s"].items():
        assert lat["lo"] == lat["hi"] == lat["mean"] == policy["latency_s"][profile], (profile, lat)
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert not any("[" in cell for cell in table_cells(out, "step total", prefix=True)), out


# -- 9. policy hyperparameters --------------------------------------------------------------------------------
def test_split_specs_and_policy_from_spec_parse_every_kind_of_value():
    """Finding 9: policies with hyperparameters (several policies, tuples, bools, none, optional ints)."""
    from mpcache.policies import policy_from_spec, split_specs

    assert split_specs("full,mpcache:keep_ratio=0.3,cluster_sizes=16/8,h2o:heavy=64,recent=32, streaming") == [
        "full", "mpcache:keep_ratio=0.3,cluster_sizes=16/8", "h2o:heavy=64,recent=32", "streaming"]
    assert split_specs("mpcache:keep_ratio=0.3,full") == ["mpcache:keep_ratio=0.3", "full"]
    assert split_specs(" , ") == []
    for bad in ("keep_ratio=0.3", "full,keep_ratio=0.3"):
        with pytest.raises(ValueError, match="follows no policy"):
            split_specs(bad)
    p = policy_from_spec("mpcache:keep_ratio=0.2,cluster_sizes=16/8,ratios=0.5/0.25,static_scale=off,"
                         "static_window=none,share_until=12")
    assert p.keep_ratio == 0.2 and p.cluster_sizes == (16, 8) and p.ratios == (0.5, 0.25)
    assert all(isinstance(v, int) for v in p.cluster_sizes)
    assert p.static_scale is False and p.static_window is None
    assert p.share_until == 12 and isinstance(p.share_until, int)  # an optional int stays an int
    assert policy_from_spec("mpcache:static_window=0.5").static_window == 0.5
    assert policy_from_spec("mpcache:static_scale=yes").static_scale is True
    assert policy_from_spec("h2o:heavy=64,recent=32").heavy == 64
    assert policy_from_spec("full").name == "full"


def test_decode_policy_hyperparameters_show_in_the_json_and_labels(capsys):
    """Finding 9: `--policy mpcache:keep_ratio=0.2,cluster_sizes=16/8` reaches the policy: config.policy
    shows the values and the label spells them as --policy does."""
    spec = "mpcache:keep_ratio=0.2,cluster_sizes=16/8"
    data = run_json(["decode", *PROXY, "--seq", "256", "--policy", spec, "--compare", "mpcache"], capsys)
    tuned, default = data["policies"]
    assert tuned["config"]["policy"]["keep_ratio"] == 0.2 and tuned["config"]["policy"]["cluster_sizes"] == [16, 8]
    assert default["config"]["policy"]["keep_ratio"] == 0.3
    assert (tuned["label"], default["label"]) == (spec, "mpcache")
    assert tuned["sent_bytes"] != default["sent_bytes"]
    sweep = run_json(["sweep", *PROXY, "--seq", "256", "--policy", f"full,{spec}"], capsys)
    assert [p["policy"] for p in sweep["points"]] == ["full", spec]


def test_decode_csv_quotes_a_policy_label_with_commas(capsys):
    """Finding 9 (bug): decode --csv writes the policy label unquoted, so
    "mpcache:keep_ratio=0.2,cluster_sizes=16/8" spills into the next column and every row has one field more
    than the header (sweep --csv quotes it)."""
    spec = "mpcache:keep_ratio=0.2,cluster_sizes=16/8"
    header, body = run_csv(["decode", *PROXY, "--seq", "256", "--policy", spec], capsys)
    assert all(len(line) == len(header) for line in body), (header, body[0])
    assert {line[0] for line in body} == {spec}
    header, body = run_csv(["sweep", *PROXY, "--seq", "256", "--policy", spec], capsys)
    assert all(len(line) == len(header) for line in body) and body[0][1] == spec


@pytest.mark.parametrize("spec,needle", [("mpcache:bogus=1", "bogus"), ("mpcache:keep_ratio", "keep_ratio"),
                                         ("nosuch", "unknown policy")])
def test_unknown_policy_parameters_are_one_line_errors_listing_the_fields(spec, needle, capsys):
    """Finding 9: an unknown field is exit 2 with one line that lists the policy's fields."""
    code, out, err = run(["decode", *PROXY, "--seq", "256", "--policy", spec], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and needle in err
    if spec.startswith("mpcache"):
        assert "keep_ratio=0.3" in err and "cluster_sizes=(32, 16)" in err


@pytest.mark.parametrize("spec", ["mpcache:keep_ratio=abc", "mpcache:cluster_sizes=16/x",
                                  "mpcache:static_scale=maybe", "mpcache:static_window=abc"])
def test_bad_policy_values_are_one_line_errors(spec, capsys):
    """Finding 9: a bad value is exit 2 with one line naming the field and the value."""
    code, out, err = run(["decode", *PROXY, "--seq", "256", "--policy", spec], capsys)
    field, value = spec.split(":")[1].split("=")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert field in err and repr(value.split("/")[-1]) in err


def test_bad_policy_value_error_lists_the_policys_fields(capsys):
    """Finding 9 (bug): policy_from_spec's docstring says "unknown fields and bad values are one-line errors
    that list the policy's fields", but a bad value says only "policy mpcache: keep_ratio='abc': expected a
    number", without the fields."""
    code, _, err = run(["decode", *PROXY, "--seq", "256", "--policy", "mpcache:keep_ratio=abc"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cluster_sizes" in err and "threshold" in err, err


# -- 10. --model-config ------------------------------------------------------------------------------------------
def test_model_config_with_smollm2s_shape_gives_smollm2s_numbers(tmp_path, capsys):
    """Finding 10: --model-config runs decode from a LLaMA-style config.json, and smollm2's shape gives the
    numbers of --model smollm2."""
    cfg = write_config(tmp_path, SMOLLM2_SHAPE)
    mine = run_json(["decode", "--model-config", cfg, "--seq", "256"], capsys)
    builtin = run_json(["decode", "--model", "smollm2", "--seq", "256"], capsys)
    assert mine["model"] == "HuggingFaceTB/SmolLM2-135M" and mine["model_config"]["layers"] == 30
    shape = ("layers", "heads", "head_dim", "hidden", "mlp", "activation", "norm", "kv_heads", "gated_mlp")
    assert {k: mine["model_config"][k] for k in shape} == {k: builtin["model_config"][k] for k in shape}
    a, b = mine["policies"][0], builtin["policies"][0]
    for key in ("rounds", "sent_bytes", "offline_bytes", "latency_s", "scopes", "setup", "inventory"):
        assert a[key] == b[key], key


def test_model_config_errors_are_one_line(tmp_path, capsys):
    """Finding 10: a config that cannot be priced is refused in one line (exit 2)."""
    cfg = write_config(tmp_path, dict(TINY_LLAMA, model_type="qwen3"))
    code, _, err = run(["decode", "--model-config", cfg, "--seq", "256"], capsys)
    assert code == 2 and "qwen3" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["decode", "--model-config", str(tmp_path / "missing.json"), "--seq", "256"], capsys)
    assert code == 2 and "no such file" in err


# -- 11. plots ----------------------------------------------------------------------------------------------------
def test_op_plot_without_sweep_is_refused(tmp_path, capsys):
    """Finding 11: --plot without --sweep is an error on op (nothing is drawn or written)."""
    target = tmp_path / "x.png"
    code, out, err = run(["op", "max", "--shape", "4x64", "--plot", str(target)], capsys)
    assert code == 2 and "--sweep" in err and len(err.strip().splitlines()) == 1
    assert not target.exists()


@pytest.mark.parametrize("ext,magic", [("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF"), ("svg", None)])
def test_sweep_plot_writes_the_format_its_name_asks_for(ext, magic, tmp_path, capsys):
    """Finding 11: sweep --plot writes PNG, PDF or SVG by extension; the SVG keeps its text as text
    (svg.fonttype none) with the configuration line and the axis' unit."""
    pytest.importorskip("matplotlib")
    target = tmp_path / f"curve.{ext}"
    code, out, err = run(["sweep", *PROXY, "--seq", "256,1024", "--policy", "full", "--plot", str(target)], capsys)
    assert code == 0, err
    assert "plot written to" in out
    data = target.read_bytes()
    if magic is not None:
        assert data.startswith(magic)
    else:
        text = data.decode()
        assert "<svg" in text
        # as <text> elements (glyph paths would keep the words in comments only)
        config = svg_texts(text, "2 parties")
        assert config and "count backend" in config[0] and "K=64" in config[0]
        assert svg_texts(text, "estimated latency (") and svg_texts(text, "tokens in the KV cache")


def test_op_sweep_svg_carries_the_configuration(tmp_path, capsys):
    """Finding 11: an op sweep's SVG has the configuration line and the unit label too."""
    pytest.importorskip("matplotlib")
    target = tmp_path / "op.svg"
    code, _, err = run(["op", "max", "--shape", "4xN", "--sweep", "N=16,64", "--plot", str(target)], capsys)
    assert code == 0, err
    text = target.read_text()
    assert "<svg" in text and svg_texts(text, "estimated latency (")
    assert any("count backend" in t for t in svg_texts(text, "2 parties"))


def svg_texts(svg: str, needle: str) -> list[str]:
    """The SVG's <text> elements that contain ``needle``."""
    return [t for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg) if needle in t]


# -- 12. progress only on a terminal ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["decode", *PROXY, "--seq", "256", "--compare", "mpcache"],
                                  ["sweep", *PROXY, "--seq", "256,512"],
                                  ["decode", *PROXY, "--seq", "256", "--json"],
                                  ["sweep", *PROXY, "--seq", "256", "--csv"]])
def test_decode_and_sweep_write_nothing_to_stderr_when_piped(argv, capsys):
    """Finding 12: progress bars are for a terminal; with stderr not a TTY (capsys) nothing is written."""
    code, out, err = run(argv, capsys)
    assert code == 0 and out and err == ""


# -- 13. traces -----------------------------------------------------------------------------------------------
def _slices(trace, pid=None):
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and (pid is None or e["pid"] == pid)]


def test_op_trace_ends_at_the_reports_latency(tmp_path, capsys):
    """Finding 13: op --trace writes trace JSON with X slices for every party, the last ending at the
    latency model's total on the first --net profile."""
    path = tmp_path / "op_trace.json"
    data = run_json(["op", "max", "--shape", "4x64", "--trace", str(path)], capsys)
    trace = json.loads(path.read_text())
    slices = _slices(trace)
    assert {e["tid"] for e in slices} == {0, 1}
    assert all(e["dur"] >= 0 and {"name", "ts", "pid", "args"} <= set(e) for e in slices)
    per_party = [len([e for e in slices if e["tid"] == p]) for p in (0, 1)]
    assert per_party == [data["totals"]["rounds"]] * 2
    end = max(e["ts"] + e["dur"] for e in slices) / 1e6
    assert math.isclose(end, data["totals"]["estimates"]["lan"]["total_s"], rel_tol=1e-9)


def test_decode_trace_has_a_process_per_policy_ending_at_its_latency(tmp_path, capsys):
    """Finding 13: decode --trace with two policies gives two processes, each with a track per party and
    its last slice ending at that policy's latency."""
    path = tmp_path / "decode_trace.json"
    data = run_json(["decode", *PROXY, "--seq", "256", "--policy", "full", "--compare", "mpcache",
                     "--trace", str(path)], capsys)
    trace = json.loads(path.read_text())
    assert {e["pid"] for e in _slices(trace)} == {0, 1}
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert names[0].startswith("full") and names[1].startswith("mpcache")
    for pid, policy in enumerate(data["policies"]):
        slices = _slices(trace, pid)
        assert {e["tid"] for e in slices} == {0, 1}
        assert len(slices) == 2 * policy["rounds"]
        end = max(e["ts"] + e["dur"] for e in slices) / 1e6
        assert math.isclose(end, policy["latency_s"]["lan"], rel_tol=1e-9)


def test_decode_trace_net_picks_the_profile(tmp_path, capsys):
    """Finding 13: --trace-net wan prices the trace on wan: it ends at the step's wan latency."""
    path = tmp_path / "wan_trace.json"
    data = run_json(["decode", *PROXY, "--seq", "256", "--trace", str(path), "--trace-net", "wan"], capsys)
    end = max(e["ts"] + e["dur"] for e in _slices(json.loads(path.read_text()))) / 1e6
    assert math.isclose(end, data["policies"][0]["latency_s"]["wan"], rel_tol=1e-9)


# -- 14. measure(by=, after_step=) ------------------------------------------------------------------------------
def test_measure_by_protocol_rows_add_up_and_after_step_sees_the_step():
    """Finding 14: measure(..., by="protocol") rows' bytes add up to the summary; after_step is called once
    with the session and the ledger mark where the reported step began."""
    import mpsim
    from mpcache.workload import measure

    calls = []
    summary = measure("mpcache-proxy", 256, "mpcache", by="protocol", steps=2,
                      after_step=lambda session, mark: calls.append((session, mark, session.cost(since=mark))))
    assert summary.breakdown["by"] == "protocol"
    rows = summary.breakdown["rows"]
    assert {"msb", "beaver_mul"} <= {r["group"] for r in rows}
    assert_rows_add_up(rows, summary.sent_bytes, summary.offline_bytes)
    assert len(calls) == 1
    session, mark, cost = calls[0]
    assert isinstance(session, mpsim.Session) and isinstance(mark, int) and 0 < mark < len(session.ledger.messages)
    assert cost.rounds == summary.rounds and list(cost.sent) == summary.sent_bytes
    assert cost.offline_bytes == summary.offline_bytes
    plain = measure("mpcache-proxy", 256, "full")
    assert plain.breakdown is None and "breakdown" not in plain.as_dict()
