"""Every registered KV policy through one shared, parametrized matrix.

The matrix is parametrized over ``sorted(POLICIES)``, so a newly registered policy is enrolled automatically;
it then fails, with a message saying what to add, until it has an entry in ``MATRIX`` below (small-cache
hyperparameters under which it really selects or evicts at test sizes, its public budget, its twin's kind).
The per-policy test files hold the detailed, policy-specific checks; this file holds the generic ones:

1. each step's attention context equals the float attention over the token positions the policy's plaintext
   twin chose: on the share backend within a tolerance derived in ULPs from the fixed-point replay of the
   attention (``replay_attention``), and on the ideal backend (floor truncations) equal to that replay bit
   for bit, with reuse on and off. The main cases are structured data (``tests/policy_data.py``: planted
   heavy tokens, well-separated clusters) under which the twin decides every choice, so every step of every
   cell is compared; random data are an extra check, compared up to the first step whose decisions are
   within the fixed-point error of a tie, with the compared steps counted and asserted, never skipped;
2. the count backend's ledger equals the share backend's (every message, hence rounds, bits per party and
   offline bits), with reuse on and off;
3. the attended count per head and the cache length equal the policy's public budget at every step, on the
   MPC run and on the twin;
4. the policy is a dataclass registered under its ``name``, has a twin, and rejects bad hyperparameters (a
   wrong-typed value for every field, and the table's out-of-range values) with ValueError;
5. the selection opens nothing data dependent: runs on random, planted-heavy and clustered data (same shapes,
   same seed) open the same sequence of (scope, op, shape, bits) and produce the same ledger, and no hook
   opens a secret in the clear unless it records the opening in ``kv.state["leaks"]``.

Inputs are multiples of 2^-8, so their encoding at f = 16 is exact and so is every product of two of them:
the only differences between an MPC run and exact arithmetic are its truncations (floor or floor + 1) and the
approximations of exp and reciprocal, which the twins of ``protocols.nonlinear`` replay.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import mpsim
from mpcache.policies import POLICIES, EvictionTwin, LayerKV, MPCacheTwin, get_policy
from mpcache.policies.evict import _fxp_weights
from mpsim.testing import capture_openings
from protocols.nonlinear import Twin, twin_softmax
from protocols.reuse import MaskedOperand

from policy_data import D, G, H, STEPS, Data, clustered_data, heavy_data, random_data

F = 16  # fractional bits (the session default at K = 64)
ULP = 2.0**-F
SCALE = 1 / np.sqrt(D)
SEED = 11  # session seed: every run of a policy uses it, whatever the data
STRUCTURED = ("heavy", "clustered")  # the matrix's main cases: every decision certain (tests/policy_data.py)
CASES = ("random",) + STRUCTURED  # random data: an extra check, compared where the twin decides


# -- public budgets (from the public hyperparameters and lengths only) -------------------------------------------
def _no_eviction(p, T):
    return T


def _capped(cap):
    return lambda p, T: min(T, cap(p))


def _quest_attended(p, L):
    candidates, k, newest = p.plan(L)  # the public plan: candidate pages, pages chosen, start of the newest
    return L if k >= candidates else k * p.page + (L - newest)


def _mpcache_prefill(p, T):
    k = p.static_budget(T)
    return T if p.static is None or k >= T else k


def _mpcache_attended(p, L):
    levels = p.plan(L)  # the public plan: per level (size, clusters, candidates, k)
    if levels is None:
        return L
    fine = levels[-1]
    return fine.size * (fine.k + 1) + (L - (fine.G - 1) * fine.size)  # first, k chosen, the (partial) last


# -- the per-policy table ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """What the matrix needs to know about one policy.

    ``params``: small-cache hyperparameters that make it select or evict at ``T0`` prompt tokens (and a
    deterministic top-k method: the randomized one opens comparison outcomes, so its ledger follows the data's
    order and count/share ledgers differ by design). ``kind``: which twin adapter applies ("public": a
    function of positions; "evict": ``EvictionTwin``; "select": per-step ``twin(q, keys, values, scale)``;
    "mpcache": static eviction, then per-step selection). Budgets, from public values only:
    ``prefill_len(policy, T0)`` is the cache length after prefill, ``attended(policy, L)`` the tokens each
    head attends when the cache holds L (after the step's append), ``kept(policy, L)`` the cache length after
    the step's update. ``heavy``: planted heavy tokens (as many as the policy keeps, so that its decisions have
    clear margins), placed in [0, T0 - ``tail``), in runs of ``run`` adjacent tokens, at the same positions in
    every head if ``shared`` (a policy that keeps one index for all heads). ``clusters``: (size, hot) for the
    clustered data: clusters of ``size`` adjacent tokens, ``hot`` of them heavy (at least as many as the policy
    keeps whole, so that every kept or evicted group is decided by clear margins), in [0, T0 - ``tail``), at
    least one cluster apart if ``run`` > 1 (pooling). ``score_ulps``: for "select" and
    "mpcache" twins, the derived bound on |MPC score - exact score| in ULPs (inputs exact, so only truncations
    count). ``bad``: out-of-range hyperparameters. Configurations that declare a leak (e.g. mpcache's
    threshold mode) open data-dependent shapes by design: the table uses non-leaking ones.
    """

    kind: str
    params: dict
    T0: int
    prefill_len: Callable
    attended: Callable
    kept: Callable
    heavy: int
    tail: int = 0
    run: int = 1
    shared: bool = False
    clusters: tuple = (8, 2)
    score_ulps: int = 0
    bad: tuple = ()


MATRIX = {
    "full": Entry("public", {}, 40, _no_eviction, _no_eviction, _no_eviction, heavy=8),
    "streaming": Entry("public", dict(sinks=2, window=24), 48, _capped(lambda p: p.sinks + p.window),
                       _no_eviction, _capped(lambda p: p.sinks + p.window), heavy=8,
                       bad=(dict(sinks=-1), dict(window=0))),
    "h2o": Entry("evict", dict(heavy=8, recent=4, prompt_window=4, method="sort"), 48,
                 _capped(lambda p: p.budget), _no_eviction, _capped(lambda p: p.budget), heavy=8, tail=4,
                 clusters=(4, 3), bad=(dict(heavy=0), dict(recent=-1), dict(prompt_window=0))),
    "tova": Entry("evict", dict(budget=12, method="sort"), 48, _capped(lambda p: p.budget), _no_eviction,
                  _capped(lambda p: p.budget), heavy=12, clusters=(4, 4), bad=(dict(budget=0),)),
    # pooling with kernel 3: heavy tokens in runs of 3, so the pooled top-k keeps whole runs with clear margins
    "snapkv": Entry("evict", dict(budget=16, window=4, kernel=3, method="sort"), 48, _capped(lambda p: p.budget),
                    _no_eviction, _no_eviction, heavy=12, tail=4, run=3, clusters=(4, 3),
                    bad=(dict(window=0), dict(budget=4, window=4), dict(kernel=2))),
    # quest's "max" bound: products at scale 2f (exact), max, sum, one truncation: 1 ULP
    "quest": Entry("select", dict(page=8, budget=32, topk_method="sort"), 61, _no_eviction, _quest_attended,
                   _no_eviction, heavy=8, clusters=(8, 4), score_ulps=1,
                   bad=(dict(page=0), dict(page=8, budget=4), dict(bound="mean"))),
    # q K^T summed over the G query rows of a KV head: G products, each truncated once: G ULPs
    "naive-dynamic": Entry("select", dict(budget=12, topk_method="sort"), 48, _no_eviction,
                           lambda p, L: min(L, p.budget), _no_eviction, heavy=12, clusters=(4, 4), score_ulps=G,
                           bad=(dict(budget=0),)),
    # linear similarity: q summed over the group (exact) @ (3 r_max + 2 r_min) (exact), one truncation: 1 ULP
    "mpcache": Entry("mpcache", dict(cluster_sizes=(16, 8), ratios=(0.5, 0.3), keep_ratio=0.5, static_window=0.1,
                                     topk_method="sort"), 160, _mpcache_prefill, _mpcache_attended,
                     _no_eviction, heavy=80, shared=True, clusters=(8, 10), score_ulps=1,
                     bad=(dict(keep_ratio=0), dict(cluster_sizes=(8, 16)), dict(ratios=(0.5,)), dict(alpha=1.5))),
}

NAMES = sorted(POLICIES)


@pytest.fixture(autouse=True, scope="module")
def _one_kernel_thread():
    """Run numba's parallel kernels on one thread in this module: a share-backend run here makes thousands of
    kernel calls on arrays of tens to hundreds of elements, and waking the second OpenMP worker for each
    (~0.4 ms) made a run about 8x slower on 2 cores (tova: 2.2 s instead of 0.27 s). Results do not depend
    on the thread count (the PRG is a pure function of its counter)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def entry(name: str) -> Entry:
    if name not in MATRIX:
        pytest.fail(f"policy {name!r} is registered but has no entry in MATRIX (tests/test_policy_matrix.py): add "
                    "its small-cache hyperparameters, public budget functions and twin kind", pytrace=False)
    return MATRIX[name]


def make_policy(name: str):
    return get_policy(name, **entry(name).params)


# -- data (built in tests/policy_data.py) ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def data(name: str, case: str) -> Data:
    e, p = entry(name), make_policy(name)
    w = p.prompt_queries(e.T0)
    rng = np.random.default_rng({"random": 1, "heavy": 2, "clustered": 3}[case])
    if case == "random":
        return random_data(e.T0, w, rng)
    if case == "heavy":
        return heavy_data(e.T0, w, rng, heavy=e.heavy, tail=e.tail, run=e.run, shared=e.shared)
    size, hot = e.clusters
    return clustered_data(e.T0, w, rng, size=size, hot=hot, tail=e.tail, apart=e.run > 1, shared=e.shared)


# -- running the policy's hooks as decode_step does, on one layer ---------------------------------------------------
@dataclass
class Run:
    contexts: list  # revealed (H, G, D) per step (None on count)
    attended: list  # attended tokens per head per step (the weights' last axis)
    lengths: list  # cache length after prefill and after each step's update
    messages: list  # the whole ledger
    cost: tuple  # (rounds, sent bits per party, offline bits)
    transcript: list  # openings inside the hooks: (scope, op, to, ((shape, bits), ...), (opened shapes))
    clear_leaks: list  # openings in the clear ("reveal" scopes) inside the hooks
    leaks: tuple  # what the policy declared in kv.state["leaks"]


@functools.lru_cache(maxsize=None)
def run_mpc(name: str, case: str, backend: str, reuse: bool) -> Run:
    policy, d = make_policy(name), data(name, case)
    T0 = entry(name).T0
    s = mpsim.Session(parties=2, backend=backend, seed=SEED)
    opened = capture_openings(s)  # values of every opening, in order
    labels, inner = [], s.channel.open

    def labelled(op, items, to=None, simulate=None):  # and where it happened, what was opened, at what width
        labels.append((s.profiler.path, op, to, tuple((tuple(i.shape), i.width) for i in items)))
        return inner(op, items, to=to, simulate=simulate)

    s.channel.open = labelled
    transcript = []

    def hook(fn, *args):
        start = len(labels)
        out = fn(*args)
        for label, values in zip(labels[start:], opened[start:]):
            transcript.append(label + (tuple(None if v is None else np.shape(v) for v in values),))
        return out

    wrap = s.reusable if reuse else (lambda t: t)
    kv = LayerKV(wrap(s.input(d.K[:, :T0])), wrap(s.input(d.V[:, :T0])), np.arange(T0))
    if d.prompt_q is not None:
        kv.state["prompt_queries"] = s.input(d.prompt_q)
    kv = hook(policy.prefill, s, 0, kv)
    contexts, attended, lengths = [], [], [kv.length]
    for t in range(STEPS):
        kv = kv.append(s.input(d.K[:, T0 + t : T0 + t + 1]), s.input(d.V[:, T0 + t : T0 + t + 1]))
        context, weights = hook(policy.attend, s, 0, s.input(d.q[t]), kv, SCALE, {})
        assert context.shape == (H, G, D) and weights.shape[:2] == (H, G)
        attended.append(weights.shape[-1])
        kv = hook(policy.update, s, 0, kv, weights)
        assert isinstance(kv.keys, MaskedOperand) == reuse, "the cache changed regime (reusable or not)"
        lengths.append(kv.length)
        contexts.append(s.reveal(context))  # after the hooks: not in the transcript (Unrevealed on count)
    c = s.cost()
    return Run(contexts, attended, lengths,
               [(m.scope, m.op, m.depth, m.call, m.src, m.dst, m.bits, m.phase) for m in s.ledger.messages],
               (c.rounds, c.sent_bits, c.offline_bits), transcript,
               [t for t in transcript if "reveal" in t[0].split("/")], tuple(kv.state.get("leaks", ())))


# -- twins ----------------------------------------------------------------------------------------------------------
@dataclass
class TwinTrace:
    positions: list  # per step: the attended original positions per head, (H, n), sorted
    lengths: list  # cache length after prefill and after each step's update
    unclear: list  # per step: None if every decision so far had a clear margin, else why not


def _topk_margin(scores, k):
    """Per head, the gap between the k-th and (k + 1)-th largest score (inf when nothing is left out)."""
    if k >= scores.shape[-1]:
        return np.inf
    srt = -np.sort(-scores, axis=-1)
    with np.errstate(invalid="ignore"):  # -inf marks a non-candidate: the gap to it is inf
        gap = srt[:, k - 1] - srt[:, k]
    return float(np.nanmin(np.where(np.isneginf(srt[:, k]), np.inf, gap)))


def _twin_public(policy, d: Data, T0):
    keep = policy.twin()
    pos = np.asarray(keep(np.arange(T0)))
    trace = TwinTrace([], [len(pos)], [])
    for t in range(STEPS):
        pos = np.append(pos, T0 + t)
        trace.positions.append(np.tile(np.sort(pos), (H, 1)))
        trace.unclear.append(None)
        pos = np.asarray(keep(pos))
        trace.lengths.append(len(pos))
    return trace


def _twin_evict(policy, d: Data, T0):
    twin = policy.twin(frac_bits=F)  # logs every decision with whether its margin beats the derived error
    cache = twin.prefill(d.K[:, :T0], d.V[:, :T0], d.prompt_q)
    trace, why = TwinTrace([], [cache.length], []), None
    if not twin.certain:
        why = "prefill top-k not certain (EvictionTwin: a kept and an evicted score's error intervals overlap)"
    for t in range(STEPS):
        trace.positions.append(np.sort(np.concatenate([cache.positions, np.full((H, 1), T0 + t)], axis=1), axis=1))
        trace.unclear.append(why)
        n = len(twin.decisions)
        cache, _, _ = twin.step(cache, d.q[t], d.K[:, T0 + t : T0 + t + 1], d.V[:, T0 + t : T0 + t + 1])
        if why is None and not all(ok for _, ok in twin.decisions[n:]):
            why = f"step {t} eviction not certain (EvictionTwin: evicted and kept scores' error intervals overlap)"
        trace.lengths.append(cache.length)
    return trace


def _twin_select(policy, d: Data, T0, ulps):
    twin = policy.twin()
    trace, why = TwinTrace([], [T0], []), None
    for t in range(STEPS):
        L = T0 + t + 1
        sel = twin(d.q[t], d.K[:, :L], d.V[:, :L], SCALE)
        if sel.scores is not None and why is None:
            margin = _topk_margin(sel.scores, sel.chosen.shape[1])
            if margin <= 2 * ulps * ULP:
                why = f"step {t}: top-k margin {margin:.3g} <= 2 x {ulps} ULP"
        trace.positions.append(np.sort(sel.positions, axis=1))
        trace.unclear.append(why)
        trace.lengths.append(L)
    return trace


def _mpcache_margins(policy, q, keys):
    """Per choosing level, the smallest gap between the k-th and (k+1)-th candidate score (the twin's
    ``decide``: a level below one that chose ranks only the children of its picks and of the first and last)."""
    twin, levels = policy.twin(), policy.plan(keys.shape[1])
    if levels is None or levels[-1].k == 0:
        return []
    summ, member, out = twin.summaries(keys), None, []
    for i, lv in enumerate(levels):
        last = i == len(levels) - 1
        if not lv.runs_topk and not last:
            member = None if not (0 < lv.n_c and lv.k < lv.n_c) else twin._sinks_only(H, lv.G)
            continue
        cand = np.arange(1, lv.G - 1)
        x = twin.scores(q, summ[i][0][:, cand], summ[i][1][:, cand])
        if member is not None:
            x = np.where(member[:, cand * lv.size // levels[i - 1].size] > 0, x, -np.inf)
        out.append(_topk_margin(x, lv.k))
        top = np.argsort(-x, axis=-1, kind="stable")[:, : lv.k]
        member = np.zeros((H, lv.G))
        np.put_along_axis(member, top + 1, 1.0, axis=-1)
        member[:, [0, lv.G - 1]] = 1.0
    return out


def _twin_mpcache(policy, d: Data, T0, ulps):
    twin: MPCacheTwin = policy.twin()
    why = None
    if policy.static is not None and d.prompt_q is not None:
        kept = twin.static_keep(d.K[:, :T0], d.prompt_q)
        k = len(kept)
        if k < T0:
            # the MPC importance: (Qw K^T) truncated, times the encoded scale, softmax; twin with error bound
            scale = 1 / np.sqrt(D) if policy.static_scale else 1.0
            fx = _fxp_weights(d.prompt_q, d.K[:, :T0], scale, None, F, None)
            heads = H * d.prompt_q.shape[1] // policy.window(T0)
            imp = twin.importance(d.K[:, :T0], d.prompt_q)
            err = (np.abs(fx.real().sum(axis=(0, 1)) / heads - imp) + fx.err.sum(axis=(0, 1)) * ULP / heads)
            inside = np.zeros(T0, bool)
            inside[kept] = True
            lo, hi = (imp - err)[inside].min(), (imp + err)[~inside].max()
            if lo <= hi:
                why = f"static top-k: kept importance {lo:.4g} vs evicted {hi:.4g} overlap within the error bound"
    else:
        kept = np.arange(T0)
    trace = TwinTrace([], [len(kept)], [])
    for t in range(STEPS):
        orig = np.concatenate([kept, T0 + np.arange(t + 1)])
        keys, values = d.K[:, orig], d.V[:, orig]
        step = twin(d.q[t], keys, values, SCALE)
        if why is None:
            margins = _mpcache_margins(policy, d.q[t], keys)
            if margins and min(margins) <= 2 * ulps * ULP:
                why = f"step {t}: cluster top-k margin {min(margins):.3g} <= 2 x {ulps} ULP"
        trace.positions.append(np.sort(orig[step.positions], axis=1))
        trace.unclear.append(why)
        trace.lengths.append(len(orig))
    return trace


@functools.lru_cache(maxsize=None)
def run_twin(name: str, case: str) -> TwinTrace:
    e, policy, d = entry(name), make_policy(name), data(name, case)
    if e.kind == "public":
        return _twin_public(policy, d, e.T0)
    if e.kind == "evict":
        return _twin_evict(policy, d, e.T0)
    if e.kind == "select":
        return _twin_select(policy, d, e.T0, e.score_ulps)
    if e.kind == "mpcache":
        return _twin_mpcache(policy, d, e.T0, e.score_ulps)
    raise AssertionError(f"MATRIX[{name!r}].kind = {e.kind!r}: no twin adapter of that kind")


# -- the float reference and its derived tolerance --------------------------------------------------------------------
def float_attention(q, keys, values):
    """softmax(q K^T / sqrt(d)) V in float64, for one KV head: q (G, D), keys and values (n, D)."""
    s = SCALE * q @ keys.T
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    return (w / w.sum(axis=-1, keepdims=True)) @ values


def replay_attention(q, keys, values) -> Twin:
    """The fixed-point replay of the MPC attention for one KV head over given tokens: a ``Twin`` (ring integers
    at scale 2^-f, and ``err``: how far, in ULPs, a share-backend run can be from them).

    The MPC steps on exactly encoded inputs (multiples of 2^-8): s = trunc_f(q K^T), x = trunc_f(s enc(scale)),
    p = softmax(x) (limit exp, Goldschmidt reciprocal), c = trunc_f(p V); gathers, shifts and scatters move
    exact ring values, and entries outside the chosen set carry weight exactly 0, so neither changes c.
    ``protocols.nonlinear.Twin`` replays these steps with floor truncations, as the ideal backend does, and
    carries the documented bound: a truncation of an exact value adds at most 1 ULP (floor or floor + 1),
    and input errors propagate through the scaling, exp, reciprocal and products by its rules.
    """
    enc = lambda a: np.rint(np.asarray(a) * 2.0**F).astype(np.int64)
    raw = Twin(enc(q) @ enc(keys).T, 2 * F).trunc(F)
    s = enc(SCALE)
    p = twin_softmax(Twin(raw.v * s, 2 * F, raw.err * s).trunc(F), axis=-1)
    v = enc(values)
    return Twin(p.v @ v, 2 * F, p.err @ np.abs(v)).trunc(F)


def _case_id(name, case):
    return f"{name}-{case}"


MATRIX_CASES = [pytest.param(n, c, id=_case_id(n, c)) for n in NAMES for c in CASES]
STRUCTURED_CASES = [pytest.param(n, c, id=_case_id(n, c)) for n in NAMES for c in STRUCTURED]


def compare_attention(name: str, case: str) -> tuple[int, str | None]:
    """Check each step's context against the twin's choice, from step 0 up to the first step the twin cannot
    decide (from the first near-tie on, an MPC run may legitimately decide otherwise). Per step and KV head,
    over the positions the twin chose:

    * ideal backend (every truncation a floor): the context is the fixed-point replay, bit for bit. Any other
      token set, order-dependent arithmetic or inexact gather would show here;
    * share backend: |context - float context| <= tol ULPs with tol = err(replay) + |replay - float| / 2^-f:
      the replay's derived bound on the MPC's own rounding, plus the replay's computed (not assumed) distance
      to float64 (the exp and reciprocal approximations and the floors).

    Both with reuse on and off. Returns (steps compared, why the next step was not compared, or None).
    """
    d = data(name, case)
    twin = run_twin(name, case)
    compared = 0
    for t in range(STEPS):
        if twin.unclear[t] is not None:
            break
        pos = twin.positions[t]
        for h in range(H):
            q, keys, values = d.q[t, h], d.K[h, pos[h]], d.V[h, pos[h]]
            c = replay_attention(q, keys, values)
            ref = float_attention(q, keys, values)
            tol = c.err + np.abs(c.v - ref / ULP)
            for reuse in (True, False):
                where = f"{name}/{case} step {t} head {h} reuse {reuse}"
                ideal = run_mpc(name, case, "ideal", reuse).contexts[t][h]
                np.testing.assert_array_equal(ideal / ULP, c.v, err_msg=f"{where}: ideal context != replay")
                err = np.abs(run_mpc(name, case, "share", reuse).contexts[t][h] - ref) / ULP
                assert np.all(err <= tol), (f"{where}: share error {err.max():.1f} ULPs, worst excess over its "
                                            f"bound {np.max(err - tol):.1f} ULPs")
        compared += 1
    return compared, (twin.unclear[compared] if compared < STEPS else None)


# -- 1: attention == float attention over the twin's choice ----------------------------------------------------------
@pytest.mark.parametrize("name,case", STRUCTURED_CASES)
def test_attention_matches_float_attention_over_the_twins_choice(name, case):
    """On the structured data, every step's attention context equals the float attention over the positions
    the policy's twin chose (``compare_attention``: the ideal context is the fixed-point replay bit for bit,
    the share context is within the replay's derived tolerance of float64), for all STEPS steps.

    The structured data (``tests/policy_data.py``: planted heavy tokens, well-separated clusters) put every
    decision a policy makes, at prefill and at every step, between tokens whose scores' error intervals are
    disjoint, so the twin decides every step and every step is compared. A step the twin cannot decide fails
    here (the data no longer separate what the policy ranks): it is never skipped.
    """
    compared, why = compare_attention(name, case)
    assert compared == STEPS, (
        f"{name}/{case}: compared {compared} of {STEPS} steps; then {why}. The {case} data must make every "
        f"decision of {name} certain: fix MATRIX[{name!r}] (heavy, tail, run, clusters) or tests/policy_data.py")


# which twin kinds can decide random data: positions are public, or the ranked scores (q K^T-like) carry 1-2 ULP
# bounds, far below the gaps between random scores
DECIDES_RANDOM = ("public", "select")


def test_attention_on_random_data_where_the_twin_decides():
    """The same comparison (``compare_attention``) on random data, as an extra check, aggregated over the
    policies: each is compared from step 0 up to its first step the twin cannot decide, and the count of
    compared steps per policy is asserted, not skipped.

    * Policies whose twin kind is in ``DECIDES_RANDOM`` (full and streaming: public positions; quest and
      naive-dynamic: top-k of q K^T-like scores bounded by 1 or 2 ULPs) must compare at least one step on
      random data (a near-tie may stop them at a later step).
    * The eviction policies (h2o, tova, snapkv) and mpcache's static top-k rank softmax weights, whose derived
      bound (the exp and Goldschmidt reciprocal replays, ``protocols.nonlinear.Twin``) is a few percent of each
      weight: wider than the gaps between neighbouring order statistics of random weights. Their random data
      leave the prefill or static top-k undecided, so they cannot compare even step 0 (over 30 seeds of
      this data: tova decided its prefill once, h2o, snapkv and mpcache never), and no count is asserted for
      them: kept as test cells they would assert nothing. They are still compared here on every step their
      twin does decide (none at present), and the structured cases compare all their steps.
    """
    counts = {}
    for name in NAMES:
        compared, why = compare_attention(name, "random")
        counts[name] = (compared, why)
    summary = ", ".join(f"{n} {c}/{STEPS}" for n, (c, _) in counts.items())
    deciding = [n for n in NAMES if entry(n).kind in DECIDES_RANDOM]
    undecided = {n: counts[n][1] for n in deciding if counts[n][0] == 0}
    assert not undecided, f"random data compared no step of {sorted(undecided)}: {undecided} (compared: {summary})"


# -- 2: count ledger == share ledger ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "no-reuse"])
@pytest.mark.parametrize("name", NAMES)
def test_count_and_share_ledgers_are_identical(name, reuse):
    share, count = run_mpc(name, "random", "share", reuse), run_mpc(name, "random", "count", reuse)
    assert share.cost == count.cost, f"{name}: (rounds, bits sent per party, offline bits) differ"
    assert share.messages == count.messages
    assert (share.lengths, share.attended) == (count.lengths, count.attended)
    assert [t[:4] for t in share.transcript] == [t[:4] for t in count.transcript]


# -- 3: public budgets ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,case", MATRIX_CASES)
def test_attended_and_kept_counts_equal_the_public_budget(name, case):
    e, policy = entry(name), make_policy(name)
    T0 = e.T0
    twin, run = run_twin(name, case), run_mpc(name, case, "share", True)
    lengths = [e.prefill_len(policy, T0)]
    attended = []
    for t in range(STEPS):
        L = lengths[-1] + 1
        attended.append(e.attended(policy, L))
        lengths.append(e.kept(policy, L))
    assert run.lengths == lengths == twin.lengths
    assert run.attended == attended == [p.shape[1] for p in twin.positions]
    for pos in twin.positions:
        assert all(len(np.unique(row)) == len(row) for row in pos)  # distinct tokens
    # the table's sizes make every policy but full drop something: fewer tokens than a full cache's T0 + 1
    assert name == "full" or min(attended) < T0 + 1, f"{name} neither evicts nor selects at the table's sizes"


# -- 5: nothing data dependent is opened -------------------------------------------------------------------------------
@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "no-reuse"])
@pytest.mark.parametrize("name", NAMES)
def test_selection_opens_nothing_data_dependent(name, reuse):
    """Same shapes and seed, different data: the same openings (where, what op, to whom, shapes and widths,
    and the shapes of the values opened) in the same order, hence control flow on public values only."""
    runs = {case: run_mpc(name, case, "share", reuse) for case in CASES}
    base = runs["random"]
    for case, run in runs.items():
        assert run.transcript == base.transcript, f"{name}: the openings on {case} data differ from random data's"
        assert run.messages == base.messages and run.cost == base.cost
        assert len(run.clear_leaks) == len(run.leaks), (
            f"{name} opens {len(run.clear_leaks)} secrets in the clear but declares {len(run.leaks)} leaks")


# -- 4: registration, dataclass, twin, validation ----------------------------------------------------------------
def test_every_registered_policy_has_a_matrix_entry():
    missing = sorted(set(POLICIES) - set(MATRIX))
    assert not missing, f"registered policies without a MATRIX entry in tests/test_policy_matrix.py: {missing}"
    stale = sorted(set(MATRIX) - set(POLICIES))
    assert not stale, f"MATRIX entries for policies that are not registered: {stale}"


@pytest.mark.parametrize("name", NAMES)
def test_registered_dataclass_with_a_twin(name):
    cls = POLICIES[name]
    assert dataclasses.is_dataclass(cls) and cls.name == name
    default, small = get_policy(name), make_policy(name)
    assert type(default) is cls and type(small) is cls
    assert dataclasses.replace(small) == small  # hyperparameters are the fields, nothing hidden
    twin = small.twin()
    assert twin is not None and (callable(twin) or isinstance(twin, EvictionTwin))


def _wrong_types(default):
    """Values of the wrong type for a field with this default: a string for every field (the string fields
    here all take a name from a fixed set), and a non-integer for an integer field."""
    yield "bogus"
    if isinstance(default, int) and not isinstance(default, bool):
        yield 2.5


@pytest.mark.parametrize("name", NAMES)
def test_bad_hyperparameters_raise_value_error(name):
    problems = []
    for bad in entry(name).bad:
        try:
            get_policy(name, **bad)
            problems.append(f"{bad} accepted")
        except ValueError:
            pass
    for f in dataclasses.fields(POLICIES[name]):
        for value in _wrong_types(f.default):
            try:
                get_policy(name, **{f.name: value})
                problems.append(f"{f.name}={value!r} accepted")
            except ValueError:
                pass
            except Exception as exc:  # noqa: BLE001 - reported below: validation must raise ValueError
                problems.append(f"{f.name}={value!r} raised {type(exc).__name__}: {exc}")
    assert not problems, f"{name}: " + "; ".join(problems)
    with pytest.raises(ValueError, match="unknown policy"):
        get_policy(name + "-unregistered")
