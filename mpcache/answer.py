"""The cost of one generated answer: a prefill of the prompt, the policy's setup, and N decode steps.

``answer(model, prompt, new, policy)`` runs, in one session,

* ``prefill="private"`` (default): ``mpcache.prefill.private_prefill`` (secret weights and tokens, full causal
  attention), then the policy's setup on the cache it produced, charged without what the prefill already
  paid (MPCache's static importance: ``mpcache.prefill.reusable_policy``; the scope is listed as reused);
* ``prefill="plaintext"``: the MPCache paper's evaluation: the data owner prefilled in plaintext and shares
  the cache (``mpcache.decode.prepare``); no prefill is charged and the setup is charged whole;

then ``new`` decode steps, every one measured (the cache grows by one token per step). Each segment (prefill,
setup, every step) is priced online (bytes per party, rounds, seconds per network profile) and offline under
every generator asked for (``costmodel.generators``). :func:`break_even` then says after how many generated
tokens a policy's extra setup has been paid back by its cheaper steps, against a baseline's answer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import mpsim
from costmodel.generators import price_messages
from costmodel.latency import estimate
from costmodel.profiles import parse_profiles
from mpsim.ledger import cost_of

from .decode import decode_step, prepare
from .models import ModelConfig, get_model
from .policies import KVPolicy, get_policy
from .prefill import private_prefill, reusable_policy

PREFILL_MODES = ("private", "plaintext")


@dataclass
class Segment:
    """One priced part of an answer: online bytes each party sent, rounds, seconds per profile (network),
    the dealer's bytes, and per generator {max_bytes, rounds, seconds}."""

    sent_bytes: list
    rounds: int
    latency_s: dict
    offline_bytes: float
    offline: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sent_bytes": self.sent_bytes, "rounds": self.rounds, "latency_s": self.latency_s,
                "offline_bytes": self.offline_bytes, "offline": self.offline}

    @classmethod
    def sum(cls, parts: list) -> "Segment":
        """Parts run one after another: their bytes, rounds, seconds and offline prices add up."""
        first = parts[0]
        names = list(first.latency_s)
        return cls([sum(p.sent_bytes[i] for p in parts) for i in range(len(first.sent_bytes))],
                   sum(p.rounds for p in parts), {n: sum(p.latency_s[n] for p in parts) for n in names},
                   sum(p.offline_bytes for p in parts),
                   {g: {"max_bytes": sum(p.offline[g]["max_bytes"] for p in parts),
                        "rounds": sum(p.offline[g]["rounds"] for p in parts),
                        "seconds": {n: sum(p.offline[g]["seconds"][n] for p in parts) for n in names}}
                    for g in first.offline})


def _segment(session, messages, profiles, generators) -> Segment:
    messages = list(messages)
    cost = cost_of(messages, session.parties)
    offline = {}
    for g in generators:
        price = price_messages(messages, g, session.ring.bits, session.parties, session.scheme.name)
        offline[g] = {"max_bytes": price.bytes_per_party, "rounds": price.rounds,
                      "seconds": {p.name: price.seconds(p) for p in profiles}}
    return Segment(list(cost.sent) or [0.0] * session.parties, cost.rounds,
                   {p.name: estimate(messages, p).total_s for p in profiles}, cost.offline_bytes, offline)


@dataclass
class Answer:
    """A priced answer (module docstring); ``steps`` in order, the first after the prefill."""

    policy: str
    model: str
    prompt: int
    new: int
    prefill_mode: str
    prefill: Segment
    setup: Segment
    reused: Segment | None
    reused_scope: str | None
    steps: list
    config: dict = field(default_factory=dict)

    def total(self) -> Segment:
        return Segment.sum([self.prefill, self.setup] + self.steps)

    def as_dict(self) -> dict:
        return {"policy": self.policy, "model": self.model, "prompt": self.prompt, "new": self.new,
                "prefill_mode": self.prefill_mode, "prefill": self.prefill.as_dict(), "setup": self.setup.as_dict(),
                "reused": None if self.reused is None else self.reused.as_dict(), "reused_scope": self.reused_scope,
                "steps": [s.as_dict() for s in self.steps], "total": self.total().as_dict(), "config": self.config}


def answer(model: ModelConfig | str, prompt: int, new: int, policy: KVPolicy | str = "full", *, parties: int = 2,
           backend: str = "count", scheme: str = "additive", ring_bits: int = 64, seed: int = 0, profiles="lan,wan",
           generators=("dealer",), prefill: str = "private", tick=None) -> Answer:
    """Price one answer of ``new`` tokens after a ``prompt``-token prompt (module docstring); ``tick()`` is
    called after each decode step."""
    model = get_model(model) if isinstance(model, str) else model
    policy = get_policy(policy) if isinstance(policy, str) else policy
    profiles = parse_profiles(profiles) if isinstance(profiles, str) else list(profiles)
    if prefill not in PREFILL_MODES:
        raise ValueError(f"prefill must be one of {PREFILL_MODES}, got {prefill!r}")
    if new < 1:
        raise ValueError(f"new must be a positive number of tokens, got {new}")
    session = mpsim.Session(parties=parties, backend=backend, seed=seed, scheme=scheme, ring_bits=ring_bits)
    reuse = session.scheme.reusable_operands
    if not reuse and getattr(policy, "gather", None) == "rotated":
        policy = dataclasses.replace(policy, gather="cluster")
    reused_scope = None
    if prefill == "private":
        policy, reused_scope = reusable_policy(policy)
        run = private_prefill(session, model, prompt, policy, reuse=reuse, seed=seed)
    else:
        run = prepare(session, model, prompt, policy, reuse=reuse, seed=seed)
    messages = session.ledger.messages
    in_prefill = [m for m in messages if m.scope.split("/", 1)[0] == "prefill"]
    in_setup = [m for m in messages if m.scope.split("/", 1)[0] == "setup"]
    reused = [m for m in in_setup if reused_scope and _within(m.scope, reused_scope)]
    charged = [m for m in in_setup if not (reused_scope and _within(m.scope, reused_scope))]
    steps = []
    for _ in range(new):
        mark = session.mark()
        decode_step(run)
        steps.append(_segment(session, session.ledger.messages[mark:], profiles, generators))
        if tick is not None:
            tick()
    return Answer(policy.name, model.name, prompt, new, prefill,
                  _segment(session, in_prefill, profiles, generators),
                  _segment(session, charged, profiles, generators),
                  _segment(session, reused, profiles, generators) if reused_scope else None, reused_scope, steps,
                  {**session.config, "policy": dict(vars(policy)), "generators": list(generators)})


def _within(scope: str, sub: str) -> bool:
    return f"/{sub}/" in f"/{scope}/"


def break_even(candidate: Answer, baseline: Answer, metric) -> float | None:
    """The number of generated tokens after which ``candidate``'s answer has cost no more than ``baseline``'s
    under ``metric(segment) -> float`` (e.g. the busiest party's online bytes): the first n where its
    prefill + setup + n steps <= the baseline's. Past the measured steps it extends with the last step's
    saving; None when the last step saves nothing (never pays back)."""
    cand = metric(candidate.prefill) + metric(candidate.setup)
    base = metric(baseline.prefill) + metric(baseline.setup)
    if cand <= base:
        return 0
    for n, (c, b) in enumerate(zip(candidate.steps, baseline.steps), start=1):
        cand, base = cand + metric(c), base + metric(b)
        if cand <= base:
            return n
    saving = metric(baseline.steps[-1]) - metric(candidate.steps[-1])
    if saving <= 0:
        return None
    return len(candidate.steps) + (cand - base) / saving
