"""The quality study behind ``mpsim quality`` and ``benchmarks/bench_quality.py``: every policy at every budget
on the same windows, beside its MPC cost per decode step on the same model shape (count backend).

Windows: ``windows`` token windows of ``context + steps + 1`` tokens from the essays (``text.windows``,
starting at ``start``); tuning uses windows from a disjoint range (``TUNING_START``). Budgets are fractions of
the prompt attended per step (``drivers.policy_for_budget``); ``oracle`` and ``random`` are the references.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .drivers import REFERENCES, budget_tokens, mpcache_for_budget, policy_for_budget
from .quality import Scores, fixed_point_ops, needle, teacher_forced

TUNING_START = 1  # tuning windows: the odd slots of text.windows (reports use the even ones, start=0)
DEFAULT_POLICIES = ("streaming", "h2o", "tova", "snapkv", "quest", "naive-dynamic", "mpcache", "oracle", "random")


@dataclass
class StudyConfig:
    model: str = "smollm2"
    policies: tuple = DEFAULT_POLICIES
    budgets: tuple = (0.05, 0.1, 0.2, 0.5)
    windows: int = 16
    context: int = 1024
    steps: int = 8
    start: int = 0
    seed: int = 0
    mpcache_tuned: dict | None = None  # extra MPCache entry "mpcache-tuned" with these overrides
    needle_contexts: tuple = ()
    needle_depths: tuple = (0.1, 0.5, 0.9)
    needle_budgets: tuple = (0.1,)
    numerics_windows: int = 0
    numerics_frac_bits: tuple = (16, 18)
    numerics_budget: float = 0.1
    costs: bool = True
    extra: dict = field(default_factory=dict)


def _policy(name: str, fraction: float, context: int, tuned: dict | None):
    if name == "mpcache-tuned":
        return mpcache_for_budget(fraction, context, **(tuned or {}))
    return policy_for_budget(name, fraction, context)


def mpc_cost(model: str, policy, seq_len: int) -> dict | None:
    """One decode step's MPC cost (count backend, 2 parties) of the policy on the model's shape; None for the
    references, which are not MPC protocols."""
    if isinstance(policy, str):
        return None
    from mpcache.workload import measure

    s = measure(model, seq_len, policy)
    return {"sent_bytes": max(s.sent_bytes), "rounds": s.rounds, "offline_bytes": s.offline_bytes,
            "latency_s": s.latency_s, "setup_sent_bytes": max(s.setup["sent_bytes"])}


def run(cfg: StudyConfig, progress=None) -> dict:
    """Run the study; ``progress(kind, total)`` returns a callable advancing a bar (or None for no bars)."""
    from .model import Runner, load_model
    from .text import windows as text_windows

    lm = load_model(cfg.model)
    runner = Runner(lm)
    names = list(cfg.policies) + (["mpcache-tuned"] if cfg.mpcache_tuned is not None else [])
    entries = [(f"{n}@{b}", _policy(n, b, cfg.context, cfg.mpcache_tuned), b, None)
               for b in cfg.budgets for n in names]
    wins = text_windows(lm.tokenizer, cfg.context + cfg.steps + 1, cfg.windows, start=cfg.start)
    scores = _score(runner, wins, cfg, entries, progress, "teacher-forced", track_error=True)
    results = []
    cost_tick = progress("MPC cost", len(entries)) if (progress and cfg.costs) else None
    for key, policy, fraction, _ in entries:
        name = key.split("@")[0]
        row = {"policy": name, "budget": fraction, "budget_tokens": budget_tokens(fraction, cfg.context),
               "params": None if isinstance(policy, str) else _params(policy), **scores[key].summary()}
        row["cost"] = mpc_cost(cfg.model, policy, cfg.context) if cfg.costs else None
        if cost_tick:
            cost_tick()
        results.append(row)
    out = {"model": cfg.model, "context": cfg.context, "steps": cfg.steps, "windows": len(wins),
           "window_start": cfg.start, "budgets": list(cfg.budgets), "policies": names,
           "mpcache_tuned": cfg.mpcache_tuned, "results": results}
    if cfg.needle_contexts:
        out["needle"] = run_needle(runner, lm, cfg, names, progress)
    if cfg.numerics_windows:
        out["numerics"] = run_numerics(runner, lm, cfg, progress)
    return out


def _score(runner, wins, cfg: StudyConfig, entries, progress, label: str, track_error: bool = False) -> dict:
    """Teacher-forced scores of every entry, pooled over the windows (window i seeds the random reference)."""
    tick = progress(label, len(wins) * (len(entries) + 1) * cfg.steps) if progress else None
    pooled = {key: Scores() for key, *_ in entries}
    for i, win in enumerate(wins):
        out = teacher_forced(runner, win, cfg.context, cfg.steps, entries, seed=cfg.seed + i,
                             track_error=track_error, on_step=tick)
        for key, sc in out.items():
            pooled[key].extend(sc)
    return pooled


def _params(policy) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(policy).items()}


def run_needle(runner, lm, cfg: StudyConfig, names, progress=None) -> list[dict]:
    cases = [(n, b, c, d) for b in cfg.needle_budgets for n in ["full"] + names
             for c in cfg.needle_contexts for d in cfg.needle_depths]
    tick = progress("needle", len(cases)) if progress else None
    rows = []
    for name, fraction, ctx, depth in cases:
        build = lambda T, name=name, fraction=fraction: _policy(name, fraction, T, cfg.mpcache_tuned)  # noqa: E731
        r = needle(runner, lm.tokenizer, ctx, depth, build, fraction, seed=cfg.seed)
        rows.append({"policy": name, "budget": fraction, **r})
        if tick:
            tick()
    return rows


def run_numerics(runner, lm, cfg: StudyConfig, progress=None) -> list[dict]:
    """Agreement lost to fixed-point MPC arithmetic (softmax, SiLU, RMSNorm of the decode step on the ideal
    backend) beside the agreement lost to eviction, on the first ``numerics_windows`` windows."""
    from .text import windows as text_windows

    wins = text_windows(lm.tokenizer, cfg.context + cfg.steps + 1, cfg.numerics_windows, start=cfg.start)
    b = cfg.numerics_budget
    entries = [("full, float", "full", b, None), (f"mpcache@{b}, float", "mpcache", b, None)]
    for f in cfg.numerics_frac_bits:
        ops = fixed_point_ops(f, seed=cfg.seed)
        entries += [(f"full, fixed point f={f}", "full", b, ops), (f"mpcache@{b}, fixed point f={f}", "mpcache", b, ops)]
    agg = _score(runner, wins, cfg, entries, progress, "MPC numerics")
    return [{"setting": key, **{k: v for k, v in agg[key].summary().items() if k not in ("layer_error", "attended")}}
            for key, *_ in entries]


def tune_mpcache(cfg: StudyConfig, grid: list[dict], windows: int = 4, budget: float = 0.1, progress=None) -> dict:
    """Pick MPCache overrides on tuning windows disjoint from the reported ones: the grid entry with the best
    top-1 agreement (then lowest KL) at ``budget``. Returns {"best": overrides, "trials": [...]}."""
    from .model import Runner, load_model
    from .text import windows as text_windows

    lm = load_model(cfg.model)
    runner = Runner(lm)
    wins = text_windows(lm.tokenizer, cfg.context + cfg.steps + 1, windows, start=TUNING_START)
    entries = [(str(i), mpcache_for_budget(budget, cfg.context, **g), budget, None) for i, g in enumerate(grid)]
    agg = _score(runner, wins, cfg, entries, progress, "tuning MPCache")
    trials = [{"overrides": g, **{k: v for k, v in agg[str(i)].summary().items() if k not in ("layer_error",)}}
              for i, g in enumerate(grid)]
    best = max(trials, key=lambda t: (t["top1_agreement"], -t["kl"]))
    return {"best": best["overrides"], "budget": budget, "windows": len(wins), "window_start": TUNING_START,
            "trials": trials}
