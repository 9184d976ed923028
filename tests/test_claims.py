"""The direction of the MPCache paper's cost claims (docs/results.md has the numbers), on the count backend."""
from __future__ import annotations

import json

import protocols as P
from mpcache.workload import measure
from mpsim.cli import main

LENGTHS = (1024, 2048, 4096, 8192)


def _ratio(seq, approx=None):
    full, mpc = (measure("mpcache-proxy", seq, name, approx=approx) for name in ("full", "mpcache"))
    return max(full.sent_bytes) / max(mpc.sent_bytes)


def test_mpcache_communicates_less_than_full_attention_at_every_length_and_more_so_as_it_grows():
    ratios = [_ratio(seq) for seq in LENGTHS]
    assert all(r > 1 for r in ratios)
    assert ratios == sorted(ratios)


def test_a_dearer_softmax_widens_the_gap():
    # MPCache's per-token overhead does not depend on the softmax; full attention's cost is mostly softmax
    puma = P.NonlinearConfig(softmax_method="puma")
    assert _ratio(2048, puma) > _ratio(2048)


def test_naive_dynamic_selection_costs_more_than_full_attention():
    full, naive = (measure("mpcache-proxy", 1024, name) for name in ("full", "naive-dynamic"))
    assert max(naive.sent_bytes) > max(full.sent_bytes)


def test_decode_softmax_flag_and_network_latency(capsys):
    assert main(["decode", "--model", "mpcache-proxy", "--seq", "1024", "--policy", "full", "--softmax", "puma",
                 "--compute", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["policies"][0]
    assert entry["config"]["approx"]["softmax_method"] == "puma"
    for prof in ("lan", "wan"):
        assert 0 < entry["network_latency_s"][prof] < entry["latency_s"][prof]  # the compute term adds time


def test_quality_without_the_eval_extra_or_with_bad_budgets_fails_cleanly(capsys):
    from mpcache.eval.model import missing

    assert main(["quality", "--budgets", "0,2"]) == 2
    assert "bad --budgets" in capsys.readouterr().err
    if missing() is not None:
        assert main(["quality", "--windows", "1"]) == 2
        assert "pip install" in capsys.readouterr().err
