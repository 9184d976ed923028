"""Dynamic selection policies (quest, naive-dynamic): decisions equal their twins', attention within a derived
fixed-point bound, backends agree, costs as the docstrings state, hyperparameters validated."""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
from mpcache import ModelConfig, decode_step, get_model, prepare
from mpcache.policies import LayerKV, NaiveDynamicPolicy, QuestPolicy, get_policy
from mpcache.policies.dynamic import twin_page_summaries
from protocols.nonlinear import NonlinearConfig
from protocols.registry import REGISTRY

TINY = ModelConfig("tiny-gqa", 1, 4, 8, 32, 64, "silu", "rmsnorm", kv_heads=2)  # h = 2 KV heads, g = 2, d = 8
H, G, D = 2, 2, 8
F = 16
SCALE = 1 / np.sqrt(D)


def _enc(x):
    """The fixed-point encoding share_input applies (round to nearest at f bits)."""
    return np.rint(np.asarray(x) * 2.0**F) / 2.0**F


def _msb_elements(cost) -> float:
    """Comparisons in a cost: party 0's bits over one msb element's declared bits."""
    return cost.sent_bits[0] / REGISTRY["msb"].declared(K=64, N=2, n=1).sent_bits[0]


def _cache(session, keys, values, prefill: int, policy, reuse: bool = True):
    """A cache (masked for reuse, or plain sharings) of the first ``prefill`` tokens, the policy's prefill, then
    one append (+ update) per further token; returns the LayerKV holding every token."""
    wrap = session.reusable if reuse else (lambda t: t)
    kv = LayerKV(wrap(session.input(keys[:, :prefill])), wrap(session.input(values[:, :prefill])),
                 np.arange(prefill))
    kv = policy.prefill(session, 0, kv)
    for t in range(prefill, keys.shape[1]):
        kv = kv.append(session.input(keys[:, t : t + 1]), session.input(values[:, t : t + 1]))
        if t < keys.shape[1] - 1:  # the last token's update runs after attend, as in decode_step
            kv = policy.update(session, 0, kv, None)
    return kv


def _planted(rng, T, winners, alphas, noise=0.05, group_tokens=1):
    """q (h, g, d) and keys (h, T, d): keys are small noise; in KV head i the units of ``winners[i]`` (pages
    of ``group_tokens`` tokens, or single tokens) get alpha times the unit direction of sum_g q, so they win
    the score by several units (margins far above fixed-point error)."""
    q = rng.normal(size=(H, G, D))
    keys = rng.normal(scale=noise, size=(H, T, D))
    for i in range(H):
        u = q[i].sum(axis=0) / np.linalg.norm(q[i].sum(axis=0))
        for unit, a in zip(winners[i], alphas):
            keys[i, unit * group_tokens : (unit + 1) * group_tokens] += a * u
    return q, keys, rng.normal(size=(H, T, D))


def attention_bound(q, ks, vs, scale, f=F, t=8):
    """Bound on |MPC attention - float attention| per output (h, g, d), for the default softmax (limit exp,
    t squarings; Goldschmidt reciprocal), derived from the error sources in the exp, reciprocal and softmax
    docstrings of protocols/nonlinear/:

    * scores s = scale q.k: input encoding (2^-(f+1) per entry of q and k), the q.K^T truncation (1 ULP), the
      public scale's encoding and truncation: |ds| <= sig (below); d = s - max moves by up to 2 sig, i.e.
      e^d by a relative 2 sig;
    * exp of d in [-D, 0] (D = the row's spread): b0 = 1 + floor(d / 2^t) is off by < 1 ULP, then t squarings
      each off by <= 1 ULP; an error in b after squaring i (i = 0 for b0) reaches the output multiplied by
      prod 2 b_j = 2^(t-i) E^(1 - 2^(i-t)), E = e^d: sum_i 2^(t-i) E^(1 - 2^(i-t)) ULPs in all; the limit
      itself is e^d e^(-d^2/2^(t+1)/(1 + d/2^t)), a relative error <= d^2 / (2^(t+1) (1 - D/2^t));
    * with e'_j = e_j + a_j: sum_j e'_j v_j / S' - c = sum_j a_j (v_j - c) / S', S' >= S - sum |a|;
    * reciprocal: |y - 1/S| <= 3 ULP + 5e-5 / S (f = 16, 3 Goldschmidt steps), times |sum e' v| <= S' max|v|;
    * the weight product (1 ULP per weight) and the final product (1 ULP, and v's encoding 2^-(f+1)).
    First order in the errors; a factor 1.1 covers the second-order terms (all errors here are below 2%).
    """
    ulp = 2.0**-f
    s = scale * q @ ks.swapaxes(-1, -2)  # (h, g, n)
    n = s.shape[-1]
    l1q = np.abs(q).sum(-1)[..., None]
    l1k = np.abs(ks).sum(-1)[:, None, :]
    sig = scale * (l1q + l1k) * ulp / 2 + 2 * ulp + np.abs(s) * ulp / 2 / scale
    d = s - s.max(axis=-1, keepdims=True)
    spread = -d.min(axis=-1, keepdims=True)
    assert np.all(spread < 2**t / 2), "inputs outside the limit exp's accurate domain"
    E = np.exp(d)
    i = np.arange(t + 1)[:, None, None, None]
    squarings = ulp * (2.0 ** (t - i) * E[None] ** (1 - 2.0 ** (i - t))).sum(axis=0)
    limit = E * d**2 / (2 ** (t + 1) * (1 - spread / 2**t))
    a = squarings + limit + E * 2 * sig.max(axis=-1, keepdims=True)
    S = E.sum(axis=-1, keepdims=True)
    c = (E / S) @ vs  # (h, g, d)
    spread_v = np.abs(vs[:, None, :, :] - c[:, :, None, :])  # (h, g, n, d)
    main = (a[..., None] * spread_v).sum(axis=2) / (S - a.sum(axis=-1, keepdims=True))
    vmax = np.abs(vs).max(axis=1)[:, None, :]
    recip = (3 * ulp * S + 5e-5) * vmax
    products = n * ulp * vmax + ulp + ulp / 2
    return 1.1 * (main + recip + products)


def _match_rows(revealed, keys_enc):
    """Cache positions of each revealed row (h, n, d) by exact equality with the encoded cache (h, T, d)."""
    out = np.empty(revealed.shape[:2], dtype=np.int64)
    for i in range(revealed.shape[0]):
        for j, row in enumerate(revealed[i]):
            hits = np.flatnonzero(np.all(keys_enc[i] == row, axis=-1))
            assert len(hits) == 1, f"gathered row {j} of head {i} is not exactly one cache entry"
            out[i, j] = hits[0]
    return out


# -- (a) + (b): decisions equal the twin's; attention within the derived bound ------------------------------------
@pytest.mark.parametrize("method", ["max", "sort", "shuffle"])
@pytest.mark.parametrize("bound", ["max", "sign"])
def test_quest_selects_the_twins_pages_and_attends_within_the_bound(method, bound):
    # page 8, budget 32: the newest page plus the top 3 of 7 full pages. Prefill 53 tokens (page 6 partial,
    # so prefill pads it), then tokens 53..55 update page 6's running summary, token 56 opens page 7.
    rng = np.random.default_rng(11)
    winners = [(1, 4, 6), (0, 2, 6)]  # page 6 is summarised partly at prefill, partly by the running update
    q, keys, values = _planted(rng, 57, winners, (1.0, 1.5, 2.0), group_tokens=8)
    policy = QuestPolicy(page=8, budget=32, bound=bound, topk_method=method)
    s = mpsim.Session(parties=2, backend="share", seed=5)
    kv = _cache(s, keys, values, 53, policy)
    qs = s.input(q)
    twin = policy.twin()(q, keys, values, SCALE)
    assert [sorted(w) for w in winners] == twin.chosen.tolist()
    got_k, got_v = policy.select(s, qs, kv)
    assert got_k.shape == (H, 3 * 8 + 1, D)
    pos = _match_rows(s.reveal(got_k), _enc(keys))  # exact: the one-hot is integer, no truncation
    np.testing.assert_array_equal(np.sort(pos, axis=1), twin.positions)
    np.testing.assert_array_equal(s.reveal(got_v), np.take_along_axis(_enc(values), pos[:, :, None], axis=1))
    context, weights = policy.attend(s, 0, qs, kv, SCALE, {})
    assert weights.shape == (H, G, 25)
    ks, vs = (np.take_along_axis(a, twin.positions[:, :, None], axis=1) for a in (keys, values))
    bound_ = attention_bound(q, ks, vs, SCALE)
    assert bound_.max() < 0.05  # the check means something
    err = np.abs(s.reveal(context) - twin.context)
    assert np.all(err <= bound_), (err.max(), bound_.min())


def test_quest_summaries_track_prefill_padding_running_updates_and_new_pages():
    rng = np.random.default_rng(2)
    keys, values = rng.normal(size=(H, 60, D)), rng.normal(size=(H, 60, D))
    policy = QuestPolicy(page=8, budget=16)
    s = mpsim.Session(parties=2, backend="share", seed=1)
    kv = _cache(s, keys, values, 45, policy)  # prefill 45 (pages 0..4 full, 5 partial), tokens 45..59
    kv = policy.update(s, 0, kv, None)
    rmax, rmin = twin_page_summaries(_enc(keys), 8)
    np.testing.assert_array_equal(s.reveal(kv.state["quest_max"]), rmax)  # max and min are exact
    np.testing.assert_array_equal(s.reveal(kv.state["quest_min"]), rmin)
    longer = s.reusable(s.input(rng.normal(size=(H, 80, D))))  # page 8 skipped: newest is 9
    with pytest.raises(ValueError, match="update must run"):
        policy.update(s, 0, LayerKV(longer, longer, None, dict(kv.state)), None)
    with pytest.raises(ValueError, match="prefill"):
        policy.attend(s, 0, s.input(rng.normal(size=(H, G, D))), LayerKV(kv.keys, kv.values), SCALE, {})


def test_quest_on_random_keys_matches_the_twin_where_the_margin_is_clear():
    """Random keys, a plain (not reused) cache: Beaver gathers and summaries over ordinary sharings."""
    rng = np.random.default_rng(7)
    q, keys, values = rng.normal(size=(H, G, D)), rng.normal(size=(H, 64, D)), rng.normal(size=(H, 64, D))
    policy = QuestPolicy(page=8, budget=24, topk_method="sort")
    s = mpsim.Session(parties=2, backend="share", seed=3)
    kv = _cache(s, keys, values, 60, policy, reuse=False)
    twin = policy.twin()(q, keys, values, SCALE)
    got_k, _ = policy.select(s, s.input(q), kv)
    pos = np.sort(_match_rows(s.reveal(got_k), _enc(keys)), axis=1)
    ranked = np.sort(twin.scores, axis=1)[:, ::-1]
    for i in range(H):  # a head whose k-th and (k+1)-th scores nearly tie may differ by rounding; none here
        assert ranked[i, 1] - ranked[i, 2] > 1e-3
        np.testing.assert_array_equal(pos[i], twin.positions[i])


@pytest.mark.parametrize("reuse", [True, False])
def test_naive_dynamic_selects_the_twins_tokens_and_attends_within_the_bound(reuse):
    rng = np.random.default_rng(4)
    tokens = [rng.choice(56, size=6, replace=False) for _ in range(H)]
    q, keys, values = _planted(rng, 57, tokens, np.linspace(0.8, 1.3, 6), noise=0.2)
    policy = NaiveDynamicPolicy(budget=6, topk_method="max")
    s = mpsim.Session(parties=2, backend="share", seed=9)
    kv = _cache(s, keys, values, 50, policy, reuse=reuse)
    qs = s.input(q)
    twin = policy.twin()(q, keys, values, SCALE)
    np.testing.assert_array_equal(twin.chosen, np.sort(np.stack(tokens), axis=1))
    got_k, got_v = policy.select(s, qs, kv)
    pos = _match_rows(s.reveal(got_k), _enc(keys))
    np.testing.assert_array_equal(np.sort(pos, axis=1), twin.positions)
    np.testing.assert_array_equal(s.reveal(got_v), np.take_along_axis(_enc(values), pos[:, :, None], axis=1))
    context, weights = policy.attend(s, 0, qs, kv, SCALE, {})
    assert weights.shape == (H, G, 6)
    ks, vs = (np.take_along_axis(a, twin.positions[:, :, None], axis=1) for a in (keys, values))
    err = np.abs(s.reveal(context) - twin.context)
    assert np.all(err <= attention_bound(q, ks, vs, SCALE))


def test_short_caches_attend_densely_without_selection():
    rng = np.random.default_rng(0)
    keys, values, q = rng.normal(size=(H, 20, D)), rng.normal(size=(H, 20, D)), rng.normal(size=(H, G, D))
    for policy in (QuestPolicy(page=8, budget=24), NaiveDynamicPolicy(budget=20)):
        s = mpsim.Session(parties=2, backend="ideal", seed=0)
        kv = _cache(s, keys, values, 19, policy)
        mark = s.mark()
        _, weights = policy.attend(s, 0, s.input(q), kv, SCALE, {})
        assert weights.shape == (H, G, 20) and s.cost(scope="select", since=mark).total_bits == 0
        np.testing.assert_array_equal(policy.twin()(q, keys, values, SCALE).positions, np.tile(np.arange(20), (H, 1)))


# -- (c) backends agree end to end --------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", [
    QuestPolicy(page=8, budget=24, topk_method="max"),
    QuestPolicy(page=8, budget=16, bound="sign", topk_method="sort"),
    NaiveDynamicPolicy(budget=12, topk_method="sort"),
])
def test_share_ideal_and_count_ledgers_are_identical(policy):
    ledgers = []
    for backend in ("share", "ideal", "count"):
        s = mpsim.Session(parties=2, backend=backend, seed=4)
        run = prepare(s, TINY, 46, policy=policy, attention_only=True)
        for _ in range(3):  # 47..49 tokens: running updates, and with page 8 a page opening at 49
            decode_step(run)
        ledgers.append([(m.scope, m.op, m.depth, m.src, m.dst, m.bits, m.phase) for m in s.ledger.messages])
        assert s.cost(scope="select/topk").total_bits > 0
    assert ledgers[0] == ledgers[1] == ledgers[2]


# -- (d) costs ------------------------------------------------------------------------------------------------------
def _one_step(model, seq, policy, reuse=True):
    s = mpsim.Session(parties=2, backend="count", seed=0)
    run = prepare(s, model, seq, policy=policy, attention_only=True, reuse=reuse)
    mark = s.mark()
    decode_step(run)
    return s, mark


def test_naive_dynamic_costs_more_than_full_attention():
    """Claim (b) of the paper, on the proxy model at 1024 tokens with a 25% budget."""
    proxy = get_model("mpcache-proxy")
    full, fm = _one_step(proxy, 1023, "full")
    naive, nm = _one_step(proxy, 1023, NaiveDynamicPolicy(budget=256))
    f, n = full.cost(since=fm), naive.cost(since=nm)
    assert n.total_bits > 10 * f.total_bits and n.rounds > f.rounds
    assert naive.cost(scope="select/gather", since=nm).total_bits > f.total_bits  # the token-level one-hot alone


@pytest.mark.parametrize("reuse", [True, False])
def test_quest_selection_costs_scale_as_documented(reuse):
    h, g, d, page, k = TINY.n_kv_heads, TINY.heads // TINY.n_kv_heads, TINY.head_dim, 8, 3
    Hq = h * g
    qk = set()
    for seq in (63, 127):  # after the append T = 64 or 128: C' = 7 or 15 candidates, the newest page holds 8
        for bound, comparisons in (("max", lambda c: Hq * c * d), ("sign", lambda c: Hq * d)):
            s, mark = _one_step(TINY, seq, QuestPolicy(page=page, budget=32, bound=bound), reuse=reuse)
            cand = (seq + 1) // page - 1
            assert _msb_elements(s.cost(scope="select/similarity/" + ("maximum" if bound == "max" else "relu") + "/msb", since=mark)) == comparisons(cand)
            gather = s.cost(scope="select/gather", since=mark).sent_bits[0]
            assert gather == 2 * 64 * (h * k * cand + (0 if reuse else h * cand * page * d))
            assert _msb_elements(s.cost(scope="select/summary_update/maximum/msb", since=mark)) == 2 * h * d  # running max/min
            n = k * page + 8  # attended tokens: 3 gathered pages and the newest (full) page
            qk_bits = s.cost(scope="attention/qk", since=mark).sent_bits[0]
            assert qk_bits == 64 * (Hq * d + h * n * d)
            qk.add(qk_bits)
    assert len(qk) == 1  # attention proportional to the budget, independent of T
    # A token that opens a page costs no summary comparison.
    s, mark = _one_step(TINY, 64, QuestPolicy(page=page, budget=32))
    assert s.cost(scope="select/summary_update", since=mark).total_bits == 0


def test_max_bound_needs_comparisons_a_linear_similarity_does_not():
    """MPCache's point (d): q.(a r_max + (1-a) r_min) is one product with no comparison; the max bound needs
    H C d comparisons."""
    rng = np.random.default_rng(1)
    keys, values, q = rng.normal(size=(H, 64, D)), rng.normal(size=(H, 64, D)), rng.normal(size=(H, G, D))
    policy = QuestPolicy(page=8, budget=24)
    s = mpsim.Session(parties=2, backend="ideal", seed=0)
    kv = _cache(s, keys, values, 64, policy)
    qs = s.input(q)
    rmax, rmin = kv.state["quest_max"][:, :7], kv.state["quest_min"][:, :7]
    mark = s.mark()
    with s.scope("bound"):
        policy.similarity(qs, rmax, rmin)
    with s.scope("linear"):
        lin = qs @ (rmax * 0.6 + rmin * 0.4).swapaxes(-1, -2)
    assert _msb_elements(s.cost(scope="bound/maximum/msb", since=mark)) == H * G * 7 * D
    assert s.cost(scope="linear/msb", since=mark).total_bits == 0
    assert 0 < s.cost(scope="linear", since=mark).total_bits < s.cost(scope="bound", since=mark).total_bits
    assert lin.shape == (H, G, 7)


# -- (e) validation -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, params", [
    ("quest", {"page": 0}), ("quest", {"page": 8, "budget": 4}), ("quest", {"budget": 2.5}),
    ("quest", {"page": True}), ("quest", {"bound": "mean"}), ("quest", {"topk_method": "heap"}),
    ("naive-dynamic", {"budget": 0}), ("naive-dynamic", {"budget": "8"}), ("naive-dynamic", {"topk_method": None}),
])
def test_bad_hyperparameters_raise(name, params):
    with pytest.raises(ValueError):
        get_policy(name, **params)


def test_registered_with_defaults():
    assert get_policy("quest") == QuestPolicy(page=16, budget=256, bound="max", topk_method="auto")
    assert get_policy("naive-dynamic") == NaiveDynamicPolicy(budget=256)
    assert QuestPolicy(page=16, budget=64).plan(100) == (6, 3, 96)  # 7 pages: 6 candidates, 3 chosen + newest
    assert NonlinearConfig().exp_iters == 8  # attention_bound assumes the default softmax
