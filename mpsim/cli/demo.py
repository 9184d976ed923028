"""``mpsim demo --block``: the cost of one private decode step of a single attention block.

One token attends over a secret KV cache of ``seq`` tokens with secret weights, for 2 or more parties:
Q/K/V projection, q.K^T per head, scaling, softmax, (attention weights).V, output projection. Weights and the
KV cache are reusable masked operands, so their one-off opening is reported apart from the per-step cost.

The block alone: no norm, no MLP, no KV-cache policy. Whole models with norms, MLPs and KV policies are the
MPCache workload (``mpsim demo`` without ``--block``, ``mpsim decode``; docs/decoding.md).
"""
from __future__ import annotations

import numpy as np
from rich.console import Console

import protocols as P
from rich.table import Table

from mpsim.session import Session


def run_attention_step(session: Session, seq: int, heads: int, head_dim: int):
    """Run one decode step; returns (setup mark, step mark) ledger positions."""
    hidden = heads * head_dim
    rng = np.random.default_rng(0)
    data = session.backend.has_data

    def secret(shape, owner, scale=0.05):
        values = rng.normal(scale=scale, size=shape) if data else np.zeros(shape)
        return session.input(values, owner=owner)

    with session.scope("setup"):
        w_qkv = session.reusable(secret((hidden, 3 * hidden), owner=1))
        w_out = session.reusable(secret((hidden, hidden), owner=1))
        k_cache = session.reusable(secret((heads, seq, head_dim), owner=0, scale=1.0))
        v_cache = session.reusable(secret((heads, seq, head_dim), owner=0, scale=1.0))
    x = secret((1, hidden), owner=0, scale=1.0)
    step = session.mark()
    with session.scope("step"):
        with session.scope("linear"):
            qkv = x @ w_qkv
        q = qkv[:, :hidden].reshape(heads, 1, head_dim)
        with session.scope("attention"):
            with session.scope("qk"):
                scores = q @ k_cache.swapaxes(-1, -2)
            with session.scope("scale"):
                scores = scores * (1.0 / np.sqrt(head_dim))
            with session.scope("softmax"):
                weights = P.softmax(scores, axis=-1)
            with session.scope("av"):
                context = weights @ v_cache
        with session.scope("linear"):
            out = context.reshape(1, hidden) @ w_out
    return out, step


SCOPES = ("linear", "attention/qk", "attention/scale", "attention/softmax", "attention/av")


def breakdown_rows(session) -> list[dict]:
    """The demo's numbers: per scope of the step, the step total and the one-off setup."""
    rows = []
    for name in SCOPES:
        c = session.cost(scope="step/" + name)
        rows.append({"scope": name, "rounds": c.rounds, "sent_bytes": list(c.sent), "offline_bytes": c.offline_bytes})
    for name, c in (("step total", session.cost(scope="/step")), ("one-off setup", session.cost(scope="/setup"))):
        rows.append({"scope": name, "rounds": c.rounds, "sent_bytes": list(c.sent), "offline_bytes": c.offline_bytes})
    return rows


def _short(nbytes: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:.0f} B"


def attention_block_breakdown(seq=1024, heads=12, head_dim=64, parties=2, backend="count", console=None,
                              show=True):
    console = console or Console()
    session = Session(parties=parties, seed=0, backend=backend)
    _, step = run_attention_step(session, seq, heads, head_dim)
    if not show:
        return session
    setup = session.cost(scope="/setup")
    total = session.cost(since=step)

    table = Table(title=f"One decode step of an attention block: {heads} heads x {head_dim}, KV length {seq}, "
                  f"{parties} parties, {backend} backend")
    table.add_column("scope", no_wrap=True)
    table.add_column("rounds", justify="right")
    table.add_column("online / party", justify="right", no_wrap=True)
    table.add_column("offline", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    for name in SCOPES:
        c = session.cost(scope="step/" + name)
        share = c.total_bits / total.total_bits if total.total_bits else 0.0
        table.add_row(name, str(c.rounds), _short(max(c.sent)), _short(c.offline_bytes), f"{share:.1%}")
    table.add_row("step total", str(total.rounds), _short(max(total.sent)), _short(total.offline_bytes), "100%",
                  style="bold")
    table.add_row("one-off setup", str(setup.rounds), _short(max(setup.sent)), _short(setup.offline_bytes), "",
                  style="dim")
    console.print(table)
    console.print(
        "[yellow]One attention block only:[/] no norm, no MLP, no KV policy; whole models: `mpsim demo` "
        "(MPCache vs full attention) and `mpsim decode`."
    )
    return session
