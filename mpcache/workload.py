"""Run a policy through private decode steps and summarise what one step costs, per scope and per network.

``measure(model, seq_len, policy)`` prepares a session (setup: masking weights and the prefilled cache, and
the policy's prefill work), runs ``steps`` decode steps and reports the last step: rounds, online bytes per
party, offline bytes, estimated latency per network profile (optionally with the calibrated compute term),
the paper's scope breakdown, and the one-off setup apart. ``compare`` does that for several policies with
ratios against the first.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field

import mpsim
from costmodel.breakdown import breakdown
from costmodel.generators import price_session
from costmodel.latency import ComputeModel, estimate
from costmodel.profiles import parse_profiles

from .decode import decode_step, prepare
from .models import ModelConfig, get_model
from .policies import KVPolicy, get_policy

BREAKDOWN = ("linear", "norm", "kv_append", "attention/qk", "attention/softmax", "attention/av",
             "select/static", "select/summary_update", "select/similarity", "select/topk", "select/gather",
             "select/evict", "mlp")


@dataclass
class StepSummary:
    """One decode step of one policy (the last of ``steps``), and the one-off setup."""

    name: str
    model: str
    seq_len: int
    parties: int
    rounds: int
    sent_bytes: list[float]
    offline_bytes: float
    latency_s: dict[str, float]
    scopes: dict[str, dict]
    setup: dict
    config: dict = field(default_factory=dict)
    network_latency_s: dict[str, float] = field(default_factory=dict)  # latency_s without the compute term
    inventory: tuple = ()  # the step's correlations, ((kind, dims, units), ...) (``Cost.inventory``)
    breakdown: dict | None = None  # {"by": grouping, "rows": [...]} (``costmodel.breakdown``) when asked for
    offline: dict = field(default_factory=dict)  # generator -> OfflinePrice.as_dict (``costmodel.generators``)

    def as_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "seq_len": self.seq_len, "parties": self.parties,
                "rounds": self.rounds, "sent_bytes": self.sent_bytes, "offline_bytes": self.offline_bytes,
                "latency_s": self.latency_s, "network_latency_s": self.network_latency_s, "scopes": self.scopes,
                "setup": self.setup, "config": self.config,
                "inventory": [{"kind": k, "dims": list(d), "units": u} for k, d, u in self.inventory],
                **({"breakdown": self.breakdown} if self.breakdown is not None else {}),
                **({"offline": self.offline} if self.offline else {})}


def _scope_costs(session, since: int, profiles) -> dict[str, dict]:
    out = {}
    for name in BREAKDOWN:
        messages = [m for m in session.ledger.select(scope=name, since=since)]
        if not messages:
            continue
        c = session.ledger.cost(scope=name, since=since)
        out[name] = {"rounds": c.rounds, "sent_bytes": list(c.sent), "offline_bytes": c.offline_bytes,
                     "latency_s": {p.name: estimate(messages, p).total_s for p in profiles}}
    return out


def measure(model: ModelConfig | str, seq_len: int, policy: KVPolicy | str = "full", *, parties: int = 2,
            backend: str = "count", reuse: bool = True, attention_only: bool = False, steps: int = 1,
            profiles="lan,wan", compute: ComputeModel | None = None, seed: int = 0,
            approx=None, scheme: str = "additive", ring_bits: int = 64, by: str | None = None,
            after_step=None, generators=()) -> StepSummary:
    """One private decode step's costs. A scheme without reusable masked operands (``aby3``) runs with
    ``reuse=False`` and MPCache's cluster gather (one-hot @ scores), since its default rotated gather masks
    the scores once as a reusable operand. ``by`` (layer, protocol or scope) adds the step's flat breakdown
    (``costmodel.breakdown``); ``after_step(session, mark)`` is called after the reported step, with the
    ledger position where it began (e.g. to export a trace of it); ``generators`` (names of
    ``costmodel.generators.GENERATORS``) price the step's preprocessing under each (``offline``)."""
    model = get_model(model) if isinstance(model, str) else model
    policy = get_policy(policy) if isinstance(policy, str) else policy
    profiles = parse_profiles(profiles) if isinstance(profiles, str) else list(profiles)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    session = mpsim.Session(parties=parties, backend=backend, seed=seed, approx=approx, scheme=scheme,
                            ring_bits=ring_bits)
    if not session.scheme.reusable_operands:
        reuse = False
        if getattr(policy, "gather", None) == "rotated":
            policy = dataclasses.replace(policy, gather="cluster")
    run = prepare(session, model, seq_len, policy=policy, reuse=reuse, attention_only=attention_only, seed=seed)
    setup_end = session.mark()
    for _ in range(steps - 1):
        decode_step(run)
    mark = session.mark()
    decode_step(run)
    c = session.cost(since=mark)
    setup = session.ledger.cost(until=setup_end)
    latency = {p.name: estimate(session, p, since=mark, compute=compute).total_s for p in profiles}
    if after_step is not None:
        after_step(session, mark)
    network = latency if compute is None else {p.name: estimate(session, p, since=mark).total_s for p in profiles}
    return StepSummary(
        name=policy.name, model=model.name, seq_len=seq_len, parties=parties, rounds=c.rounds,
        sent_bytes=list(c.sent), offline_bytes=c.offline_bytes, latency_s=latency,
        scopes=_scope_costs(session, mark, profiles),
        setup={"rounds": setup.rounds, "sent_bytes": list(setup.sent), "offline_bytes": setup.offline_bytes},
        config={**session.config, "reuse": reuse, "attention_only": attention_only, "steps": steps,
                "policy": {k: v for k, v in vars(policy).items()}, "compute": compute.as_dict() if compute else None},
        network_latency_s=network,
        inventory=c.inventory,
        breakdown=None if by is None else {"by": by, "rows": breakdown(session, by, profiles, since=mark)},
        offline={g: price_session(session, g, since=mark).as_dict(profiles) for g in generators},
    )


def compare(model, seq_len: int, policies, **kwargs) -> list[StepSummary]:
    return [measure(model, seq_len, p, **kwargs) for p in policies]
