"""Quality of KV policies on a real model, against the full cache on the same windows.

Teacher-forced metrics (:func:`teacher_forced`): prefill ``context`` tokens of a text window with full
attention, then feed the next ``steps`` tokens of the window one by one; at every step each policy's
next-token distribution is compared with the full cache's on the same prefix: top-1 agreement, KL(full ||
policy), the negative log-likelihood of the true next token (perplexity = exp of its mean), and per layer the
relative error of the attention output against full attention on that layer's own inputs. The first
prediction (from the prefill) is the same for every policy and is not counted.

Retrieval (:func:`needle`): the needle-in-a-haystack prompt at a context length and depth; greedy decoding
with the policy; success when the answer contains the needle's key phrase.

MPC numerics (:func:`fixed_point_ops`): the decode step's softmax, SiLU and RMSNorm run through the ideal
backend's fixed-point protocols (``protocols.softmax``, ``silu``, ``rmsnorm`` at ``frac_bits``), i.e. the
approximations a private run computes, without the cost of sharing.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .drivers import PolicySelector, budget_tokens, policy_for_budget, prompt_window


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@dataclass
class Scores:
    """Per-step comparisons of one policy with the full cache (lists grow window by window)."""

    agree: list = field(default_factory=list)  # 1.0 when the policy's argmax equals full's
    kl: list = field(default_factory=list)  # KL(full || policy), nats
    nll: list = field(default_factory=list)  # -log p_policy(true next token)
    nll_full: list = field(default_factory=list)  # -log p_full(true next token)
    attended: list = field(default_factory=list)  # fraction of the cache attended (mean over layers, heads)
    layer_error: list = field(default_factory=list)  # (layers,) relative attention-output error per step

    def add_step(self, full_logits, logits, target: int) -> None:
        lf, lp = _log_softmax(full_logits), _log_softmax(logits)
        self.agree.append(float(np.argmax(logits) == np.argmax(full_logits)))
        self.kl.append(float(np.sum(np.exp(lf) * (lf - lp))))
        self.nll.append(float(-lp[target]))
        self.nll_full.append(float(-lf[target]))

    def extend(self, other: "Scores") -> None:
        """Append another window's steps."""
        for name in ("agree", "kl", "nll", "nll_full", "attended", "layer_error"):
            getattr(self, name).extend(getattr(other, name))

    def summary(self) -> dict:
        errs = np.array(self.layer_error) if self.layer_error else np.zeros((0, 0))
        return {
            "steps": len(self.agree),
            "top1_agreement": float(np.mean(self.agree)) if self.agree else float("nan"),
            "kl": float(np.mean(self.kl)) if self.kl else float("nan"),
            "perplexity": float(np.exp(np.mean(self.nll))) if self.nll else float("nan"),
            "perplexity_full": float(np.exp(np.mean(self.nll_full))) if self.nll_full else float("nan"),
            "perplexity_increase": (float(np.exp(np.mean(self.nll)) / np.exp(np.mean(self.nll_full)) - 1)
                                    if self.nll else float("nan")),
            "attended": float(np.mean(self.attended)) if self.attended else float("nan"),
            "layer_error": errs.mean(axis=0).tolist() if errs.size else [],
        }


def teacher_forced(runner, window: list[int], context: int, steps: int, entries, seed: int = 0,
                   track_error: bool = True, full_numerics: dict | None = None, on_step=None) -> dict:
    """Score several (key, policy, fraction, numerics) entries on one window; returns {key: Scores} for this
    window. ``policy`` is a registered policy name or instance, or "oracle"/"random"; ``numerics`` is None or
    a dict of runner hooks (softmax, silu, rmsnorm) used while that entry decodes. The full-cache reference
    uses ``full_numerics`` (None: the model's own float ops)."""
    if len(window) < context + steps + 1:
        raise ValueError(f"window of {len(window)} tokens is shorter than context + steps + 1 = {context + steps + 1}")
    built = []
    for key, name, fraction, numerics in entries:
        policy = policy_for_budget(name, fraction, context) if isinstance(name, str) else name
        built.append((key, policy, budget_tokens(fraction, context), numerics))
    w = max([prompt_window(p, context) for _, p, _, _ in built] + [0])
    runner.prefill(window[:context], query_window=w)
    reference = _decode(runner, window, context, steps, None, full_numerics, on_step)
    out = {}
    for key, policy, budget, numerics in built:
        runner.rewind(context)
        selector = PolicySelector(policy, runner, budget, seed=seed, track_error=track_error)
        wp, group = prompt_window(policy, context), runner.lm.group
        # rows are position-major: the last wp prompt positions are the last wp * group rows
        selector.prefill([q[:, (w - wp) * group:] if wp else q[:, :0] for q in runner.queries])
        logits = _decode(runner, window, context, steps, selector, numerics, on_step)
        sc = Scores()
        for t in range(steps):
            sc.add_step(reference[t], logits[t], window[context + t + 1])
        sc.attended = list(selector.attended)
        sc.layer_error = [e.tolist() for e in selector.layer_errors]
        out[key] = sc
    runner.rewind(context)
    return out


@contextmanager
def _numerics(runner, numerics: dict | None):
    """The runner's softmax/silu/rmsnorm hooks set to ``numerics`` (None: the model's own ops) for a block."""
    hooks = {"softmax": None, "silu": None, "rmsnorm": None, **(numerics or {})}
    saved = {name: getattr(runner, name) for name in hooks}
    for name, fn in hooks.items():
        setattr(runner, name, fn)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(runner, name, fn)


def _decode(runner, window, context, steps, selector, numerics, on_step) -> list[np.ndarray]:
    logits = []
    with _numerics(runner, numerics):
        for t in range(steps):
            logits.append(runner.step(window[context + t], selector))
            if on_step is not None:
                on_step()
    return logits


def needle(runner, tokenizer, context_len: int, depth: float, policy, fraction: float, max_new: int = 24,
           seed: int = 0, numerics: dict | None = None) -> dict:
    """Greedy retrieval with the policy from the needle prompt; success if the key phrase is in the answer.
    ``policy`` is a name, an instance, or a callable building one from the prompt length."""
    from .text import KEY_PHRASE, needle_prompt

    ids, phrase = needle_prompt(tokenizer, context_len, depth)
    T = len(ids)
    if isinstance(policy, str):
        policy = policy_for_budget(policy, fraction, T)
    elif callable(policy):
        policy = policy(T)
    logits = runner.prefill(ids, query_window=prompt_window(policy, T))
    selector = PolicySelector(policy, runner, budget_tokens(fraction, T), seed=seed)
    selector.prefill()
    out = []
    with _numerics(runner, numerics):
        for _ in range(max_new):
            token = int(np.argmax(logits))
            if token == tokenizer.eos_token_id:
                break
            out.append(token)
            logits = runner.step(token, selector)
    answer = tokenizer.decode(out, skip_special_tokens=True)
    return {"context": context_len, "depth": depth, "prompt_tokens": T, "answer": answer,
            "found": (phrase or KEY_PHRASE).lower() in answer.lower()}


def fixed_point_ops(frac_bits: int, seed: int = 0) -> dict:
    """Runner hooks computing softmax, SiLU and RMSNorm with the MPC protocols on the ideal backend (exact
    fixed-point arithmetic of a private run at ``frac_bits``, no sharing noise), one session per hook set."""
    import mpsim
    import protocols as P

    session = mpsim.Session(parties=2, backend="ideal", frac_bits=frac_bits, seed=seed)

    def softmax(x):
        return session.reveal(P.softmax(session.input(x), axis=-1))

    def silu(x):
        return session.reveal(P.silu(session.input(x)))

    def rmsnorm(x, weight, eps):
        return session.reveal(P.rmsnorm(session.input(x), session.input(weight), axis=-1, eps=eps))

    return {"softmax": softmax, "silu": silu, "rmsnorm": rmsnorm}
