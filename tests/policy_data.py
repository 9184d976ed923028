"""Data for the KV-policy matrix (``tests/test_policy_matrix.py``): random, planted-heavy and clustered caches.

Not a test module (pytest collects only ``test_*.py``); the matrix imports it as ``from policy_data import ...``
(pytest puts ``tests/`` on the path).

Every builder returns the same shapes for a policy, so the matrix can check that the openings do not depend on
the data. Values are multiples of 2^-8 (``q8``): exact at f = 16, and so is every product of two of them.

Why structured data: the twins decide with error intervals. The eviction twins (h2o, tova, snapkv) and
mpcache's static top-k rank softmax weights, whose derived bound (``protocols.nonlinear.Twin``: the exp and
Goldschmidt reciprocal replays) is a few percent of each weight; quest, naive-dynamic and mpcache's cluster
selection rank q K^T-like scores whose bound is 1 or 2 ULPs. Random weights' neighbouring order statistics
are closer than a few percent, so on random data the softmax-ranked decisions are almost never certain. The
structured builders make every key's logit a clear function of its e0 component, which every query follows
(``_along_e0``: logit ~ q0 k0 / sqrt(d) with q0 in [0.9, 1.1]; the other components add under 0.2), and put
each softmax-ranked decision between planted or hot tokens and light ones (0.7 or more apart in logit:
weights 2x apart or more) or between distinct planted levels (0.18 or more apart where a step must evict the
weakest planted token: weights 1.2x apart).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

H, G, D = 2, 2, 8  # KV heads, query heads per KV head, head dimension
STEPS = 3  # decode steps per run


def q8(x):
    """Round to a multiple of 2^-8: exact at f = 16, and so are products of two such values."""
    return np.round(np.asarray(x, dtype=np.float64) * 256) / 256


@dataclass
class Data:
    K: np.ndarray  # (H, T0 + STEPS, D): prompt keys, then one new key per decode step
    V: np.ndarray
    prompt_q: np.ndarray | None  # (H, G * w, D), w = policy.prompt_queries(T0)
    q: np.ndarray  # (STEPS, H, G, D)


def _along_e0(rng, shape):
    """Queries close to e0 (component 0 in [0.9, 1.1], the rest small): all of them rank keys alike."""
    x = rng.normal(scale=0.05, size=shape)
    x[..., 0] = rng.uniform(0.9, 1.1, size=shape[:-1])
    return x


def _spaced_starts(rng, count: int, slots: int, gap: int) -> np.ndarray:
    """``count`` sorted slots of [0, slots), consecutive ones at least ``gap`` apart (uniform over such sets)."""
    span = slots - (count - 1) * (gap - 1)
    assert span >= count, f"{count} groups spaced {gap} apart do not fit in {slots} slots"
    return np.sort(rng.choice(span, size=count, replace=False)) + np.arange(count) * (gap - 1)


def random_data(T0: int, w: int, rng) -> Data:
    """Normal keys, values and queries: an extra check (the twin cannot decide most softmax rankings here)."""
    n = T0 + STEPS
    V = rng.normal(size=(H, n, D))
    K = rng.normal(size=(H, n, D))
    prompt_q, q = rng.normal(size=(H, G * w, D)), rng.normal(size=(STEPS, H, G, D))
    return Data(q8(K), q8(V), q8(prompt_q) if w else None, q8(q))


def heavy_data(T0: int, w: int, rng, *, heavy: int, tail: int = 0, run: int = 1, shared: bool = False) -> Data:
    """Planted heavy tokens: ``heavy`` of them in runs of ``run`` adjacent tokens, placed in [0, T0 - tail), at
    the same positions in every head if ``shared``.

    logit ~ level for the planted tokens (distinct levels in [1.5, 3.5]), |logit| < 0.2 for the others; decode
    token 1 is heavier than every planted one (it displaces the weakest where a policy ranks it).
    """
    n = T0 + STEPS
    V = rng.normal(size=(H, n, D))
    K = rng.normal(scale=0.3, size=(H, n, D))
    K[..., 0] = rng.uniform(-0.5, 0.5, size=(H, n))
    runs = heavy // run
    gap = run + 2 if run > 1 else 1  # runs at least two light tokens apart: pooled scores never mix two
    # runs that pooling must keep whole have close levels, so that a run's edge outscores any run's neighbour
    lo, hi = (2.0, 2.3) if run > 1 else (1.5, 3.5)
    starts = _spaced_starts(rng, runs, T0 - tail - run + 1, gap)
    for h in range(H):
        if h and not shared:
            starts = _spaced_starts(rng, runs, T0 - tail - run + 1, gap)
        levels = rng.permutation(np.linspace(lo, hi, runs))
        for s0, level in zip(starts, levels):
            K[h, s0 : s0 + run, 0] = level * np.sqrt(D)
    K[:, T0 + 1, 0] = 4.0 * np.sqrt(D)
    prompt_q, q = _along_e0(rng, (H, G * w, D)), _along_e0(rng, (STEPS, H, G, D))
    return Data(q8(K), q8(V), q8(prompt_q) if w else None, q8(q))


def clustered_data(T0: int, w: int, rng, *, size: int, hot: int, tail: int = 0, apart: bool = False,
                   shared: bool = False) -> Data:
    """Well-separated clusters: the keys come in runs of ``size`` adjacent tokens (aligned with multiples of
    ``size``, so with quest's pages and mpcache's finest clusters when ``size`` is theirs), each spread 0.1
    around its own centre (unit normal). ``hot`` complete clusters in [0, T0 - tail) have a centre with a
    large e0 component (logit ~ level: distinct levels in [1.5, 3.5], or in [2.0, 2.3] if ``apart``), the
    others a small one; the decode tokens fall in cold clusters. Hot clusters are at the same positions in
    every head if ``shared`` (a policy that keeps one index for all heads), and at least one cold cluster
    apart if ``apart`` (pooling: a pooled score then never mixes two hot clusters, and their close levels make
    a hot edge token, pooled with one cold neighbour, outscore any cold neighbour, pooled with one hot token).

    Every ranking then separates whole clusters. Measured over 40 seeds: cold logits |x| < 0.45, hot ones
    >= 1.15 (weights 2x apart or more); hot levels at most 4 per policy in the table but mpcache's, 0.67
    apart, and mpcache's cluster selection ranks 1-ULP scores (any distinct levels decide it). So a policy
    keeping ``hot`` clusters' worth of tokens keeps the hot ones, one keeping fewer keeps the highest levels,
    and a per-step argmin over hot tokens and a cold one evicts the cold one.
    """
    n = T0 + STEPS
    V = rng.normal(size=(H, n, D))
    centres = rng.normal(size=(H, -(-n // size), D))
    centres[..., 0] = rng.uniform(-0.5, 0.5, size=centres.shape[:2])
    slots = (T0 - tail) // size  # complete clusters before the tail
    lo, hi = (2.0, 2.3) if apart else (1.5, 3.5)
    starts = _spaced_starts(rng, hot, slots, 2 if apart else 1)
    for h in range(H):
        if h and not shared:
            starts = _spaced_starts(rng, hot, slots, 2 if apart else 1)
        centres[h, starts, 0] = rng.permutation(np.linspace(lo, hi, hot)) * np.sqrt(D)
    K = np.repeat(centres, size, axis=1)[:, :n] + rng.normal(scale=0.1, size=(H, n, D))
    prompt_q, q = _along_e0(rng, (H, G * w, D)), _along_e0(rng, (STEPS, H, G, D))
    return Data(q8(K), q8(V), q8(prompt_q) if w else None, q8(q))
