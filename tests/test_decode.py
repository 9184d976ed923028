"""The private decode workload (groundwork of the MPCache issue): shapes, scopes, reuse, policies' caches."""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
from mpcache import MODELS, decode_step, get_model, prepare
from mpcache.policies import get_policy

SMALL = get_model("llama3-8b").scaled(8).with_layers(2)  # 4 heads over 1 KV head, hidden 512


def _step_cost(model, seq, backend="count", **kw):
    s = mpsim.Session(parties=2, backend=backend, seed=3)
    run = prepare(s, model, seq, **kw)
    mark = s.mark()
    decode_step(run)
    return s, run, mark


def test_model_configs():
    assert set(MODELS) >= {"gpt2", "mpcache-proxy", "llama2-7b", "longchat-7b", "llama3-8b"}
    llama3 = get_model("llama3-8b")
    assert llama3.n_kv_heads == 8 and llama3.kv_width == 1024 and llama3.q_width == 4096
    with pytest.raises(ValueError, match="unknown model"):
        get_model("llama9")
    with pytest.raises(ValueError, match="kv_heads"):
        MODELS["gpt2"].__class__("x", 1, 12, 64, 768, 3072, "gelu", "layernorm", kv_heads=5)


def test_full_size_step_on_the_count_backend_has_the_paper_scopes():
    s, run, mark = _step_cost(get_model("llama2-7b"), 4096)
    step = s.cost(since=mark)
    softmax = s.cost(scope="attention/softmax")
    for scope in ("linear", "attention/qk", "attention/softmax", "attention/av", "mlp", "norm", "kv_append"):
        assert s.cost(scope=scope).total_bits > 0, scope
    assert softmax.total_bits > step.total_bits / 2  # attention's softmax dominates at 4096 tokens
    assert [node.path for node in s.cost_tree().children] == ["setup", "step"]


@pytest.mark.parametrize("reuse", [True, False])
def test_backends_agree_and_reuse_saves_exactly_the_operand_openings(reuse):
    ledgers = []
    for backend in ("share", "ideal", "count"):
        s, run, mark = _step_cost(SMALL, 32, backend=backend, reuse=reuse)
        ledgers.append([(m.scope, m.op, m.depth, m.src, m.dst, m.bits) for m in s.ledger.messages[mark:]])
    assert ledgers[0] == ledgers[1] == ledgers[2]
    s, run, mark = _step_cost(SMALL, 32, reuse=reuse)
    qk = s.cost(scope="attention/qk").sent_bits[0]
    q_elems = SMALL.heads * SMALL.head_dim  # per layer
    k_elems = SMALL.n_kv_heads * 33 * SMALL.head_dim  # the cache after appending this step's token
    expected = SMALL.layers * 64 * (q_elems + (0 if reuse else k_elems))
    assert qk == expected


def test_setup_holds_the_one_off_masking_apart_from_the_step():
    s, run, mark = _step_cost(SMALL, 16, reuse=True)
    setup = s.cost(scope="/setup")
    per_layer_weights = SMALL.hidden * (SMALL.q_width + 2 * SMALL.kv_width) + SMALL.q_width * SMALL.hidden \
        + 3 * SMALL.hidden * SMALL.mlp
    cache = 2 * SMALL.n_kv_heads * 16 * SMALL.head_dim
    assert setup.sent_bits[0] == SMALL.layers * 64 * (per_layer_weights + cache)  # every mask_operand opening
    append = s.cost(scope="kv_append").sent_bits[0]
    assert append == SMALL.layers * 64 * 2 * SMALL.kv_width  # one new K and V row per layer


def test_attention_only_mode_skips_the_mlp():
    s, run, mark = _step_cost(SMALL, 16, attention_only=True)
    assert s.cost(scope="mlp").total_bits == 0 and s.cost(scope="attention/softmax").total_bits > 0


def test_streaming_keeps_sinks_and_window_for_free():
    policy = get_policy("streaming", sinks=4, window=8)
    s = mpsim.Session(parties=2, backend="ideal", seed=0)
    run = prepare(s, SMALL, 40, policy=policy)
    assert run.caches[0].length == 12 and list(run.caches[0].positions) == [0, 1, 2, 3] + list(range(32, 40))
    mark = s.mark()
    decode_step(run)
    assert list(run.caches[1].positions) == [0, 1, 2, 3] + list(range(33, 41))
    twin = policy.twin()
    np.testing.assert_array_equal(twin(np.arange(41)), run.caches[1].positions)
    full = mpsim.Session(parties=2, backend="count", seed=0)
    full_run = prepare(full, SMALL, 40)
    full_mark = full.mark()
    decode_step(full_run)
    assert s.cost(since=mark).total_bits < full.cost(since=full_mark).total_bits  # softmax over 13, not 41
    assert s.cost(scope="select").total_bits == 0  # no selection protocol runs
    with pytest.raises(ValueError):
        get_policy("streaming", sinks=-1)
    with pytest.raises(ValueError, match="unknown policy"):
        get_policy("h3o")


def test_share_and_ideal_outputs_agree_closely():
    """Same arithmetic on real shares: differences come only from probabilistic truncation (a few ULPs per
    product, amplified through the layers); this checks the plumbing, not the approximations' accuracy."""
    outs = []
    for backend in ("share", "ideal"):
        s = mpsim.Session(parties=2, backend=backend, seed=3)
        run = prepare(s, SMALL.with_layers(1), 16)
        outs.append(s.reveal(decode_step(run)))
    assert np.all(np.isfinite(outs[0])) and np.max(np.abs(outs[0] - outs[1])) < 1e-2
