"""The ``mpcache`` policy: MPC decisions == the plaintext twin's on structured inputs, attention within the
derived fixed-point bound, identical ledgers across backends, public budgets, the cost claims (index sharing,
comparison-free similarity, constant summary update, cheaper than full attention), and validation.

Inputs are multiples of 2^-8 so that they encode exactly at f = 16 and q.k is exact in float64; decisions are
compared on structured inputs whose margins (checked on the twin) dwarf the fixed-point error.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

import mpsim
from mpcache import ModelConfig, decode_step, get_model, prepare
from mpcache.policies import LayerKV, MPCachePolicy, MPCacheTwin, get_policy
import protocols as P
from protocols.nonlinear import Twin, twin_softmax

HKV, D = 2, 16
F = 16
ULP = 2.0**-F
SCALE = 1 / math.sqrt(D)  # 0.25: exact in fixed point
TINY = ModelConfig("mpcache-tiny", 4, 4, 16, 64, 64, "silu", "layernorm", kv_heads=2)  # 2 query heads per KV head


def q8(x):
    return np.round(np.asarray(x, dtype=np.float64) * 256) / 256


# -- structured inputs --------------------------------------------------------------------------------------------
def planted(rng, T, k, w, group=1):
    """k heavy tokens (large key component along e0, which every window query shares) among light ones."""
    keys = q8(rng.normal(scale=0.3, size=(HKV, T, D)))
    keys[..., 0] = q8(rng.normal(scale=0.1, size=(HKV, T)))
    heavy = np.sort(rng.choice(T, k, replace=False))
    keys[:, heavy, 0] = 3.0
    values = q8(rng.normal(size=(HKV, T, D)))
    queries = q8(rng.normal(scale=0.3, size=(HKV, group * w, D)))
    queries[..., 0] = 3.0
    return keys, values, queries, heavy


# Coarse pairs (two fine clusters each) for coarse candidates 1..6: the linear coarse score is about
# 0.6 max + 0.4 min, so the "trap" pair (2.5, -2.5) scores 0.5 and misses the level-1 top 4 although its 2.5
# child is the best fine cluster: the hierarchy decides differently from a one-level top-k. (The max-based
# bound scores the trap 2.5 and keeps it.)
PAIRS = [(1.5, 1.1), (1.3, 0.9), (1.0, 0.7), (0.85, 0.45), (0.2, -0.4), (2.5, -2.5)]


def clustered(rng, L=250, group=1):
    """Keys of 16-token clusters at levels beta along e0 (per head a different arrangement), small noise."""
    G = -(-L // 16)
    keys = q8(rng.normal(scale=0.02, size=(HKV, L, D)))
    for h in range(HKV):
        beta = np.zeros(G)
        beta[1], beta[14] = 0.6, 0.05  # the other children of the always-kept first and last coarse clusters
        for c, pair in zip(rng.permutation(6) + 1, PAIRS):
            beta[2 * c : 2 * c + 2] = pair if rng.random() < 0.5 else pair[::-1]
        keys[h, :, 0] += q8(np.repeat(beta, 16)[:L])
    values = q8(rng.normal(size=(HKV, L, D)))
    q = q8(rng.normal(scale=0.02, size=(HKV, group, D)))
    q[..., 0] = 1.0
    return keys, values, q


def margins(policy, q, keys):
    """Per level, the smallest gap between the k-th and (k+1)-th eligible candidate score (twin units)."""
    twin, levels = policy.twin(), policy.plan(keys.shape[1])
    summ, member, out = twin.summaries(keys), None, []
    for i, lv in enumerate(levels):
        if not lv.runs_topk:
            member = None
            continue
        cand = np.arange(1, lv.G - 1)
        x = twin.scores(q, summ[i][0][:, cand], summ[i][1][:, cand])
        if member is not None:
            x = np.where(member[:, cand * lv.size // levels[i - 1].size] > 0, x, -np.inf)
        srt = -np.sort(-x, axis=-1)
        out.append(float((srt[:, lv.k - 1] - srt[:, lv.k]).min()))
        top = np.argsort(-x, axis=-1, kind="stable")[:, : lv.k]
        member = np.zeros((HKV, lv.G))
        np.put_along_axis(member, top + 1, 1.0, axis=-1)
        member[:, [0, lv.G - 1]] = 1.0
    return out


# -- running the policy on given tensors ---------------------------------------------------------------------------
def layer(session, keys, values, reuse=True):
    k, v = session.input(keys), session.input(values)
    if reuse:
        k, v = session.reusable(k), session.reusable(v)
    return LayerKV(k, v, np.arange(keys.shape[1]))


def one_step(policy, backend, keys, values, q, seed=0, reuse=True, layer_index=0):
    """Prefill on all but the last token, append it, attend, update: (session, record, context, weights, kv)."""
    s = mpsim.Session(parties=2, backend=backend, seed=seed)
    kv = policy.prefill(s, layer_index, layer(s, keys[:, :-1], values[:, :-1], reuse))
    kv = kv.append(s.input(keys[:, -1:]), s.input(values[:, -1:]))
    step: dict = {}
    context, weights = policy.attend(s, layer_index, s.input(q), kv, SCALE, step)
    kv = policy.update(s, layer_index, kv, weights)
    return s, step["mpcache"][layer_index], context, weights, kv


def chosen(session, record):
    """The clusters the MPC chose (revealed for the test), as global finest-level indices, sorted per head."""
    return np.sort(session.reveal(record["index"]) + 1, axis=-1)


def context_bound(q, keys, values, tokens):
    """Derived bound on |MPC attention - float attention| over the same tokens, per output.

    MPC: s = trunc(q.k) (q.k exact here, so floor + at most 1 ULP: a Twin with err 1), then s * 0.25
    (one truncation), the softmax, and w @ V (one or two truncations). ``twin_softmax`` (protocols.nonlinear)
    replays the same fixed-point steps with floor truncation and carries ``err``, the documented bound on how
    far an MPC run can be from it; its distance to the float softmax is computed, not assumed. So per output
    |ctx - ctx_float| <= sum_j (|p_twin_j - p_j| + err_j ULP) |v_j| + 4 ULP (the value products' truncations).
    """
    out = np.zeros(q.shape)
    enc = int(round(SCALE * 2**F))
    for h in range(q.shape[0]):
        kk, vv = keys[h, tokens[h]], values[h, tokens[h]]
        exact = q[h] @ kk.T
        t = Twin(np.floor(exact * 2**F).astype(np.int64), F, 1.0)
        p = twin_softmax(Twin(t.v * enc, 2 * F, t.err * enc).trunc(F), axis=-1)
        e = np.exp(exact * SCALE - (exact * SCALE).max(axis=-1, keepdims=True))
        pf = e / e.sum(axis=-1, keepdims=True)
        out[h] = (np.abs(p.real() - pf) + p.err * ULP) @ np.abs(vv) + 4 * ULP
    return out


# -- static eviction -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,group,kw", [
    ("share", 1, {}),
    ("ideal", 2, {}),
    ("ideal", 1, {"static_scale": False, "causal": True, "onehot": "equality"}),
])
def test_static_topk_keeps_the_planted_heavy_tokens_in_position_order(backend, group, kw):
    rng = np.random.default_rng(7)
    T = 160
    policy = get_policy("mpcache", topk_method="sort", **kw)
    w, k = policy.window(T), policy.static_budget(T)
    assert (w, k) == (32, 48)  # 20% of the prompt, 30% kept
    keys, values, queries, heavy = planted(rng, T, k, w, group)
    imp = policy.twin().importance(keys, queries)
    assert imp[heavy].min() > 4 * np.delete(imp, heavy).max()  # a clear margin
    np.testing.assert_array_equal(policy.twin().static_keep(keys, queries), heavy)
    s = mpsim.Session(parties=2, backend=backend, seed=1)
    kv = layer(s, keys, values)
    kv.state["prompt_queries"] = s.input(queries)
    out = policy.prefill(s, 0, kv)
    assert out.length == k and out.positions is None and "prompt_queries" not in out.state
    assert out.state["leaks"] == ()
    # The gather is exact (integer one-hot), so the kept keys are the planted ones bit for bit, in order.
    np.testing.assert_array_equal(s.reveal(out.keys.tensor), keys[:, heavy])
    np.testing.assert_array_equal(s.reveal(out.values.tensor), values[:, heavy])
    assert s.cost(scope="select/static").total_bits > 0


def test_static_threshold_reveals_the_kept_count_and_records_it_as_a_leak():
    rng = np.random.default_rng(8)
    T, k = 160, 40
    policy = get_policy("mpcache", static="threshold", threshold=0.01, topk_method="sort")
    keys, values, queries, heavy = planted(rng, T, k, policy.window(T))
    np.testing.assert_array_equal(policy.twin().static_keep(keys, queries), heavy)
    s = mpsim.Session(parties=2, backend="ideal", seed=1)
    kv = layer(s, keys, values)
    kv.state["prompt_queries"] = s.input(queries)
    out = policy.prefill(s, 0, kv)
    np.testing.assert_array_equal(s.reveal(out.keys.tensor), keys[:, heavy])
    (leak,) = out.state["leaks"]
    assert leak["value"] == k and leak["scope"] == "select/static"
    # the count backend has no data: it assumes the keep ratio's count, and says so
    c = mpsim.Session(parties=2, backend="count", seed=1)
    run = prepare(c, TINY.with_layers(1), T, policy=policy)
    (leak,) = run.caches[0].state["leaks"]
    assert leak["value"] is None and leak["assumed"] == policy.static_budget(T) == run.caches[0].length


# -- dynamic selection ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,group,kw", [
    ("share", 1, {}),
    ("share", 2, {"similarity": "bound-sign"}),
    ("ideal", 1, {"similarity": "bound"}),
    ("ideal", 2, {"onehot": "equality", "topk_method": "shuffle"}),
    ("ideal", 1, {"cluster_sizes": (16,), "ratios": (0.2,)}),
])
def test_cluster_selection_matches_the_twin(backend, group, kw):
    rng = np.random.default_rng(11)
    keys, values, q = clustered(rng, group=group)
    policy = get_policy("mpcache", static=None, topk_method=kw.pop("topk_method", "sort"), **kw)
    assert min(margins(policy, q, keys)) > 0.05  # vs fixed-point errors of ~1e-3
    twin = policy.twin().select(q, keys)
    s, record, context, weights, kv = one_step(policy, backend, keys, values, q)
    np.testing.assert_array_equal(chosen(s, record), twin)
    one_level = get_policy("mpcache", static=None, cluster_sizes=(16,), ratios=(0.2,)).twin().select(q, keys)
    if len(policy.cluster_sizes) == 2 and policy.similarity == "linear":
        assert not np.array_equal(twin, one_level)  # the hierarchy decides: the trap's best child is out


@pytest.mark.parametrize("gather", ["rotated", "cluster", "cluster-kv", "token"])
def test_attention_on_shares_matches_the_float_twin_within_the_derived_bound(gather):
    rng = np.random.default_rng(12)
    keys, values, q = clustered(rng, group=2)
    policy = get_policy("mpcache", static=None, gather=gather, topk_method="sort")
    s, record, context, weights, kv = one_step(policy, "share", keys, values, q, seed=4)
    clusters = policy.twin().select(q, keys)
    np.testing.assert_array_equal(chosen(s, record), clusters)
    tokens = policy.twin().tokens(clusters, keys.shape[1])
    ref = policy.twin().attend(q, keys, values, SCALE, clusters)
    bound = context_bound(q, keys, values, tokens)
    err = np.abs(s.reveal(context) - ref)
    assert np.all(err <= bound), (err.max(), bound.min())
    assert bound.max() < 0.05  # the bound itself is tight enough to mean something


def test_ideal_attention_equals_the_fixed_point_twin_bit_for_bit():
    """The ideal backend floors every truncation, as ``protocols.nonlinear.Twin`` does: the attention weights
    over the chosen tokens and the context equal the twin's fixed-point replay exactly (the picked scores
    come in top-k order, so weights are compared as sorted rows)."""
    rng = np.random.default_rng(16)
    keys, values, q = clustered(rng, group=2)
    policy = get_policy("mpcache", static=None, topk_method="sort")
    s, record, context, weights, kv = one_step(policy, "ideal", keys, values, q)
    tokens = policy.twin().tokens(policy.twin().select(q, keys), keys.shape[1])
    enc = int(round(SCALE * 2**F))
    got_w, got_ctx = s.reveal(weights), s.reveal(context)
    for h in range(HKV):
        exact = q[h] @ keys[h, tokens[h]].T  # exact in float64: the ideal product floors nothing away
        scaled = Twin(np.floor(exact * 2**F).astype(np.int64) * enc, 2 * F).trunc(F)
        p = twin_softmax(scaled, axis=-1)
        np.testing.assert_array_equal(np.sort(got_w[h], axis=-1), np.sort(p.real(), axis=-1))
        ctx = Twin(p.v @ Twin.encode(values[h, tokens[h]], F).v, 2 * F).trunc(F)
        np.testing.assert_array_equal(got_ctx[h], ctx.real())


def test_summaries_follow_the_cache_exactly_step_by_step():
    """Incremental finest-level max/min and coarse rows at completion equal a fresh computation."""
    rng = np.random.default_rng(13)
    L0, steps = 60, 40  # crosses fine (16) and coarse (32) cluster boundaries
    keys = q8(rng.normal(size=(HKV, L0 + steps, D)))
    values = q8(rng.normal(size=(HKV, L0 + steps, D)))
    policy = get_policy("mpcache", static=None)
    s = mpsim.Session(parties=2, backend="ideal", seed=0)
    kv = policy.prefill(s, 0, layer(s, keys[:, :L0], values[:, :L0]))
    for t in range(L0, L0 + steps):
        kv = policy.update(s, 0, kv.append(s.input(keys[:, t : t + 1]), s.input(values[:, t : t + 1])), None)
    for summ, (rmax, rmin) in zip(kv.state["summaries"], policy.twin().summaries(keys)):
        G = summ.G
        np.testing.assert_array_equal(s.reveal(summ.rmax), rmax[:, :G])
        np.testing.assert_array_equal(s.reveal(summ.rmin), rmin[:, :G])
        ct = s.reveal(summ.ops[0].tensor)
        np.testing.assert_array_equal(ct, 3 * rmax[:, :G] + 2 * rmin[:, :G])  # alpha = 3/5, den times
    assert [summ.G for summ in kv.state["summaries"]] == [(L0 + steps) // 32, -(-(L0 + steps) // 16)]


# -- budgets ------------------------------------------------------------------------------------------------------
def test_kept_fraction_matches_the_public_budget():
    rng = np.random.default_rng(14)
    keys, values, q = clustered(rng, L=250)
    policy = get_policy("mpcache", static=None, topk_method="sort")
    s, record, context, weights, kv = one_step(policy, "ideal", keys, values, q)
    fine = policy.plan(250)[-1]
    assert (fine.G, fine.k) == (16, int(16 * 0.2))
    attended = 16 * (fine.k + 1) + (250 - 16 * (fine.G - 1))  # chosen + first + the partial last cluster
    assert weights.shape == (HKV, 1, attended)
    twin = policy.twin()(q, keys, values, SCALE)  # the dynamic baselines' twin signature
    assert twin.positions.shape == (HKV, attended) and np.all(np.diff(twin.positions, axis=-1) > 0)
    np.testing.assert_array_equal(twin.chosen, chosen(s, record))
    assert twin.scores.shape == (HKV, fine.n_c) and twin.context.shape == (HKV, 1, D)
    # static budget on a full-size cache (count backend): 30% of the prompt, in every layer
    c = mpsim.Session(parties=2, backend="count", seed=0)
    run = prepare(c, TINY, 1000, policy=get_policy("mpcache"))
    assert [kv.length for kv in run.caches] == [300] * TINY.layers
    assert get_policy("mpcache").plan(32) is None  # two clusters: attended densely
    short = get_policy("mpcache", static=None)
    assert short.plan(40)[-1].k == 0  # int(3 * 0.2) = 0: only the first and the (partial) last cluster
    rnd = q8(rng.normal(size=(2, HKV, 40, D)))
    s, record, context, weights, kv = one_step(short, "ideal", rnd[0], rnd[1], q)
    assert weights.shape == (HKV, 1, 16 + 8) and s.cost(scope="select/topk").total_bits == 0
    assert short.twin()(q, rnd[0], rnd[1], SCALE).positions.shape == (HKV, 24)


# -- ledgers and costs ----------------------------------------------------------------------------------------------
def _decode(backend, model, seq, policy, steps=1, reuse=True):
    s = mpsim.Session(parties=2, backend=backend, seed=3)
    run = prepare(s, model, seq, policy=policy, reuse=reuse)
    marks = []
    for _ in range(steps):
        marks.append(s.mark())
        decode_step(run)
    return s, run, marks


@pytest.mark.parametrize("reuse", [True, False])
def test_share_ideal_and_count_ledgers_are_identical(reuse):
    # deterministic cost (no randomized quickselect); layer 0 selects, layer 1 follows
    policy = get_policy("mpcache", topk_method="sort", keep_ratio=0.5, share_from=0)
    assert all(lv.runs_topk for lv in policy.plan(137))  # both levels select
    ledgers = []
    for backend in ("share", "ideal", "count"):
        s, run, _ = _decode(backend, TINY.with_layers(2), 272, policy, steps=2, reuse=reuse)
        ledgers.append([(m.scope, m.op, m.depth, m.src, m.dst, m.bits, m.phase) for m in s.ledger.messages])
    assert ledgers[0] == ledgers[1] == ledgers[2]
    assert any("select/topk" in m[0] for m in ledgers[0])


def _layer_cost(s, mark, layer, scope):
    return s.cost(scope=f"/step/layer{layer}/select/{scope}", since=mark).total_bits


def test_cluster_gather_follower_reuses_the_masked_onehot():
    policy = get_policy("mpcache", topk_method="sort", gather="cluster")
    s, run, (mark,) = _decode("count", TINY, 1024, policy)
    on = {l: _layer_cost(s, mark, l, "gather") for l in (2, 3)}
    assert 0 < on[3] < on[2]  # the follower reuses the leader's masked one-hot: no opening


def test_index_sharing_halves_the_selection_overhead_of_the_sharing_layers():
    costs = {}
    for share in (True, False):
        policy = get_policy("mpcache", topk_method="sort", share_layers=share)
        s, run, (mark,) = _decode("count", TINY, 1024, policy)
        costs[share] = {(l, sc): _layer_cost(s, mark, l, sc) for l in range(4)
                        for sc in ("similarity", "topk", "summary_update", "gather")}
    on, off = costs[True], costs[False]
    overhead = ("similarity", "topk", "summary_update")
    pair_on = sum(on[l, sc] for l in (2, 3) for sc in overhead)
    pair_off = sum(off[l, sc] for l in (2, 3) for sc in overhead)
    assert pair_off > 0 and pair_on * 2 == pair_off  # the follower (layer 3) pays none of it
    assert all(on[3, sc] == 0 for sc in overhead) and on[3, "gather"] > 0
    # rotated gather (default): the follower gathers and scatters by the shared indices at the leader's cost
    assert on[3, "gather"] == on[2, "gather"]
    assert all(on[l, sc] == off[l, sc] for l in (0, 1) for sc in overhead)  # layers 0, 1 select on their own


def _msb_bits(session, scope, since):
    """Online bits party 0 sends inside MSB protocols (comparisons), wherever they sit under ``scope``."""
    return sum(m.bits for m in session.ledger.select(scope=scope, since=since)
               if "msb" in m.scope.split("/") and m.src == 0 and m.phase == "online")


def test_linear_similarity_needs_no_comparisons_where_the_bound_needs_HCd():
    msb_bits = {}
    for similarity in ("linear", "bound", "bound-sign"):
        policy = get_policy("mpcache", topk_method="sort", similarity=similarity, share_layers=False)
        s, run, (mark,) = _decode("count", TINY.with_layers(1), 1024, policy)
        msb_bits[similarity] = _msb_bits(s, "select/similarity", mark)
    L = int(0.3 * 1024) + 1
    candidates = sum(lv.n_c for lv in get_policy("mpcache").plan(L))
    H = TINY.heads

    def msb_cost(n):
        ref = mpsim.Session(parties=2, backend="count", seed=0)
        mark = ref.mark()
        P.msb(ref.placeholder((n,)))
        return _msb_bits(ref, None, mark)

    assert msb_bits["linear"] == 0
    assert msb_bits["bound"] == msb_cost(H * candidates * D)  # H C d comparisons
    assert msb_bits["bound-sign"] == msb_cost(H * D)  # the same bound from the signs of q: H d


def test_summary_update_cost_does_not_grow_with_the_sequence():
    costs = []
    for seq in (1024, 4096):  # first step at positions 307 and 1228: both inside a fine cluster
        s, run, (mark,) = _decode("count", get_model("mpcache-proxy"), seq, get_policy("mpcache"))
        costs.append(s.cost(scope="select/summary_update", since=mark).sent_bits[0])
    assert costs[0] == costs[1] > 0


def test_full_size_count_run_is_fast_and_communicates_less_than_full_attention():
    start = time.perf_counter()
    sent = {}
    for name in ("full", "mpcache"):
        s, run, (mark,) = _decode("count", get_model("llama2-7b"), 4096, get_policy(name))
        sent[name] = s.cost(since=mark).sent_bits[0]
        if name == "mpcache":
            assert s.cost(scope="/setup/layer0/select/static").total_bits > 0
            for scope in ("similarity", "topk", "gather", "summary_update"):
                assert s.cost(scope=f"select/{scope}", since=mark).total_bits > 0, scope
    assert time.perf_counter() - start < 30
    assert sent["mpcache"] * 3 < sent["full"]


# -- sharing across layers ------------------------------------------------------------------------------------------
def test_sharing_pattern_and_a_follower_without_its_leader():
    policy = get_policy("mpcache", share_from=2, share_group=2, share_until=30)
    leaders = [policy.leader(layer) for layer in range(32)]
    assert leaders[:6] == [0, 1, 2, 2, 4, 4] and leaders[28:] == [28, 28, 30, 31]
    assert sum(not policy.is_follower(layer) for layer in range(32)) == 18  # Implementation A of the digest
    assert get_policy("mpcache", share_layers=False).leader(3) == 3
    rng = np.random.default_rng(15)
    keys, values, q = clustered(rng)
    with pytest.raises(RuntimeError, match="run the layers of a step in order"):
        one_step(get_policy("mpcache", static=None), "ideal", keys, values, q, layer_index=3)


# -- validation -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    {"static": "snap"}, {"keep_ratio": 0}, {"keep_ratio": 1.5}, {"threshold": -1.0}, {"static_window": 0.0},
    {"cluster_sizes": (16, 32)}, {"cluster_sizes": (32, 12)}, {"cluster_sizes": ()}, {"cluster_sizes": (0,)},
    {"ratios": (0.5,)}, {"ratios": (0.5, 0.0)}, {"ratios": (0.5, 2.0)}, {"alpha": 1.2}, {"similarity": "cosine"},
    {"gather": "page"}, {"onehot": "fss"}, {"topk_method": "heap"}, {"share_from": -1}, {"share_group": 1},
    {"share_until": -2}, {"keep_ratio": True},
])
def test_bad_hyperparameters_raise(kw):
    with pytest.raises(ValueError):
        get_policy("mpcache", **kw)


def test_registered_with_a_twin():
    policy = get_policy("mpcache")
    assert isinstance(policy, MPCachePolicy) and isinstance(policy.twin(), MPCacheTwin)
    assert policy.alpha_fraction == (3, 5) and policy.prompt_queries(30000) == 3000
    assert get_policy("mpcache", static=None).prompt_queries(1000) == 0
