"""The stages of the ``mpcache`` policy (``mpcache/policies/mpcache/``), each against its own contract:
static eviction (public budget, the twin's keep set, order-preserving compaction), cluster summaries (plaintext
max/min per cluster, incremental update at a cost independent of L), the similarity (the plaintext value within
its derived truncation bound in units of 2^-f), hierarchical selection (children of the level-1 picks, public
extras, ties), the gather (attention over exactly the first, picked and last clusters) and cross-layer sharing
(followers reuse the leader's choice). The policy-level behaviour is in ``test_policy_mpcache.py``.

Inputs are multiples of 2^-8 (or 2^-12 for the similarity, so that its truncation matters) and encode exactly
at f = 16; the only errors left are the truncations, which the ideal backend floors and the share backend
rounds either way (at most 1 ULP each).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import mpsim
from mpcache.policies import LayerKV, dense_attention, get_policy
from mpcache.policies.mpcache import (STEP_KEY, Clustering, Gather, Level, Selection, Sharing, Similarity,
                                      StaticEviction, Summary, extras, fixed_tokens)
from protocols.reuse import MaskedOperand

HKV, D, F = 2, 16, 16
ULP = 2.0**-F
SCALE = 0.25  # 1/sqrt(16): exact in fixed point


def q8(x, bits=8):
    return np.round(np.asarray(x, dtype=np.float64) * 2**bits) / 2**bits


def session(backend="ideal", seed=0):
    return mpsim.Session(parties=2, backend=backend, seed=seed)


def layer(s, keys, values, reuse=True):
    k, v = s.input(keys), s.input(values)
    if reuse:
        k, v = s.reusable(k), s.reusable(v)
    return LayerKV(k, v, np.arange(keys.shape[1]))


def msb_bits(s, mark):
    return sum(m.bits for m in s.ledger.messages[mark:] if "msb" in m.scope.split("/"))


# -- static eviction ----------------------------------------------------------------------------------------------
def stage(**kw) -> StaticEviction:
    return get_policy("mpcache", topk_method="sort", **kw).eviction


def test_static_window_and_budget_are_the_public_formulas():
    st = stage()
    assert [st.window(T) for T in (3, 160, 24000, 24001)] == [1, 32, 4800, 2400]  # 20%, 10% above 24000
    assert [st.budget(T) for T in (1, 3, 160)] == [1, 1, 48]  # int(0.3 T), at least one
    assert stage(static_window=0.5).window(24001) == 12000 and stage(keep_ratio=1.0).budget(7) == 7


def test_causal_mask_hides_the_later_tokens_of_each_window_row():
    st, T, group = stage(causal=True), 20, 2
    w = st.window(T)  # 4: prompt positions 16..19, two query rows each
    mask = st.causal_mask(group * w, T)
    for r in range(group * w):
        pos = T - w + r // group
        assert np.all(mask[r, : pos + 1] == 0) and np.all(mask[r, pos + 1 :] == -64.0)


def planted(rng, T, k, w):
    """k heavy tokens (large e0 key component, which every window query shares) among light ones."""
    keys = q8(rng.normal(scale=0.3, size=(HKV, T, D)))
    keys[..., 0] = q8(rng.normal(scale=0.1, size=(HKV, T)))
    heavy = np.sort(rng.choice(T, k, replace=False))
    keys[:, heavy, 0] = 3.0
    queries = q8(rng.normal(scale=0.3, size=(HKV, w, D)))
    queries[..., 0] = 3.0
    return keys, q8(rng.normal(size=(HKV, T, D))), queries, heavy


@pytest.mark.parametrize("backend", ["share", "ideal"])
def test_static_eviction_keeps_exactly_the_budget_and_the_twins_choice(backend):
    rng = np.random.default_rng(21)
    T = 160
    policy = get_policy("mpcache", topk_method="sort")
    st = policy.eviction
    keys, values, queries, heavy = planted(rng, T, st.budget(T), st.window(T))
    imp = policy.twin().importance(keys, queries)
    assert imp[heavy].min() > 4 * np.delete(imp, heavy).max()  # decidable: a clear margin
    np.testing.assert_array_equal(policy.twin().static_keep(keys, queries), heavy)
    s = session(backend, seed=2)
    out, leak, record = st.evict(s, layer(s, keys, values), s.input(queries))
    assert leak is None and out.length == st.budget(T) == 48 and out.positions is None
    assert (record["T"], record["k"], record["select"].shape) == (T, 48, (48, T))  # what a follower reuses
    assert isinstance(out.keys, MaskedOperand)  # re-masked: new content
    np.testing.assert_array_equal(s.reveal(out.keys.tensor), keys[:, heavy])  # in position order, bit for bit
    np.testing.assert_array_equal(s.reveal(out.values.tensor), values[:, heavy])


@pytest.mark.parametrize("onehot", ["rotation", "equality"])
def test_compaction_gathers_the_marked_tokens_in_position_order(onehot):
    rng = np.random.default_rng(22)
    T, k = 40, 11
    keys, values = q8(rng.normal(size=(2, HKV, T, D)))
    marked = np.sort(rng.choice(T, k, replace=False))
    bits = np.zeros(T, np.int64)
    bits[marked] = 1
    s = session("share", seed=3)
    kv = layer(s, keys, values, reuse=False)
    with s.scope("select"), s.scope("static"):
        st = stage(onehot=onehot)
        k_out, v_out = st.gather(s, kv, st.selection(s, s.input(bits, frac_bits=0), k), reuse=False)
    assert not isinstance(k_out, MaskedOperand) and k_out.shape == (HKV, k, D)
    np.testing.assert_array_equal(s.reveal(k_out), keys[:, marked])
    np.testing.assert_array_equal(s.reveal(v_out), values[:, marked])
    scopes = {m.scope for m in s.ledger.messages}
    assert {"select/static/compact", "select/static/gather"} <= {"/".join(p.split("/")[:3]) for p in scopes}


def per_query_planted(rng, T, w, groups=3, per_group=5):
    """Window queries of ``groups`` kinds (query i along e_(1 + i % groups)) and per kind ``per_group`` tokens
    heavy along it: each kind's tokens draw attention from their own queries only, so the union rule keeps
    all of them while no single query attends more than one kind."""
    keys = q8(rng.normal(scale=0.05, size=(HKV, T, D)))
    heavy = np.sort(rng.choice(T, groups * per_group, replace=False))
    for g in range(groups):
        keys[:, heavy[g::groups], 1 + g] = 3.0
    queries = q8(rng.normal(scale=0.05, size=(HKV, w, D)))
    for i in range(w):
        queries[:, i, 1 + i % groups] = 3.0
    return keys, q8(rng.normal(size=(HKV, T, D))), queries, heavy


@pytest.mark.parametrize("backend", ["share", "ideal"])
def test_static_threshold_keeps_what_any_window_query_attends_as_the_reference(backend):
    rng = np.random.default_rng(24)
    T, thr = 60, 0.05
    st = stage(static="threshold", threshold=thr)
    keys, values, queries, heavy = per_query_planted(rng, T, st.window(T))
    twin = get_policy("mpcache", static="threshold", threshold=thr).twin()
    abar = twin.query_importance(keys, queries).max(axis=0)  # each token's best window query
    assert abar[heavy].min() > 1.5 * thr and np.delete(abar, heavy).max() < thr / 2  # decidable
    np.testing.assert_array_equal(twin.static_keep(keys, queries), heavy)
    s = session(backend, seed=5)
    out, leak, record = st.evict(s, layer(s, keys, values), s.input(queries))
    assert leak["value"] == record["k"] == out.length == len(heavy)  # the opened count, declared as a leak
    np.testing.assert_array_equal(s.reveal(out.keys.tensor), keys[:, heavy])
    np.testing.assert_array_equal(s.reveal(out.values.tensor), values[:, heavy])


def test_static_threshold_keeping_every_token_leaves_the_cache_and_records_the_count():
    rng = np.random.default_rng(23)
    T = 60
    st = stage(static="threshold", threshold=1e-4)
    keys, values, queries, _ = planted(rng, T, 5, st.window(T))
    s = session()
    kv = layer(s, keys, values)
    out, leak, record = st.evict(s, kv, s.input(queries))
    assert out is kv and record["select"] is None  # nothing evicted: the same cache, positions still public
    assert leak == {"scope": "select/static", "what": "tokens kept by the static threshold", "value": T,
                    "assumed": None}


def test_a_static_threshold_below_the_fixed_point_resolution_is_refused():
    rng = np.random.default_rng(25)
    st = stage(static="threshold", threshold=1e-9)  # 2 heads x 1e-9 < 2^-16
    keys, values, queries, _ = planted(rng, 60, 5, st.window(60))
    s = session()
    with pytest.raises(ValueError, match="below one unit 2\\^-16"):
        st.evict(s, layer(s, keys, values), s.input(queries))


# -- clusters and summaries ---------------------------------------------------------------------------------------
def plain_summaries(keys, sizes):
    """Per level (r_max, r_min): the finest over every cluster (the last one partial), coarser complete only."""
    out = []
    for i, s in enumerate(sizes):
        G = -(-keys.shape[1] // s) if i == len(sizes) - 1 else keys.shape[1] // s
        out.append((np.stack([keys[:, g * s : (g + 1) * s].max(axis=1) for g in range(G)], axis=1) if G else None,
                    np.stack([keys[:, g * s : (g + 1) * s].min(axis=1) for g in range(G)], axis=1) if G else None))
    return out


def check_summaries(s, summaries, keys, sizes, kind):
    for summ, (rmax, rmin) in zip(summaries, plain_summaries(keys, sizes)):
        if rmax is None:
            assert summ.rmax is None and summ.G == 0
            continue
        np.testing.assert_array_equal(s.reveal(summ.rmax), rmax)
        np.testing.assert_array_equal(s.reveal(summ.rmin), rmin)
        ops = [s.reveal(op.tensor if isinstance(op, MaskedOperand) else op) for op in summ.ops]
        expected = {"linear": [3 * rmax + 2 * rmin], "bound-sign": [rmax, rmin], "bound": []}[kind]
        assert len(ops) == len(expected)
        for got, want in zip(ops, expected):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind,reuse", [("linear", True), ("bound-sign", False), ("bound", True)])
def test_summaries_are_the_plaintext_extrema_of_each_cluster_and_update_incrementally(kind, reuse):
    rng = np.random.default_rng(24)
    sizes, L0, steps = (32, 16), 24, 50  # starts below one coarse cluster; crosses fine and coarse boundaries
    keys = q8(rng.normal(size=(HKV, L0 + steps, D)))
    clustering = Clustering(sizes, Similarity(kind, 3, 5).rows)
    s = session()
    k = s.input(keys[:, :L0])
    k = s.reusable(k) if reuse else k
    summaries = clustering.build(s, k)
    assert summaries[0].rmax is None  # 24 tokens: no complete coarse cluster yet
    check_summaries(s, summaries, keys[:, :L0], sizes, kind)
    for t in range(L0, L0 + steps):
        row = s.input(keys[:, t : t + 1])
        k = k.append(row, axis=1) if reuse else mpsim.concatenate([k, row], axis=1)
        summaries = clustering.update(s, summaries, k)
        if t in (31, 32, 47, 63, L0 + steps - 1):  # a coarse cluster completes, a fine one starts, ...
            check_summaries(s, summaries, keys[:, : t + 1], sizes, kind)
    assert all(isinstance(op, MaskedOperand) == reuse for summ in summaries for op in summ.ops)


def test_summary_update_cost_depends_on_the_position_in_the_cluster_not_on_L():
    rng = np.random.default_rng(25)
    keys = q8(rng.normal(size=(HKV, 400, D)))
    clustering = Clustering((32, 16), Similarity("linear", 3, 5).rows)
    s = session("count")

    def update_at(p):
        """(bits, comparison bits) of folding token p into the summaries of tokens 0..p-1."""
        k = s.reusable(s.input(keys[:, :p]))
        summaries = clustering.build(s, k)
        k = k.append(s.input(keys[:, p : p + 1]), axis=1)
        mark = len(s.ledger.messages)
        clustering.update(s, summaries, k)
        return sum(m.bits for m in s.ledger.messages[mark:]), msb_bits(s, mark)

    inside = [update_at(p) for p in (70, 102, 358)]  # p % 16 = 6: max/min with the newest cluster
    assert inside[0] == inside[1] == inside[2] and inside[0][1] > 0
    start = update_at(96)  # p % 16 = 0: a new cluster starts at k_new, no comparison, only its mask
    assert start[1] == 0 and 0 < start[0] < inside[0][0]
    complete = update_at(95)  # completes a fine and a coarse cluster: one more comparison call
    assert complete[1] > inside[0][1]


# -- similarity ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["share", "ideal"])
@pytest.mark.parametrize("kind,ulps", [("linear", 1), ("bound-sign", 2), ("bound", 2 * D)])
def test_similarity_equals_the_plaintext_value_within_its_truncations(backend, kind, ulps):
    """Encodings exact, so only truncations err: linear one (q_sum @ c^T), bound-sign two (one per product),
    the literal bound one per product q_i r_i, summed over the group g = 2 and d: g d. The ideal backend
    floors (error in (-ulps, 0]), the share backend rounds either way (|error| <= ulps)."""
    rng = np.random.default_rng(26)
    C = 9  # candidates 1..9 of G = 11 clusters
    a, b = q8(rng.normal(size=(2, HKV, C + 2, D)), 12)
    rmax, rmin = np.maximum(a, b), np.minimum(a, b)
    q = q8(rng.normal(size=(HKV, 2, D)), 12)
    cand = slice(1, C + 1)
    if kind == "linear":  # den times the paper's q . (0.6 r_max + 0.4 r_min)
        exact = np.einsum("hgd,hcd->hc", q, 3 * rmax[:, cand] + 2 * rmin[:, cand])
    else:  # Quest's bound sum_i max(q_i r_max_i, q_i r_min_i), summed over the group
        exact = np.maximum(q[:, :, None] * rmax[:, None, cand], q[:, :, None] * rmin[:, None, cand]).sum(axis=(1, 3))
    sim = Similarity(kind, 3, 5)
    s = session(backend, seed=4)
    smax, smin = s.input(rmax), s.input(rmin)
    summary = Summary(smax, smin, tuple(s.reusable(r) for r in sim.rows(smax, smin)))
    got = s.reveal(sim.scores(sim.query_parts(s.input(q)), summary, Level(16, C + 2, C, 3)))
    err = (got - exact) / ULP
    assert got.shape == (HKV, C)
    assert np.all(np.abs(err) <= ulps), np.abs(err).max()
    if backend == "ideal":
        assert np.all(err <= 0) and np.any(err < 0)  # floors, and the truncation did matter
    if kind == "linear":
        assert msb_bits(s, 0) == 0  # no comparison


# -- hierarchical selection ----------------------------------------------------------------------------------------
def test_plan_caps_the_fine_picks_by_the_children_of_the_coarse_picks():
    sel = Selection((32, 16), (0.5, 0.2), "sort")
    coarse, fine = sel.plan(250)
    assert (coarse.G, coarse.n_c, coarse.k, fine.G, fine.n_c, fine.k) == (8, 6, 4, 16, 14, 3)
    np.testing.assert_array_equal(extras(coarse, 16, 16), [0, 13])  # children of the first and last coarse
    np.testing.assert_array_equal(fixed_tokens(fine, 250), np.r_[0:16, 240:250])
    tight = Selection((32, 16), (0.3, 0.9), "sort").plan(250)
    assert tight[-1].k == tight[0].k * 2 + 2 < int(16 * 0.9)  # at most the children of the picks and extras
    assert sel.plan(32) is None and Selection((16,), (0.2,), "sort").plan(40)[-1].k == 0


def distinct_scores(rng, n):
    """Distinct scores 1/8 apart (per head a permutation): decidable for any top-k method."""
    return np.stack([rng.permutation(n) / 8.0 for _ in range(HKV)])


@pytest.mark.parametrize("method", ["sort", "shuffle"])
def test_selection_picks_the_best_children_of_the_level1_picks(method):
    rng = np.random.default_rng(27)
    sel = Selection((32, 16), (0.5, 0.2), method)
    levels = sel.plan(250)
    coarse, fine = levels
    x1, x2 = distinct_scores(rng, coarse.n_c), distinct_scores(rng, fine.n_c)
    # per head, the best fine score belongs to a coarse cluster outside the level-1 top 4: the hierarchy decides
    for h in range(HKV):
        worst = np.argmin(x1[h]) + 1  # the coarse cluster with the lowest score
        child, best = 2 * worst - 1, np.argmax(x2[h])  # its first child (0-based among the fine candidates)
        x2[h, [child, best]] = x2[h, [best, child]]
    s = session(seed=5)
    got = np.sort(s.reveal(sel.choose([s.input(x1), s.input(x2)], levels)), axis=-1)
    extra = extras(coarse, fine.size, fine.G)
    for h in range(HKV):
        top1 = np.argsort(-x1[h], kind="stable")[: coarse.k] + 1  # picked coarse clusters
        eligible = np.union1d(np.concatenate([2 * top1 - 1, 2 * top1]), extra)  # their children, and the extras
        assert np.all(np.isin(got[h], eligible))
        want = np.sort(eligible[np.argsort(-x2[h, eligible], kind="stable")[: fine.k]])
        np.testing.assert_array_equal(got[h], want)
        assert np.argmax(x2[h]) not in got[h]  # a one-level top-k would have taken it


def test_selection_ties_go_to_the_lower_index_and_a_coarse_level_choosing_none_leaves_the_extras():
    sel = Selection((32, 16), (0.5, 0.2), "sort")
    levels = sel.plan(250)
    s = session(seed=6)
    x1 = np.tile(np.arange(6)[::-1] / 8.0, (HKV, 1))  # coarse 1, 2, 3, 4 picked
    got = s.reveal(sel.choose([s.input(x1), s.input(np.zeros((HKV, 14)))], levels))
    np.testing.assert_array_equal(np.sort(got, axis=-1), [[0, 1, 2]] * HKV)  # all tied: the lowest eligible
    none = Selection((32, 16), (0.01, 0.2), "sort")
    levels = none.plan(250)
    assert levels[0].k == 0 and levels[-1].k == 2
    got = s.reveal(none.choose([None, s.input(distinct_scores(np.random.default_rng(1), 14))], levels))
    np.testing.assert_array_equal(np.sort(got, axis=-1), [[0, 13]] * HKV)  # fine clusters 1 and 14


# -- gather --------------------------------------------------------------------------------------------------------
def dense_over(s, q, keys, values, tokens):
    """Per head, dense attention over the given tokens (the reference): (context, weights)."""
    out = [dense_attention(s, s.input(q[h : h + 1]), layer(s, keys[h : h + 1, t], values[h : h + 1, t]), SCALE)
           for h, t in enumerate(tokens)]
    return [np.concatenate([s.reveal(o[i]) for o in out]) for i in (0, 1)]


@pytest.mark.parametrize("kind,onehot", [("rotated", "rotation"), ("cluster", "rotation"), ("cluster", "equality"),
                                         ("cluster-kv", "rotation"), ("token", "rotation"), ("token", "equality")])
def test_gather_attends_exactly_the_first_the_picked_and_the_last_clusters(kind, onehot):
    rng = np.random.default_rng(28)
    L, index = 100, np.array([[0, 3], [1, 4]])  # fine: 7 clusters of 16, candidates 1..5, last partial (4)
    keys, values = q8(rng.normal(size=(2, HKV, L, D)))
    q = q8(rng.normal(size=(HKV, 2, D)))
    fine = Level(16, 7, 5, 2)
    gather = Gather(kind, onehot)
    s = session(seed=7)
    kv = layer(s, keys, values)
    record = gather.prepare(s, s.input(index, frac_bits=0), fine.n_c, reuse=True)
    assert (record["onehot"] is None) == (kind == "rotated") and ("operand" in record) == (kind == "cluster")
    context, weights = gather.attend(s, s.input(q), kv, SCALE, fine, record)
    tokens = [np.concatenate([np.arange(16), (row[:, None] * 16 + 16 + np.arange(16)).ravel(), np.arange(96, L)])
              for row in index]
    assert weights.shape == (HKV, 2, 16 * 3 + 4)
    ref_ctx, ref_w = dense_over(s, q, keys, values, tokens)
    # the same scores, so the same softmax weights (the gathered variants list first and last before the picks)
    np.testing.assert_array_equal(np.sort(s.reveal(weights), axis=-1), np.sort(ref_w, axis=-1))
    err = np.abs(s.reveal(context) - ref_ctx) / ULP
    assert err.max() <= (0 if kind in ("rotated", "cluster") else 1)  # two value products: floor(a) + floor(b)


# -- cross-layer sharing -------------------------------------------------------------------------------------------
def test_sharing_leaders_and_the_record_a_follower_may_take():
    a = Sharing(True, 2, 2, 30)
    assert [a.leader(i) for i in range(32)][:6] == [0, 1, 2, 2, 4, 4] and a.leader(31) == 31
    assert sum(not a.is_follower(i) for i in range(32)) == 18  # Implementation A
    assert sum(not Sharing(True, 2, 2, None).is_follower(i) for i in range(32)) == 17  # Implementation B
    assert not Sharing(False, 0, 2, None).is_follower(5) and Sharing(True, 1, 3, None).leader(6) == 4
    prefill: dict = {}
    with pytest.raises(RuntimeError, match="prefill the layers in order"):
        a.static_record(Sharing.records(prefill), 3)  # layer 2 has not been prefilled
    Sharing.records(prefill)[2] = {"T": 90, "k": 27, "select": object()}
    assert a.static_record(Sharing.records(prefill), 3) is prefill[STEP_KEY][2]
    assert a.static_record(Sharing.records(prefill), 2) is None  # a leader evicts on its own
    step: dict = {}
    records = Sharing.records(step)
    assert step[STEP_KEY] is records
    lead = {"L": 90, "dense": False, "k": 2, "index": object()}
    records[2] = lead
    assert a.shared(records, 2, 90, 2, can_select=True) is None  # a leader selects
    got = a.shared(records, 3, 90, 2, can_select=False)
    assert got["index"] is lead["index"] and got["shared_from"] == 2 and "shared_from" not in lead
    assert a.shared(records, 3, 91, 2, can_select=True) is None  # another plan (a threshold count): selects
    with pytest.raises(RuntimeError, match="run the layers of a step in order"):
        a.shared(records, 5, 90, 2, can_select=False)  # layer 4's record is missing


def clustered(rng, L, order):
    """Keys of 16-token clusters whose e0 level follows ``order`` (per cluster), small noise."""
    keys = q8(rng.normal(scale=0.02, size=(HKV, L, D)))
    keys[:, :, 0] += q8(np.repeat(order, 16)[:L] / 4)
    return keys


def test_a_follower_attends_its_own_tokens_at_the_leaders_clusters():
    rng = np.random.default_rng(29)
    L = 120  # fine: 8 clusters, candidates 1..6, k = 1 (one level)
    policy = get_policy("mpcache", static=None, cluster_sizes=(16,), ratios=(0.2,), share_from=0,
                        topk_method="sort")
    assert policy.plan(L)[-1].k == 1 and policy.is_follower(1)
    keys = [clustered(rng, L, np.r_[0, 1, 6, 2, 3, 4, 5, 0]), clustered(rng, L, np.r_[0, 6, 1, 2, 3, 4, 5, 0])]
    values = q8(rng.normal(size=(2, HKV, L, D)))
    q = q8(rng.normal(scale=0.02, size=(HKV, 2, D)))
    q[..., 0] = 1.0
    twin = policy.twin()
    lead_choice, own_choice = twin.select(q, keys[0]), twin.select(q, keys[1])
    assert not np.array_equal(lead_choice, own_choice)  # the follower alone would choose otherwise
    s, step = session(seed=8), {}
    out = []
    for i in (0, 1):
        kv = policy.prefill(s, i, layer(s, keys[i][:, :-1], values[i][:, :-1]))
        assert ("summaries" in kv.state) == (i == 0)  # a follower maintains none
        kv = kv.append(s.input(keys[i][:, -1:]), s.input(values[i][:, -1:]))
        mark = len(s.ledger.messages)
        out.append(policy.attend(s, i, s.input(q), kv, SCALE, step))
        scopes = {m.scope for m in s.ledger.messages[mark:]}
        assert any(p.startswith("select/topk") for p in scopes) == (i == 0)  # only the leader selects
    lead, follow = step[STEP_KEY][0], step[STEP_KEY][1]
    assert follow["index"] is lead["index"] and follow["shared_from"] == 0
    np.testing.assert_array_equal(np.sort(s.reveal(lead["index"]) + 1, axis=-1), lead_choice)
    ref_ctx, _ = dense_over(s, q, keys[1], values[1], twin.tokens(lead_choice, L))
    np.testing.assert_array_equal(s.reveal(out[1][0]), ref_ctx)


@pytest.mark.parametrize("static", ["topk", "threshold"])
def test_a_follower_keeps_and_attends_its_leaders_original_positions(static):
    """The reference's index sharing: the follower compacts its own cache to the leader's static positions
    (no importance, no top-k, no count opened) and attends the leader's dynamic picks among them."""
    rng = np.random.default_rng(31)
    T = 160  # kept 48 (+1 appended): fine clusters of 16: 4, candidates 1..2, k = 1
    params = dict(static=static, threshold=0.01, cluster_sizes=(16,), ratios=(0.34,), share_from=0,
                  topk_method="sort")
    policy = get_policy("mpcache", **params)
    w = policy.window(T)
    lead_data, own_data = (planted(rng, T, 48, w) for _ in range(2))
    twin = policy.twin()
    kept = [twin.static_keep(d[0], d[2]) for d in (lead_data, own_data)]
    assert len(kept[0]) == len(kept[1]) == 48 and not np.array_equal(*kept)  # alone it would keep others
    new = [q8(rng.normal(size=(2, HKV, 1, D))) for _ in range(2)]  # each layer's appended key and value
    q = q8(rng.normal(scale=0.3, size=(HKV, 1, D)))
    s, prefill, step, out = session(seed=11), {}, {}, []
    for i, (keys, values, queries, _) in enumerate((lead_data, own_data)):
        kv = layer(s, keys, values)
        kv.state["prompt_queries"] = s.input(queries)
        mark = len(s.ledger.messages)
        kv = policy.prefill(s, i, kv, prefill)
        scopes = {m.scope for m in s.ledger.messages[mark:]}
        evicts = any(p.startswith(("select/static/importance", "select/static/topk", "select/static/threshold"))
                     for p in scopes)
        assert evicts == (i == 0) and any(p.startswith("select/static/gather") for p in scopes)
        assert ("summaries" in kv.state) == (i == 0) and (len(kv.state["leaks"]) == 1) == (i == 0 and
                                                                                          static == "threshold")
        np.testing.assert_array_equal(s.reveal(kv.keys.tensor), keys[:, kept[0]])  # the leader's positions
        kv = kv.append(s.input(new[i][0]), s.input(new[i][1]))
        out.append(policy.attend(s, i, s.input(q), kv, SCALE, step))
    index = np.append(kept[0], T)  # original positions of the compacted caches
    lead_keys = np.concatenate([lead_data[0][:, kept[0]], new[0][0]], axis=1)
    choice = twin.select(q, lead_keys)
    np.testing.assert_array_equal(np.sort(s.reveal(step[STEP_KEY][0]["index"]) + 1, axis=-1), choice)
    tokens = twin.tokens(choice, len(index))
    keys1, values1 = (np.concatenate([own_data[j], new[1][j]], axis=1) for j in (0, 1))
    ref_ctx, _ = dense_over(s, q, keys1, values1, index[tokens])
    np.testing.assert_array_equal(s.reveal(out[1][0]), ref_ctx)


# -- the composition -----------------------------------------------------------------------------------------------
def test_the_policy_builds_its_stages_from_its_fields_and_keeps_no_state():
    policy = get_policy("mpcache", static=None, share_from=0, topk_method="sort")
    assert policy.sharing == Sharing(True, 0, 2, None) and policy.scoring == Similarity("linear", 3, 5)
    assert policy.selection.plan(250) == policy.plan(250)
    assert dataclasses.replace(policy, gather="token").gathering == Gather("token", "rotation")
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.sharing.group = 3
    before = dict(vars(policy))
    rng = np.random.default_rng(30)
    keys, values = q8(rng.normal(size=(2, HKV, 100, D)))
    s, step = session(seed=9), {}
    kv = policy.prefill(s, 0, layer(s, keys[:, :-1], values[:, :-1]))
    kv = kv.append(s.input(keys[:, -1:]), s.input(values[:, -1:]))
    context, weights = policy.attend(s, 0, s.input(q8(rng.normal(size=(HKV, 2, D)))), kv, SCALE, step)
    kv = policy.update(s, 0, kv, weights)
    assert vars(policy) == before and set(step) == {STEP_KEY}  # state went to kv.state and the step dict only
    assert [summ.G for summ in kv.state["summaries"]] == [100 // 32, math.ceil(100 / 16)]
