"""H2O, TOVA and SnapKV under MPC: the secret selection equals the plaintext twin's, kept counts equal the
budgets, ledgers agree across backends, and the eviction scopes cost exactly what the docstrings state."""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
from mpcache import ModelConfig, decode_step, get_model, prepare
from mpcache.policies import POLICIES, EvictionTwin, LayerKV, get_policy
from mpsim.ledger import Cost
from protocols.registry import REGISTRY
from protocols.reuse import MaskedOperand

H, G, D = 2, 2, 8  # KV heads, query heads per KV head, head dimension of the planted caches
TINY = ModelConfig("tiny-gqa", 1, H * G, 16, 64, 128, "silu", "rmsnorm", kv_heads=H)


# -- planted caches -------------------------------------------------------------------------------------------
def planted(seed, T0, steps, w, heavy, new_levels, base=1.5, gap=0.5):
    """Keys whose logit against every query is set by a per-head level: ``heavy[h] = {position: level}``
    (logit base + gap * level), light tokens in [-0.2, 0.2]; decode token t of head h has level
    ``new_levels[h][t]`` (0: light). Queries are ~(1, 0, ..., 0); values carry their position in column 0, so
    revealing a cache's column 0 names the kept positions exactly (gathers and shifts are exact ring
    arithmetic). w = prompt queries (position-major rows, as the policies expect)."""
    rng = np.random.default_rng(seed)
    n = T0 + steps
    logit = rng.uniform(-0.2, 0.2, size=(H, n))
    for h in range(H):
        for j, level in heavy[h].items():
            logit[h, j] = base + gap * level
        for t, level in enumerate(new_levels[h]):
            if level:
                logit[h, T0 + t] = base + gap * level
    K = rng.normal(scale=0.05, size=(H, n, D))
    K[..., 0] = logit * np.sqrt(D)  # q[0] ~ 1 and the 1/sqrt(D) scale give the planted logit
    V = rng.normal(size=(H, n, D))
    V[..., 0] = np.arange(n)

    def queries(rows):
        q = rng.normal(scale=0.05, size=(H, rows, D))
        q[..., 0] = 1.0 + rng.uniform(-0.1, 0.1, size=(H, rows))
        return q

    return dict(K=K[:, :T0], V=V[:, :T0], Q=queries(G * w) if w else None,
                steps=[(queries(G), K[:, T0 + t : T0 + t + 1], V[:, T0 + t : T0 + t + 1]) for t in range(steps)])


def scattered(seed, lo, hi, k, extra=()):
    """Per head, k heavy positions in [lo, hi) with distinct levels 1..k (plus ``extra`` (position, level))."""
    rng = np.random.default_rng(100 + seed)
    sets = []
    for _ in range(H):
        pos = rng.choice(np.arange(lo, hi), size=k, replace=False)
        sets.append({int(p): int(level) for p, level in zip(pos, rng.permutation(k) + 1)} | dict(extra))
    return sets


def clusters(seed, n, count, width, spike=None, levels=False):
    """Per head, ``count`` runs of ``width`` heavy positions in [0, n), at least two light tokens apart (so a
    pooled score never mixes two runs), one level per run; optionally one isolated token of level ``spike``,
    two light tokens away from any run. Runs have level 1 unless ``levels``."""
    rng = np.random.default_rng(200 + seed)
    sets = []
    for _ in range(H):
        while True:
            starts = np.sort(rng.choice(np.arange(n - width + 1), size=count, replace=False))
            if np.all(np.diff(starts) >= width + 2):
                break
        lv = rng.permutation(count) + 1 if levels else np.ones(count)
        run = {int(j): float(level) for level, s0 in zip(lv, starts) for j in range(s0, s0 + width)}
        if spike is not None:
            free = [j for j in range(n) if all(abs(j - r) > 2 for r in run)]
            run[int(rng.choice(free))] = spike
        sets.append(run)
    return sets


T0, STEPS = 24, 4
CASES = {
    # heavy hitters scattered over the non-recent prompt, a strong token inside the recent window that must
    # displace one when it leaves it, and strong decode tokens arriving later
    "h2o": (dict(heavy=6, recent=3, prompt_window=4),
            lambda s: planted(s, T0, STEPS, 4, scattered(s, 0, T0 - 3, 6, [(T0 - 2, 7)]),
                              [[0, 4, 0, 8], [3, 0, 9, 0]])),
    # exactly `budget` strong prompt tokens; decode tokens either light (evicted at once) or strong
    "tova": (dict(budget=8),
             lambda s: planted(s, T0, STEPS, 1, scattered(s, 0, T0, 8), [[0, 4.5, 0, 9], [3.5, 0, 9, 0]])),
    # three runs of three strong tokens in the prefix (logit 2) and one isolated token stronger than any of
    # them (2.4): pooling with kernel 3 keeps exactly the runs, and drops the isolated token that a top-k
    # without pooling would keep
    "snapkv": (dict(budget=12, window=3, kernel=3),
               lambda s: planted(s, 32, 2, 3, clusters(s, 29, 3, 3, spike=1.8), [[0, 0], [0, 0]])),
}


def run_mpc(policy, data, backend="ideal", parties=2, reuse=True, seed=7):
    """Drive the policy's hooks as ``decode_step`` does; return kept positions per step and the lengths."""
    s = mpsim.Session(parties=parties, backend=backend, seed=seed)
    K, V = s.input(data["K"]), s.input(data["V"])
    kv = LayerKV(s.reusable(K) if reuse else K, s.reusable(V) if reuse else V, np.arange(data["K"].shape[1]))
    if data["Q"] is not None:
        kv.state["prompt_queries"] = s.input(data["Q"])

    def kept(kv):
        assert isinstance(kv.keys, MaskedOperand) == reuse and isinstance(kv.values, MaskedOperand) == reuse
        values = kv.values.tensor if reuse else kv.values
        return [np.sort(np.rint(row).astype(np.int64)) for row in s.reveal(values[..., 0])]

    kv = policy.prefill(s, 0, kv)
    out, lengths, public = [kept(kv)], [kv.length], [kv.positions is not None]
    for q, k, v in data["steps"]:
        kv = kv.append(s.input(k), s.input(v))
        _, weights = policy.attend(s, 0, s.input(q), kv, 1 / np.sqrt(D), {})
        kv = policy.update(s, 0, kv, weights)
        out.append(kept(kv))
        lengths.append(kv.length)
        public.append(kv.positions is not None)
    return out, lengths, public


def run_twin(policy, data):
    twin = policy.twin(frac_bits=16)
    cache = twin.prefill(data["K"], data["V"], data["Q"])
    out = [cache.kept()]
    for q, k, v in data["steps"]:
        cache, _, _ = twin.step(cache, q, k, v)
        out.append(cache.kept())
    return out, twin


# -- (a) + (b): the MPC selection equals the twin's; kept counts equal the budget -----------------------------
@pytest.mark.parametrize("backend,parties,reuse", [("share", 2, True), ("share", 3, True), ("ideal", 2, False)])
@pytest.mark.parametrize("name", sorted(CASES))
def test_selection_equals_twin_on_planted_caches(name, backend, parties, reuse):
    params, make = CASES[name]
    policy = get_policy(name, **params, method="max")
    data = make(0)
    expected, twin = run_twin(policy, data)
    # Every decision's winners are separated from the rest by more than the derived bound on the MPC scores'
    # error (the twin's fixed-point analysis), so no MPC run can decide otherwise: the comparison below is
    # deterministic, not lucky.
    assert twin.decisions and twin.certain, twin.decisions
    got, lengths, public = run_mpc(policy, data, backend, parties, reuse)
    for step, (e, g) in enumerate(zip(expected, got)):
        for h in range(H):
            np.testing.assert_array_equal(g[h], e[h], err_msg=f"{name} step {step} head {h}")
    if name == "snapkv":
        assert lengths == [12 + t for t in range(len(lengths))]  # budget, then one appended token per step
        runs = {j for j in range(29) if 1.0 < data["K"][0, j, 0] / np.sqrt(D) < 2.2}  # planted run logits
        assert set(expected[0][0][:9].tolist()) == runs  # the planted runs are what survives
    else:
        budget = params.get("budget") or params["heavy"] + params["recent"]
        assert lengths == [budget] * len(lengths)
    assert not any(public)  # positions are secret once anything was evicted


def test_twins_decide_differently_from_streaming():
    """The planted data exercises real choices: the kept sets are neither a prefix nor the recent window."""
    params, make = CASES["h2o"]
    out, _ = run_twin(get_policy("h2o", **params), make(0))
    for h in range(H):
        final = out[-1][h]
        assert final[-3:].tolist() == [25, 26, 27]  # the recent window
        assert T0 - 2 in final  # the strong token of the prompt's recent window displaced a heavy hitter
        assert not np.array_equal(final[:6], np.sort(list(scattered(0, 0, T0 - 3, 6)[h])))


def test_snapkv_pooling_decides():
    """Without pooling (kernel 1) the isolated strong token would be kept, displacing a run member (the runs
    are level, so which member is a near-tie: only the pooled decision is certain)."""
    data = CASES["snapkv"][1](0)
    logits = data["K"][..., 0] / np.sqrt(D)
    with_pool, twin = run_twin(get_policy("snapkv", budget=12, window=3, kernel=3), data)
    without, _ = run_twin(get_policy("snapkv", budget=12, window=3, kernel=1), data)
    assert twin.certain
    for h in range(H):
        spike = int(np.argmax(logits[h, :29]))
        assert logits[h, spike] > 2.2 and spike in without[0][h] and spike not in with_pool[0][h]


def test_h2o_short_prompt_keeps_public_positions_until_the_first_eviction():
    policy = get_policy("h2o", heavy=4, recent=2, prompt_window=3, method="max")
    data = planted(3, 5, 3, 3, scattered(3, 0, 3, 2), [[0, 2, 0], [1, 0, 0]])
    expected, twin = run_twin(policy, data)
    assert twin.certain
    got, lengths, public = run_mpc(policy, data, "ideal")
    assert lengths == [5, 6, 6, 6] and public == [True, True, False, False]
    for e, g in zip(expected, got):
        for h in range(H):
            np.testing.assert_array_equal(g[h], e[h])


def test_causal_prefill_scores_match_the_twin():
    """H2O's prefill scores: causal attention of the window queries, summed; the MPC values stay within the
    twin's derived error bound of the exact ones."""
    policy = get_policy("h2o", heavy=30, recent=2, prompt_window=5)
    data = planted(1, 20, 0, 5, scattered(1, 0, 18, 4), [[], []])
    s = mpsim.Session(parties=2, backend="share", seed=2)
    kv = LayerKV(s.reusable(s.input(data["K"])), s.reusable(s.input(data["V"])), np.arange(20))
    kv.state["prompt_queries"] = s.input(data["Q"])
    out = policy.prefill(s, 0, kv)  # 20 <= budget: nothing evicted, scores kept
    assert "prompt_queries" not in out.state and list(out.positions) == list(range(20))
    twin = policy.twin(frac_bits=16).prefill(data["K"], data["V"], data["Q"])
    got = s.reveal(out.state["scores"])
    err = np.abs(got - twin.state["scores"])
    assert np.all(err <= twin.state["scores_err"]), (err.max(), twin.state["scores_err"].min())
    # every one of the G * w causal softmax rows sums to 1
    np.testing.assert_allclose(twin.state["scores"].sum(axis=1), G * 5)


# -- (c): ledgers agree across backends ---------------------------------------------------------------------
POLICY_PARAMS = {"h2o": dict(heavy=6, recent=4, prompt_window=5, method="max"),
                 "tova": dict(budget=10, method="max"),
                 "snapkv": dict(budget=12, window=4, kernel=3, method="max")}


@pytest.mark.parametrize("name", sorted(POLICY_PARAMS))
def test_ledgers_identical_across_backends_and_kept_counts(name):
    ledgers = []
    for backend in ("share", "ideal", "count"):
        s = mpsim.Session(parties=2, backend=backend, seed=5)
        run = prepare(s, TINY, 40, policy=get_policy(name, **POLICY_PARAMS[name]))
        lengths = [run.caches[0].length]
        for _ in range(2):
            decode_step(run)
            lengths.append(run.caches[0].length)
        ledgers.append([(m.scope, m.op, m.depth, m.call, m.src, m.dst, m.bits, m.phase) for m in s.ledger.messages])
        expected = [12, 13, 14] if name == "snapkv" else [10, 10, 10]
        assert lengths == expected, (backend, lengths)
    assert ledgers[0] == ledgers[1] == ledgers[2]


def test_three_party_share_ledger_matches_count():
    ledgers = []
    for backend in ("share", "count"):
        s = mpsim.Session(parties=3, backend=backend, seed=5)
        run = prepare(s, TINY, 24, policy=get_policy("h2o", heavy=5, recent=3, prompt_window=4, method="max"),
                      attention_only=True)
        decode_step(run)
        ledgers.append([(m.scope, m.op, m.depth, m.src, m.dst, m.bits) for m in s.ledger.messages])
    assert ledgers[0] == ledgers[1]


# -- (d): costs equal the docstrings' statements --------------------------------------------------------------
def _pow2(n):
    return 1 << max(0, (n - 1).bit_length())


def declared_eviction(K, N, heads, m, width, d, reuse):
    """The docstrings' per-step ``select/evict`` cost, from the registry's declared protocol costs: argmin
    over m candidates (a tournament: per level msb + bit_select of (value, index) pairs, then a rotation
    one-hot), one beaver_mul of c (heads, m-1, 1) with the differences (heads, m-1, width), and with reuse two
    mask_operand of the m - 1 shifted rows of K and of V, side by side."""
    R = REGISTRY
    total, c = Cost(), m
    while c > 1:
        p = heads * (c // 2)
        total = total + R["msb"].declared(K, N, n=p) + R["bit_select"].declared(K, N, nb=p, ny=2 * p, n=2 * p)
        c -= c // 2
    total = total + R["onehot_rotation"].declared(K, N, m=heads, T=_pow2(m))
    if "argmin" in R:  # where argmin is registered itself, its declaration is this composition
        L = int(np.ceil(np.log2(m))) if m > 1 else 0
        assert R["argmin"].declared(K, N, rows=heads, n=m, L=L, T=_pow2(m)) == total
    rows = heads * (m - 1)
    total = total + R["beaver_mul"].declared(K, N, nx=rows, ny=rows * width, n=rows * width)
    if reuse:
        remask = R["mask_operand"].declared(K, N, n=rows * d)
        total = total + (remask | remask)
    return total


def _step(model, seq, policy, parties=2, reuse=True, steps=2):
    s = mpsim.Session(parties=parties, backend="count", seed=0)
    run = prepare(s, model, seq, policy=policy, reuse=reuse, attention_only=True)
    for _ in range(steps - 1):
        decode_step(run)
    mark = s.mark()
    decode_step(run)
    return s, run, mark


def _same(measured: Cost, declared: Cost):
    assert (measured.rounds, measured.sent_bits, measured.offline_bits) == \
        (declared.rounds, declared.sent_bits, declared.offline_bits)


@pytest.mark.parametrize("parties", [2, 3])
@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.parametrize("name", ["h2o", "tova"])
def test_eviction_cost_per_step_is_the_declared_one(name, reuse, parties):
    policy = get_policy(name, **POLICY_PARAMS[name])
    model = TINY.with_layers(2)
    s, run, mark = _step(model, 40, policy, parties, reuse)
    d, hkv = model.head_dim, model.n_kv_heads
    m = policy.heavy + 1 if name == "h2o" else policy.budget + 1
    width = 2 * d + (1 if name == "h2o" else 0)
    declared = declared_eviction(64, parties, hkv, m, width, d, reuse)
    for layer in range(model.layers):
        _same(s.cost(scope=f"step/layer{layer}/select/evict", since=mark), declared)
    L = int(np.ceil(np.log2(m)))
    assert declared.rounds == L * (2 + 6) + 1 + 1 + (1 if reuse else 0)
    assert s.cost(scope="select/summary_update", since=mark).total_bits == 0  # score bookkeeping is local
    assert s.cost(scope="select", since=mark) == s.cost(scope="select/evict", since=mark)


def test_eviction_cost_depends_on_the_budget_not_the_length():
    """Full-size shapes on the count backend: H2O's and TOVA's per-step eviction at 512 and 2048 tokens."""
    model = get_model("llama2-7b").with_layers(1)
    d, hkv = model.head_dim, model.n_kv_heads
    for name, params, m, width in (("h2o", dict(heavy=64, recent=32), 65, 2 * d + 1),
                                   ("tova", dict(budget=96), 97, 2 * d)):
        costs = []
        for seq in (512, 2048):
            s, run, mark = _step(model, seq, get_policy(name, **params, method="max"), steps=1)
            costs.append(s.cost(scope="select/evict", since=mark))
            assert run.caches[0].length == (params.get("budget") or params["heavy"] + params["recent"])
        assert costs[0] == costs[1]
        _same(costs[0], declared_eviction(64, 2, hkv, m, width, d, True))
        # N = 2, K = 64: 433 bits per comparison; the shift opens 1 + w ring elements per shifted slot
        assert costs[0].sent_bits[0] == hkv * ((m - 1) * 433 + int(np.log2(_pow2(m)))) \
            + 64 * hkv * (m - 1) * (1 + width) + 2 * 64 * hkv * (m - 1) * d


@pytest.mark.parametrize("reuse", [True, False])
def test_snapkv_step_costs_exactly_full_attention_over_the_budget(reuse):
    budget = 16
    s, run, mark = _step(TINY, 64, get_policy("snapkv", budget=budget, window=4), reuse=reuse)
    f, frun, fmark = _step(TINY, budget, "full", reuse=reuse)
    assert run.caches[0].length == frun.caches[0].length == budget + 2
    key = lambda m: (m.scope, m.op, m.src, m.dst, m.bits, m.phase)
    assert [key(m) for m in s.ledger.messages[mark:]] == [key(m) for m in f.ledger.messages[fmark:]]
    assert s.cost(since=mark) == f.cost(since=fmark)


def test_snapkv_one_off_gather_is_the_declared_one():
    policy = get_policy("snapkv", budget=16, window=4, kernel=7, method="max")
    s = mpsim.Session(parties=2, backend="count", seed=0)
    prepare(s, TINY, 64, policy=policy, attention_only=True)
    hkv, d, k, n = TINY.n_kv_heads, TINY.head_dim, 16 - 4, 64 - 4
    gather = REGISTRY["matmul_reused"].declared(64, 2, nx=hkv * k * n, n=hkv * k * d)
    remask = REGISTRY["mask_operand"].declared(64, 2, n=hkv * k * d)
    measured = s.cost(scope="/setup/layer0/select/gather")
    assert measured.sent_bits == ((gather + remask) * 2).sent_bits
    assert measured.rounds == 2 and s.cost(scope="/setup/layer0/select/topk").total_bits > 0


# -- (e): hyperparameters, registry, twins ------------------------------------------------------------------
@pytest.mark.parametrize("name,params", [
    ("h2o", dict(heavy=0)), ("h2o", dict(recent=-1)), ("h2o", dict(prompt_window=0)), ("h2o", dict(heavy=2.5)),
    ("h2o", dict(method="fast")), ("tova", dict(budget=0)), ("tova", dict(budget=True)),
    ("snapkv", dict(window=0)), ("snapkv", dict(budget=32, window=32)), ("snapkv", dict(kernel=4)),
    ("snapkv", dict(kernel=0)), ("snapkv", dict(method=None)),
])
def test_bad_hyperparameters_raise(name, params):
    with pytest.raises(ValueError):
        get_policy(name, **params)


def test_registry_and_prompt_query_requests():
    assert {"h2o", "tova", "snapkv"} <= set(POLICIES)
    for name in ("h2o", "tova", "snapkv"):
        assert isinstance(get_policy(name).twin(), EvictionTwin)
    assert get_policy("h2o", prompt_window=32).prompt_queries(20) == 20
    assert get_policy("h2o", prompt_window=None).prompt_queries(100) == 100
    tova = get_policy("tova", budget=10)
    assert tova.prompt_queries(10) == 0 and tova.prompt_queries(11) == 1
    assert get_policy("snapkv", budget=10, window=3).prompt_queries(11) == 3
    with pytest.raises(ValueError, match="prompt_queries"):
        s = mpsim.Session(parties=2, backend="count")
        kv = LayerKV(s.placeholder((1, 12, 4)), s.placeholder((1, 12, 4)), np.arange(12))
        get_policy("snapkv", budget=10, window=3).prefill(s, 0, kv)
