"""The private prefill (mpcache.prefill), the priced answer (mpcache.answer) and `mpsim generate`."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mpsim
from mpcache.answer import Answer, Segment, answer, break_even
from mpcache.decode import LayerWeights
from mpcache.models import ModelConfig, get_model
from mpcache.prefill import REUSED_SCOPE, prefill_layer, private_prefill, reusable_policy, window_queries
from mpcache.policies import get_policy
from mpsim.cli import main

TINY = ModelConfig("tiny", 1, 4, 4, 8, 16, "silu", "rmsnorm", kv_heads=2, gated_mlp=True)
F = 16
ULP = 2.0**-F


def _tiny_layer(T=5):
    s = mpsim.Session(parties=2, backend="ideal", seed=3)
    rng = np.random.default_rng(7)
    m = TINY
    w = LayerWeights(norm1=s.input(np.ones(m.hidden)), norm2=s.input(np.ones(m.hidden)),
                     w_qkv=s.input(rng.normal(scale=0.3, size=(m.hidden, m.q_width + 2 * m.kv_width))),
                     w_out=s.input(rng.normal(scale=0.3, size=(m.q_width, m.hidden))),
                     w_up=s.input(rng.normal(scale=0.3, size=(m.hidden, m.mlp))),
                     w_down=s.input(rng.normal(scale=0.3, size=(m.mlp, m.hidden))),
                     w_gate=s.input(rng.normal(scale=0.3, size=(m.hidden, m.mlp))))
    x = s.input(rng.normal(size=(T, m.hidden)))
    probe = {}
    out = prefill_layer(s, m, w, x, reuse=False, probe=probe)
    return s, w, out, probe


def test_prefill_layer_layout_and_causal_mask():
    s, w, (x, keys, values, q), probe = _tiny_layer()
    m, T = TINY, 5
    hkv, group, d = m.n_kv_heads, m.heads // m.n_kv_heads, m.head_dim
    h, W = s.reveal(probe["h"]), s.reveal(w.w_qkv)
    # one product and one truncation (floor): within 1 ulp of the float product of the revealed operands
    qkv = h @ W
    want_k = qkv[:, m.q_width:m.q_width + m.kv_width].reshape(T, hkv, d).transpose(1, 0, 2)
    want_q = qkv[:, :m.q_width].reshape(T, hkv, group, d).transpose(1, 2, 0, 3)
    assert np.all(np.abs(s.reveal(keys) - want_k) <= ULP + 1e-12)
    assert np.all(np.abs(s.reveal(q) - want_q) <= ULP + 1e-12)
    weights = s.reveal(probe["weights"])  # (hkv, group T, T), row g T + t sees tokens <= t
    rows = np.arange(group * T) % T
    future = np.arange(T)[None, :] > rows[:, None]
    assert np.all(weights[:, future] == 0)  # masked exactly: e times the 0/1 mask
    assert np.all(weights[:, ~future] > 0)
    assert np.allclose(weights.sum(axis=-1), 1, atol=2**-8)  # rows are distributions (softmax's own accuracy)
    context, v = s.reveal(probe["context"]), s.reveal(values)
    assert np.all(np.abs(context - weights @ v) <= ULP + 1e-12)  # one product, one truncation
    # the (T, q_width) rows: column block kv * group + g at row t is context[kv, g T + t]
    want_rows = context.reshape(hkv, group, T, d).transpose(2, 0, 1, 3).reshape(T, m.q_width)
    assert np.array_equal(s.reveal(probe["context_rows"]), want_rows)


def test_window_queries_are_position_major():
    s = mpsim.Session(parties=2, backend="ideal")
    q = np.arange(2 * 3 * 6 * 2, dtype=float).reshape(2, 3, 6, 2)  # (hkv, group, T, d)
    got = s.reveal(window_queries(s.input(q), 4))
    for kv in range(2):
        for r in range(4 * 3):
            assert np.array_equal(got[kv, r], q[kv, r % 3, 6 - 4 + r // 3])


def test_mpcache_reuses_the_prefills_attention():
    policy, scope = reusable_policy(get_policy("mpcache"))
    assert policy.causal and scope == REUSED_SCOPE
    assert reusable_policy(get_policy("mpcache", static_scale=False))[1] is None  # other logits: nothing reused
    assert reusable_policy(get_policy("full"))[1] is None
    s = mpsim.Session(parties=2, backend="count")
    private_prefill(s, get_model("mpcache-proxy"), 512, policy)
    setup, reused = s.cost(scope="setup"), s.cost(scope=REUSED_SCOPE)
    assert 0 < max(reused.sent) < max(setup.sent)
    # the reused scope is the window's q K^T and softmax over the cache: its bytes are the prefill's on those
    # rows (the prefill computes every row's), so it is at most the prefill's attention
    assert max(reused.sent) < max(s.cost(scope="prefill/layer0/attention").sent)


def test_answer_segments_add_up_and_plaintext_mode_charges_no_prefill():
    a = answer("mpcache-proxy", 256, 3, "mpcache", generators=("dealer", "silent-ot"))
    tot = a.total()
    parts = [a.prefill, a.setup] + a.steps
    assert tot.sent_bytes == [sum(p.sent_bytes[i] for p in parts) for i in range(2)]
    assert len(a.steps) == 3 and a.reused is not None and a.reused_scope == REUSED_SCOPE
    assert tot.offline["silent-ot"]["max_bytes"] > tot.offline["dealer"]["max_bytes"] > 0
    # the setup is charged without the reused importance: together they are the setup scope (the same seed:
    # the static top-k's shuffle is randomized)
    s = mpsim.Session(parties=2, backend="count", seed=0)
    private_prefill(s, get_model("mpcache-proxy"), 256, reusable_policy(get_policy("mpcache"))[0])
    assert [x + y for x, y in zip(a.setup.sent_bytes, a.reused.sent_bytes)] == list(s.cost(scope="setup").sent)
    plain = answer("mpcache-proxy", 256, 1, "mpcache", prefill="plaintext")
    assert plain.prefill.sent_bytes == [0.0, 0.0] and plain.reused is None
    with pytest.raises(ValueError, match="prefill must be one of"):
        answer("mpcache-proxy", 256, 1, "full", prefill="cloud")


def _fake(setup: float, steps: list[float]) -> Answer:
    def seg(b):
        return Segment([b, b], 1, {"lan": b}, 0.0, {})
    return Answer("p", "m", 1, len(steps), "private", seg(100.0), seg(setup), None, None, [seg(b) for b in steps])


def test_break_even_counts_tokens():
    full = _fake(0.0, [10.0] * 4)
    metric = lambda s: max(s.sent_bytes)  # noqa: E731
    assert break_even(_fake(15.0, [5.0] * 4), full, metric) == 3  # 15 + 5n <= 10n first at n = 3
    assert break_even(_fake(0.0, [5.0] * 4), full, metric) == 0
    assert break_even(_fake(30.0, [5.0] * 4), full, metric) == 6  # past 4 steps: (50 - 40) / 5 more
    assert break_even(_fake(30.0, [12.0] * 4), full, metric) is None


def test_generate_command(capsys):
    code = main(["generate", "--model", "mpcache-proxy", "--prompt", "256", "--new", "2", "--policy", "mpcache",
                 "--compare", "full", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["schema"] == "mpsim.answer" and [a["label"] for a in data["answers"]] == ["mpcache",
                                                                                                         "full"]
    even = data["break_even"]["mpcache"]
    assert even["against"] == "full" and {"online_bytes", "online_s_lan", "with_offline_s_dealer_wan"} <= set(even)
    code = main(["generate", "--model", "mpcache-proxy", "--prompt", "256", "--new", "2", "--compare", "mpcache",
                 "--prefill", "plaintext"])
    text = capsys.readouterr().out
    assert code == 0 and "the MPCache paper's evaluation" in text and "breaks even with full" in text


def test_compare_reads_a_saved_answer(tmp_path, capsys):
    path = tmp_path / "answer.json"
    assert main(["generate", "--model", "mpcache-proxy", "--prompt", "128", "--new", "1", "--compare", "mpcache",
                 "--save", str(path), "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert main(["compare", str(path), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["name"] for r in runs] == ["full answer (mpcache-proxy, prompt 128, 1 new)",
                                         "mpcache answer (mpcache-proxy, prompt 128, 1 new)"]
    assert runs[1]["rounds"] == saved["answers"][1]["total"]["rounds"]


def test_row_blocks_cost_what_one_block_costs(monkeypatch):
    """The attention over blocks of query rows (bounded memory on long prompts) is the same ledger in rounds
    and bytes: the blocks are independent and keys and values are opened once."""
    import mpcache.prefill as prefill

    def cost(block_elements):
        monkeypatch.setattr(prefill, "ROW_BLOCK_ELEMENTS", block_elements)
        s = mpsim.Session(parties=2, backend="count", seed=0)
        private_prefill(s, "mpcache-proxy", 256, "full")
        c = s.cost(scope="prefill")
        return c.rounds, c.sent, c.offline_bits

    one = cost(2**27)
    assert one == cost(32 * 256 * 16)  # 16 query rows per block: 16 blocks
    assert one == cost(32 * 256 * 100)  # uneven blocks
