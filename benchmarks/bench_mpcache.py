"""Reproduce the MPCache paper's cost claims with our protocols and write docs/results.md.

Run: ``python benchmarks/bench_mpcache.py`` (count backend, 2 parties, ABY3's 3 for claim (f) in 3PC, and the
FSS suite's 2 for claim (f) with one-round comparisons, K = 64,
f = 16; about 12 minutes on 2 cores).
``--out PATH`` writes elsewhere, ``--quick`` uses fewer sequence lengths (for a smoke run).
Every number below is measured in this run; the paper's figures are quoted beside ours.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

import mpsim  # noqa: E402
import protocols as P  # noqa: E402
from costmodel.latency import calibrate, estimate  # noqa: E402
from costmodel.profiles import PROFILES  # noqa: E402
from mpcache.policies import POLICIES  # noqa: E402
from mpcache.workload import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANSWERS_BEGIN, ANSWERS_END = "<!-- answers: begin (benchmarks/bench_answer.py) -->", "<!-- answers: end -->"
NETS = [PROFILES["lan"], PROFILES["wan"]]


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _cost(session, mark):
    c = session.cost(since=mark)
    return c, {p.name: estimate(session, p, since=mark).total_s for p in NETS}


def claim_a(lines, seqs):
    lines += ["## (a) Attention, and softmax within it, dominates decode cost and grows with length", "",
              "Paper (Fig. 1, GPT-2 on SecretFlow): attention dominates latency and communication; softmax is the "
              "bulk of attention; its cost grows sharply with sequence length. Ours: `gpt2` (12 layers), one "
              "decode step, full KV cache, reusable masked weights and cache.", "",
              "| tokens | attention share of bytes | softmax share of bytes | attention share of LAN / WAN time | "
              "step bytes/party | step LAN / WAN |", "|---|---|---|---|---|---|"]
    for seq in seqs:
        s = measure("gpt2", seq, "full")
        total = max(s.sent_bytes)
        att = sum(max(s.scopes[k]["sent_bytes"]) for k in ("attention/qk", "attention/softmax", "attention/av"))
        soft = max(s.scopes["attention/softmax"]["sent_bytes"])
        att_t = {n: sum(s.scopes[k]["latency_s"][n] for k in ("attention/qk", "attention/softmax", "attention/av"))
                 for n in s.latency_s}
        lines.append(f"| {seq} | {att / total:.1%} | {soft / total:.1%} | "
                     f"{att_t['lan'] / s.latency_s['lan']:.1%} / {att_t['wan'] / s.latency_s['wan']:.1%} | "
                     f"{_fmt_bytes(total)} | {_fmt_s(s.latency_s['lan'])} / {_fmt_s(s.latency_s['wan'])} |")
    lines += ["", "Scope times are priced per scope (latency model on that scope's messages), so they do not add up "
              "exactly to the step's critical path.", ""]


def claim_b(lines, seqs):
    lines += ["## (b) Naive dynamic selection costs more than full attention", "",
              "Paper (Fig. 1(d)): applying dynamic KV selection directly in MPC increases latency and "
              "communication over full attention (top-k, similarity and one-hot gathering)."]
    if "naive-dynamic" not in POLICIES:
        lines += ["", "**Not measured yet**: the `naive-dynamic` policy is not built.", ""]
        return
    lines += ["Ours: `mpcache-proxy`, budget as registered by default.", "",
              "| tokens | full bytes/party | naive-dynamic bytes/party | full LAN / WAN | naive LAN / WAN |",
              "|---|---|---|---|---|"]
    for seq in seqs:
        full, naive = measure("mpcache-proxy", seq, "full"), measure("mpcache-proxy", seq, "naive-dynamic")
        lines.append(f"| {seq} | {_fmt_bytes(max(full.sent_bytes))} | {_fmt_bytes(max(naive.sent_bytes))} | "
                     f"{_fmt_s(full.latency_s['lan'])} / {_fmt_s(full.latency_s['wan'])} | "
                     f"{_fmt_s(naive.latency_s['lan'])} / {_fmt_s(naive.latency_s['wan'])} |")
    lines.append("")


def _gather(method: str, level: str, heads=32, T=1024, d=32, cluster=16, kept_tokens=192):
    """Gather kept_tokens keys per head: token by token (one-hot over T) or cluster by cluster (over T/16)."""
    s = mpsim.Session(parties=2, backend="count", seed=0)
    if level == "token":
        n, k, width = T, kept_tokens, d
    else:
        n, k, width = T // cluster, kept_tokens // cluster, cluster * d
    cache = s.reusable(s.placeholder((heads, n, width)))
    index = s.placeholder((heads, k), frac_bits=0)
    mark = s.mark()
    oh = P.onehot(index, n, method=method)
    P.gather(cache, oh, kind="onehot")
    return _cost(s, mark)


def claim_c(lines):
    lines += ["## (c) Cluster-level vs token-level gathering (T = 1024, 64 clusters of 16)", "",
              "Paper: 73.5x less latency and 369.8x less communication for cluster-level gathering, with the "
              "equality-based one-hot. Ours: 32 heads x 32 dims (the paper's operator shapes), 192 tokens kept "
              "per head (12 clusters), the KV cache a reusable masked operand (the gather opens only the one-hot).",
              "", "| one-hot | level | rounds | bytes/party | LAN | WAN |", "|---|---|---|---|---|---|"]
    results = {}
    for method in ("equality", "rotation"):
        for level in ("token", "cluster"):
            c, t = _gather(method, level)
            results[(method, level)] = (c, t)
            lines.append(f"| {method} | {level} | {c.rounds} | {_fmt_bytes(c.sent[0])} | {_fmt_s(t['lan'])} | "
                         f"{_fmt_s(t['wan'])} |")
    for method in ("equality", "rotation"):
        (ct, tt), (cc, tc) = results[(method, "token")], results[(method, "cluster")]
        lines.append(f"\n{method} one-hot: cluster-level is **{ct.sent[0] / cc.sent[0]:.1f}x** less communication, "
                     f"**{tt['lan'] / tc['lan']:.1f}x** (LAN) / **{tt['wan'] / tc['wan']:.1f}x** (WAN) less latency.")
    lines += ["", "Both levels need the same number of rounds, so the latency gain is largest where bandwidth "
              "dominates (LAN) and smaller where round latency does (WAN). With equality tests the byte gap is "
              "the paper's s^2 = 256 fewer tests (our equality test has a fixed width, so the shorter indices "
              "do not shrink it further). With the rotation one-hot the one-hot itself costs a few bits per "
              "index; what remains is opening the one-hot in its product with the masked cache, which also "
              "shrinks by s^2.", ""]


def claim_d(lines):
    heads, clusters, d = 32, 64, 32
    s = mpsim.Session(parties=2, backend="count", seed=0)
    q = s.placeholder((heads, 1, d))
    rmax, rmin = s.placeholder((heads, clusters, d)), s.placeholder((heads, clusters, d))
    mark = s.mark()
    combined = rmax * 0.6 + rmin * 0.4  # local products with public constants (+ truncation)
    q @ combined.swapaxes(-1, -2)
    lin, lin_t = _cost(s, mark)
    lin_msb = s.ledger.select(scope="msb", since=mark)
    mark = s.mark()
    qb = q.broadcast_to((heads, clusters, d))
    P.maximum(qb * rmax, qb * rmin).sum(axis=-1)
    bound, bound_t = _cost(s, mark)
    msb_bits = sum(m.bits for m in s.ledger.select(scope="msb", since=mark) if m.src == 0)
    per_msb = 64 + 2 * (2 * 64 - 2 - 6)
    lines += ["## (d) The linear similarity needs no comparisons", "",
              f"Paper: the max-based bound needs H*C*d secure max operations; q . (a r_max + (1-a) r_min) needs "
              f"none. Ours, H = {heads}, C = {clusters}, d = {d}:", "",
              "| similarity | comparisons | rounds | bytes/party | LAN | WAN |", "|---|---|---|---|---|---|",
              f"| linear (one product) | {len(lin_msb)} | {lin.rounds} | {_fmt_bytes(lin.sent[0])} | "
              f"{_fmt_s(lin_t['lan'])} | {_fmt_s(lin_t['wan'])} |",
              f"| max bound | {msb_bits // per_msb} (= H C d = {heads * clusters * d}) | {bound.rounds} | "
              f"{_fmt_bytes(bound.sent[0])} | {_fmt_s(bound_t['lan'])} | {_fmt_s(bound_t['wan'])} |", ""]


def _selection_by_layer(share: bool, model="llama2-7b", seq=4096):
    from mpcache import decode_step, get_model, prepare
    from mpcache.policies import get_policy

    m = get_model(model)
    s = mpsim.Session(parties=2, backend="count", seed=0)
    run = prepare(s, m, seq, policy=get_policy("mpcache", share_layers=share))
    mark = s.mark()
    decode_step(run)
    per_layer = [s.ledger.cost(scope=f"/step/layer{i}/select", since=mark).sent[0] for i in range(m.layers)]
    return per_layer, s.cost(since=mark), {p.name: estimate(s, p, since=mark).total_s for p in NETS}


def claim_e(lines):
    lines += ["## (e) Cross-layer index sharing halves the selection overhead of the sharing layers", ""]
    if "mpcache" not in POLICIES:
        lines += ["**Not measured yet**: the `mpcache` policy is not built.", ""]
        return
    off, c_off, t_off = _selection_by_layer(False)
    on, c_on, t_on = _selection_by_layer(True)
    sharing = [i for i in range(len(on)) if on[i] != off[i] or i >= 2]
    lines += ["Paper: adjacent layers from layer 2 on share the selected indices, halving the dynamic-selection "
              "overhead with little accuracy impact. Ours: `llama2-7b`, 4096 tokens, one step, the policy's "
              "default sharing pattern (layers 0 and 1 select on their own; from layer 2 an even layer selects "
              "and the next odd layer reuses its choice):", "",
              "| index sharing | selection bytes/party, layers 0-1 | selection bytes/party, layers 2+ | "
              "step bytes/party | step LAN / WAN |", "|---|---|---|---|---|"]
    for name, sel, c, t in (("off", off, c_off, t_off), ("on", on, c_on, t_on)):
        lines.append(f"| {name} | {_fmt_bytes(sum(sel[:2]))} | {_fmt_bytes(sum(sel[2:]))} | {_fmt_bytes(c.sent[0])} | "
                     f"{_fmt_s(t['lan'])} / {_fmt_s(t['wan'])} |")
    ratio = sum(on[2:]) / sum(off[2:])
    lines += [f"\nSelection bytes of the sharing layers (2+) with sharing / without: **{ratio:.2f}** (a follower "
              "layer still gathers its own keys and values with the leader's choice, so the ratio is above 1/2 "
              "by the gathers' share).", ""]


PAPER_APPROX = P.NonlinearConfig(softmax_method="puma")  # the reference scripts' hack_softmax (mpcache.md 8.3)


def _ratio_table(lines, model, seqs, compute, approx, scheme="additive"):
    """One row per length: full / mpcache in communication and latency; returns {seq: (comm, lan, wan)}."""
    parties = 3 if scheme == "aby3" else 2
    lines += ["| tokens | comm. full / mpcache | LAN full / mpcache | WAN full / mpcache | "
              "LAN with compute | WAN with compute | mpcache bytes/party | mpcache rounds |",
              "|---|---|---|---|---|---|---|---|"]
    out = {}
    for seq in seqs:
        full, mpc = (measure(model, seq, name, compute=compute, approx=approx, scheme=scheme, parties=parties)
                     for name in ("full", "mpcache"))
        comm = max(full.sent_bytes) / max(mpc.sent_bytes)
        lan = full.latency_s["lan"] / mpc.latency_s["lan"]
        wan = full.latency_s["wan"] / mpc.latency_s["wan"]
        net = {name: s_.network_latency_s for name, s_ in (("full", full), ("mpcache", mpc))}  # same ledgers
        out[seq] = (comm, net["full"]["lan"] / net["mpcache"]["lan"], net["full"]["wan"] / net["mpcache"]["wan"])
        lines.append(f"| {seq} | {comm:.2f}x | {out[seq][1]:.2f}x | {out[seq][2]:.2f}x | {lan:.2f}x | {wan:.2f}x | "
                     f"{_fmt_bytes(max(mpc.sent_bytes))} | {mpc.rounds} |")
    lines.append("")
    return out


SOFTMAXES = (("the reference scripts' softmax (`puma`)", PAPER_APPROX), ("our default exact softmax", None))


def _ratio_tables(lines, seqs, compute, scheme: str, tag: str) -> dict:
    """One ratio table per softmax and model; returns {(softmax label, model): {seq: (comm, lan, wan)}}."""
    results = {}
    for label, approx in SOFTMAXES:
        for model in ("mpcache-proxy", "llama2-7b"):
            lines += ["", f"`{model}`, {tag}{label}:", ""]
            results[(label, model)] = _ratio_table(lines, model, seqs, compute, approx, scheme=scheme)
    return results


def _paper_targets(proxy: dict) -> list:
    """The paper's ratios as (target, met, measured) rows, on one model's {seq: (comm, lan, wan)}."""
    best = max(proxy, key=lambda t: proxy[t][0])
    return [("communication >= 3.39x at 2048 tokens", proxy[2048][0] >= 3.39, f"{proxy[2048][0]:.2f}x"),
            ("communication >= 8.37x at the best length", proxy[best][0] >= 8.37, f"{proxy[best][0]:.2f}x at {best}"),
            ("LAN latency >= 2.01x at the best length", proxy[best][1] >= 2.01, f"{proxy[best][1]:.2f}x")]


def _target_table(lines, title: str, checks) -> None:
    lines += [title, "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, ok, value in checks]
    lines.append("")


def claim_f(lines, seqs, compute):
    lines += ["## (f) MPCache vs full KV cache per decode step", "",
              "Paper: 1.8x to 2.01x less latency and 3.39x to 8.37x less communication, growing with length "
              "(lengths not stated). The paper's numbers come from its SPU scripts, whose softmax is "
              "`hack_softmax` (max, exp by Pade clipped to 0 below -14, one reciprocal per row): our "
              "`softmax(method=\"puma\")`, selected for the whole run by "
              "`NonlinearConfig(softmax_method=\"puma\")` (`mpsim decode --softmax puma`). We measure both that "
              "configuration and our default exact softmax (limit exp, 8 squarings). MPCache's per-step defaults: "
              "static keep 30%, clusters 32 then 16, ratios 0.5 and 0.2, alpha 0.6, index sharing from layer 2."]
    if "mpcache" not in POLICIES:
        lines += ["", "**Not measured yet**: the `mpcache` policy is not built.", ""]
        return {}
    results = _ratio_tables(lines, seqs, compute, "additive", "")
    for label, _ in SOFTMAXES:
        proxy = results.get((label, "mpcache-proxy"), {})
        if 2048 not in proxy:
            continue
        best = max(proxy, key=lambda t: proxy[t][0])
        checks = _paper_targets(proxy) + [("no collapse at the longest length",
                                           proxy[max(proxy)][0] >= proxy[best][0] * 0.9,
                                           f"{proxy[max(proxy)][0]:.2f}x at {max(proxy)}")]
        _target_table(lines, f"### The issue's targets (`mpcache-proxy`, 2 parties), {label}", checks)
    lines += ["Why the two configurations differ, and where ours differ from the paper. MPCache keeps about 30% of "
              "the tokens statically and attends to about 20% of those, so the softmax, the cost of full attention "
              "per token, shrinks 16-fold; what remains per kept token and head is 16 bytes that no selection "
              "removes (the candidate scores masked for the rotated gather, and the weights opened in the product "
              "with the reusable V: a gather by a secret index from a reusable operand must open every row or have "
              "the dealer ship every row per index), plus the top-k over cluster summaries. The dearer the softmax "
              "per token, the larger the ratio: the reference scripts' softmax (about 207 bytes per element, "
              "with its clipping comparisons) gives a larger ratio than our exact one (about 121). On the WAN "
              "every policy is round-bound, and MPCache adds the sequential rounds of its two top-k levels "
              "(a shuffle, then batches of comparisons of 8 rounds each) to each selecting layer, so its WAN "
              "latency stays above full attention's at these lengths; on the LAN, short lengths are round-bound "
              "too. For `llama2-7b` the linear layers, norms and MLP are a fixed cost per step that dominates at "
              "short lengths. The one-off setup (masking, and the look-once importance softmax over the last 20% "
              "of the prompt, which a private prefill computes anyway) is reported by `mpsim decode` apart and "
              "is not amortised here.", ""]
    return results


def claim_f_3pc(lines, seqs, compute):
    """Claim (f) in the paper's own setting: ABY3 3PC (issue 11, item 4)."""
    lines += ["## (f) in 3PC: ABY3, the paper's own setting", "",
              "The paper measured MPCache in 3-party replicated sharing (ABY3 on SecretFlow SPU). Ours: "
              "`Session(parties=3, scheme=\"aby3\")` (`mpsim decode --scheme aby3`): replicated products with "
              "one reshare, ABY3 share truncation fused into products, MSB by an edaBit opening and a carry "
              "tree, bit injection by daBits, max by a tournament with fused round trips, a 3-party shuffle for "
              "the top-k; no dealer: the edaBits, daBits and rotation one-hots are made by the parties "
              "(offline bytes are theirs). ABY3 "
              "has no reusable masked operands, so both policies run with reuse off and MPCache uses its "
              "cluster gather (one-hot @ scores); bytes are the busiest party's."]
    results = _ratio_tables(lines, seqs, compute, "aby3", "3PC, ")
    proxy = results[(SOFTMAXES[0][0], "mpcache-proxy")]
    if 2048 in proxy:
        _target_table(lines, "### The issue's targets (`mpcache-proxy`, 3PC, `puma`)", _paper_targets(proxy))
    lines += ["What makes 2PC and 3PC differ. A replicated product costs K bits per output element and party, "
              "against 2K per operand element for a Beaver product, so the softmax's products are cheaper; but "
              "without reusable masks the full-attention baseline pays its q.K^T and weights.V products in full "
              "(2PC reuses the masked cache and opens only the activation), which raises the ratio at long "
              "contexts. The MSB is the same protocol in both (1 + log2 K rounds), but a selection takes two "
              "rounds in 3PC (a daBit opening, then a replicated product; the Beaver form fuses both into one) "
              "and every fixed-point product two (the truncation fused into it), so rounds grow and the WAN, "
              "round-bound, gains least; the max saves a round per tournament level by fusing round trips.", ""]


def claim_f_fss(lines, seqs, compute, beaver: dict):
    """Claim (f) with the FSS suite (issue 12): two parties, DCF comparisons, Beaver products."""
    lines += ["## (f) with the FSS suite: one-round comparisons", "",
              "`Session(parties=2, scheme=\"fss\")` (`mpsim decode --scheme fss`): the same two-party scheme and "
              "dealer, with every comparison (the msb under the top-k comparators, argmax, where) by one masked "
              "opening and a distributed comparison function (1 round, 8 bytes per element; the keys are offline "
              "bytes), and ReLU, each level of the max tournament, exp, SiLU and GeLU by one spline gate each "
              "(1 round), reciprocal and rsqrt by a normalising gate, a spline gate and one product (3 rounds). "
              "Products, truncation and reusable operands stay Beaver. A cheaper softmax cheapens full attention "
              "most (its max runs over the whole cache), so the communication ratios fall below the Beaver "
              "suite's; what is left on MPCache's critical path is its selection (per selecting layer two top-k "
              "stages of 6 rounds each and the similarity, against the 4 tournament levels its smaller softmax "
              "saves), so the WAN ratios stay near 1. The suite's exp is the one spline whatever the "
              "configuration (PUMA's clip and Pade exp are not used), so its two softmax configurations give the "
              "same tables."]
    results = _ratio_tables(lines, seqs, compute, "fss", "FSS suite, ")
    ours = SOFTMAXES[1][0]
    llama, proxy = results[(ours, "llama2-7b")], results[(ours, "mpcache-proxy")]
    checks = []
    if 4096 in llama:
        checks.append(("llama2-7b, 4096 tokens: WAN latency >= 1.2x", llama[4096][2] >= 1.2, f"{llama[4096][2]:.2f}x"))
    if 32768 in proxy:
        checks.append(("mpcache-proxy, 32768 tokens: WAN latency >= 1.8x", proxy[32768][2] >= 1.8,
                       f"{proxy[32768][2]:.2f}x"))
    best = max(proxy, key=lambda t: proxy[t][1])
    checks.append(("mpcache-proxy: LAN latency >= 2.01x at the best length", proxy[best][1] >= 2.01,
                   f"{proxy[best][1]:.2f}x at {best}"))
    worse = [(label, model, seq) for (label, model), table in results.items() for seq, (comm, _, _) in table.items()
             if comm < beaver.get((label, model), {}).get(seq, (0,))[0] - 0.005]
    checks.append(("communication ratios no worse than the Beaver suite's", not worse,
                   "every length" if not worse else f"{len(worse)} cells worse, e.g. {worse[0][1]} at {worse[0][2]}"))
    _target_table(lines, f"### Issue 12's targets (FSS suite, {ours})", checks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    start = time.time()
    short = [128, 512, 1024] if args.quick else [128, 256, 512, 1024, 2048, 4096]
    long = [512, 2048] if args.quick else [512, 1024, 2048, 4096, 8192, 16384, 32768]
    compute = calibrate()
    lines = ["# MPCache's cost claims, reproduced with mpsim", "",
             f"Generated by `python benchmarks/bench_mpcache.py` (mpsim {mpsim.__version__}). Configuration: 2 "
             "parties, ring Z_2^64, 16 fractional bits, count backend (exact ledgers, no data), local "
             "(SecureML) truncation, default approximation knobs (`protocols.NonlinearConfig()`), reusable "
             "masked weights and KV cache, one decode step after the prefilled cache; networks `lan` "
             "(3 Gbit/s, 0.3 ms RTT) and `wan` (400 Mbit/s, 40 ms RTT), one one-way latency per round; compute "
             f"term (where stated) calibrated on this machine: {compute.mac_per_s / 1e9:.2f} G ring MAC/s, "
             f"{compute.elem_per_s / 1e9:.2f} G element ops/s.", ""]
    claim_a(lines, short)
    claim_b(lines, short)
    claim_c(lines)
    claim_d(lines)
    claim_e(lines)
    beaver = claim_f(lines, long, compute)
    claim_f_3pc(lines, long, compute)
    claim_f_fss(lines, long, compute, beaver)
    text = "\n".join(lines) + "\n"
    old = Path(args.out).read_text() if Path(args.out).exists() else ""
    if ANSWERS_BEGIN in old and ANSWERS_END in old:  # bench_answer.py's section, kept as it wrote it
        text += "\n" + ANSWERS_BEGIN + old.split(ANSWERS_BEGIN, 1)[1].split(ANSWERS_END, 1)[0] + ANSWERS_END + "\n"
    Path(args.out).write_text(text)
    sys.stdout.write(text)
    print(f"({time.time() - start:.1f} s; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
