"""What each party sees, and statistical tests that it does not depend on the secrets.

A party's view of a run is its own shares (of the inputs, and of every correlation: those come from its own
seeds and cannot depend on a secret) plus every message it receives. :func:`record` collects the received
part from the channel (:meth:`mpsim.channel.Channel.watch`) and the input sharings that a test registers,
and :func:`independence_problems` checks a set of such transcripts, taken over many seeds for two different
secrets, against what a secure protocol must show:

* **structure**: the same calls, ops, shapes and widths whatever the secret and the seed (control flow
  depends only on public values); for a randomized protocol only the common prefix is compared position by
  position, the rest is pooled per (op, width);
* **uniformity**: every message row, every opened value and every input share (alone, and any N - 1 of
  them summed, the owner's included) is uniform on its ``width`` low bits, tested twice, on the bits and on
  their Gray code ``w ^ (w >> 1)`` (a bijection, so uniform iff the word is; sign-extended small values,
  whose bits are each balanced but all equal, fail it). A bit's frequency over n samples may differ from
  1/2 by at most ``sqrt(ln(2 / ALPHA) / 2n)``: by Hoeffding's inequality a uniform bit fails with
  probability below ``ALPHA`` = 1e-12;
* **freshness**: at every position of the aligned transcript, every low bit takes both values over the
  seeds (a value opened without its mask is the same in every run). A uniform bit is constant over S
  seeds with probability 2^(1 - S): 1.8e-12 for the S = 40 the registry tests use;
* **declared leaks** (``leaked`` = {op: kind} per protocol): "output" openings (``reveal``) are the
  protocol's result and exempt from uniformity (their rows are still tested); "independent" openings (the
  shuffle top-k's comparison outcomes) must vary over the seeds and have the same bit frequencies under
  both secrets (Hoeffding for the difference of two means, failure probability below ``ALPHA``).

With every test below 1e-12 per bit or cell and a few million bits and cells in the whole registry
battery, a correct protocol suite fails by chance with probability below 1e-5; CI is seeded, so a run is
deterministic anyway. :func:`disabled_mask` is the mutation that proves these tests bite: it zeroes one
random component of one dealer correlation (a valid, consistent correlation, as the ideal backend uses,
so the protocol still computes the right result) and the tests must then fail.
"""
from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .channel import Observation

ALPHA = 1e-12  # per-bit false-alarm bound of the frequency tests


@dataclass
class Transcript:
    """One run's received messages and input sharings, for one session."""

    parties: int
    ring_bits: int
    # rows[p]: the payload rows party p holds; coalition: how many parties may collude (the scheme's
    # threshold). Additive: each party its own row, any N - 1 together. ABY3: rows p and p + 1, one party.
    rows: tuple = ()
    coalition: int = 0
    observations: list = field(default_factory=list)
    inputs: list = field(default_factory=list)  # (label, (N, *shape) payload, kind, width or None: K)
    outputs: list = field(default_factory=list)  # (label, kind, (N, *shape) payload of a result sharing)

    def add_input(self, tensor, label: str = "input") -> None:
        self.inputs.append((label, np.array(tensor.payload, copy=True), "A", None))

    def add_output(self, tensor, label: str = "output") -> None:
        self.outputs.append((label, tensor.kind, np.array(tensor.payload, copy=True)))


@contextmanager
def record(session):
    """``with record(s) as t:`` collects every value the channel delivers into ``t.observations``."""
    rows = getattr(session.scheme, "party_rows", None)
    transcript = Transcript(session.parties, session.ring.bits,
                            rows=tuple(rows(session.parties)) if rows else (),
                            coalition=getattr(session.scheme, "coalition", lambda n: n - 1)(session.parties))
    stop = session.channel.watch(transcript.observations.append)
    keys = getattr(session, "keys", None)
    # Correlation sharings the parties make themselves (ABY3) join each party's view like inputs.
    unwatch = keys.watch(lambda label, payload, kind="A", width=None: transcript.inputs.append(
        (label, np.array(payload, copy=True), kind, width))) \
        if hasattr(keys, "watch") else None
    try:
        yield transcript
    finally:
        stop()
        if unwatch:
            unwatch()


def _low(words: np.ndarray, width: int) -> np.ndarray:
    words = np.asarray(words, dtype=np.uint64)
    return words if width >= 64 else words & np.uint64((1 << width) - 1)


def _bit_means(words: np.ndarray, width: int) -> np.ndarray:
    """Frequency of each of the ``width`` low bits over all elements of ``words``."""
    little = np.ascontiguousarray(words.reshape(-1), dtype="<u8")
    bits = np.unpackbits(little.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    return bits[:, :width].mean(axis=0)


def bit_tolerance(n: int, alpha: float = ALPHA) -> float:
    """Hoeffding: a fair bit's frequency over n samples is this far from 1/2 with probability < alpha."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def uniformity_problem(words, width: int, label: str) -> str | None:
    """None if the low ``width`` bits of ``words`` and of their Gray code look uniform, else why not."""
    w = _low(words, width)
    if w.size == 0 or width == 0:
        return None
    tol = bit_tolerance(w.size)
    for coded, name in ((w, "bit"), (w ^ (w >> np.uint64(1)), "Gray-code bit")):
        deviation = np.abs(_bit_means(coded, width) - 0.5)
        worst = int(np.argmax(deviation))
        if deviation[worst] > tol:
            return (f"{label}: {name} {worst} has frequency {0.5 + deviation[worst]:.3f} or "
                    f"{0.5 - deviation[worst]:.3f} over {w.size} samples (uniform: 0.5 +- {tol:.3f})")
    return None


def freshness_problem(stack, width: int, label: str) -> str | None:
    """None if, at every position, each low bit of ``stack`` (seeds, *shape) varies over the seeds."""
    w = _low(stack, width).reshape(len(stack), -1)
    if len(w) < 2 or w.shape[1] == 0 or width == 0:
        return None
    varying = np.bitwise_or.reduce(w ^ w[:1], axis=0)
    stuck = ~varying & np.uint64((1 << width) - 1 if width < 64 else 0xFFFFFFFFFFFFFFFF)
    if np.any(stuck):
        position = int(np.flatnonzero(stuck)[0])
        bit = int(stuck[position]).bit_length() - 1
        return f"{label}: bit {bit} at element {position} is the same in all {len(w)} runs"
    return None


def same_law_problem(a, b, width: int, label: str) -> str | None:
    """None if the low bits of two samples have the same frequencies (Hoeffding for a difference)."""
    a, b = _low(a, width), _low(b, width)
    if a.size == 0 or b.size == 0 or width == 0:
        return None
    tol = math.sqrt(math.log(2 / ALPHA) * (1 / a.size + 1 / b.size) / 2)
    gap = np.abs(_bit_means(a, width) - _bit_means(b, width))
    worst = int(np.argmax(gap))
    if gap[worst] > tol:
        return f"{label}: bit {worst} frequency differs by {gap[worst]:.3f} between the secrets (allowed {tol:.3f})"
    return None


# -- what one run shows ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quantity:
    """One array of words a party (or N - 1 colluding parties) sees, labelled for error messages."""

    key: tuple  # identifies the quantity across runs: (observation index or pool key, what)
    label: str
    words: np.ndarray
    width: int
    leak: str | None = None  # None (must be uniform), "output", "independent" or "share" (a result share)


def _views(transcript: Transcript):
    """(label, rows) of what each party, and each largest coalition the scheme tolerates, holds of a sharing."""
    n = transcript.parties
    rows = transcript.rows or tuple((p,) for p in range(n))
    coalition = transcript.coalition or n - 1
    views = [(f"party {p}'s share" + ("s" if len(r) > 1 else ""), tuple(r), ("p", p)) for p, r in enumerate(rows)]
    if coalition > 1:
        for group in itertools.combinations(range(n), coalition):
            held = tuple(sorted({row for p in group for row in rows[p]}))
            if len(held) < n:
                views.append((f"parties {list(group)}' shares", held, ("c",) + group))
    return views


def _combined(payload, held, kind, k):
    if len(held) == 1:
        return payload[held[0]]
    if kind == "B":
        return np.bitwise_xor.reduce(payload[list(held)], axis=0)
    return np.sum(payload[list(held)], axis=0, dtype=np.uint64) & np.uint64((1 << k) - 1)


def _view_quantities(transcript, tag, i, label, kind, payload, leak, width=None):
    """Each row a view holds alone, and the rows of a view combined (their sum, or XOR), on ``width`` bits
    (default: the ring's)."""
    out, k, seen = [], transcript.ring_bits if width is None else width, set()
    for name, held, key in _views(transcript):
        for row in held:
            if len(held) > 1 and row not in seen and key[0] == "p":
                seen.add(row)
                out.append(Quantity((tag, i, "row", row), f"{label} #{i}: share row {row}", payload[row], k, leak))
        what = f"{label} #{i}: {name}" + (" combined" if len(held) > 1 else "")
        out.append(Quantity((tag, i) + key, what, _combined(payload, held, kind, k), k, leak))
    return out


def _input_quantities(transcript: Transcript, aligned: int | None = None) -> list[Quantity]:
    """The input sharings' quantities; from index ``aligned`` on (a randomized protocol's correlations made
    after its first data-independent branch) keyed by label only, for pooling."""
    out = []
    for i, (label, payload, kind, width) in enumerate(transcript.inputs):
        if aligned is None or i < aligned:
            out += _view_quantities(transcript, "in", i, label, kind, payload, None, width)
        else:
            out += _view_quantities(transcript, "pool", ("in", label), label, kind, payload, None, width)
    return out


def _output_quantities(transcript: Transcript) -> list[Quantity]:
    """Each party's own share of each result (and every tolerated coalition's, jointly): not uniform in
    general (a locally truncated share has constant top bits) but distributed independently of the secret
    ("share" leak: the two secrets' bit frequencies must agree)."""
    out = []
    for i, (label, kind, payload) in enumerate(transcript.outputs):
        out += _view_quantities(transcript, "out", i, label, kind, payload, "share")
    return out


def _observation_quantities(obs: Observation, key, leak: str | None, ring_bits: int) -> list[Quantity]:
    where = f"{obs.scope or '(root)'} {obs.op}"
    out = []
    width = min(obs.width, ring_bits)
    if obs.value is not None:
        out.append(Quantity(key + ("value",), f"{where}: opened value", np.asarray(obs.value), width, leak))
    if obs.rows is not None:
        for q in obs.senders:
            out.append(Quantity(key + ("row", q), f"{where}: party {q}'s message", np.asarray(obs.rows[q]), width))
    return out


def quantities(transcript: Transcript, leaks=None, prefix: int | None = None) -> list[Quantity]:
    """Everything a run shows: input shares, then each observation's opened value and message rows.

    ``leaks(observation)`` names an observation's declared leak (None, "output", "independent"). ``prefix``
    (randomized protocols): the length of the structure all runs share (``signature``: inputs, outputs, then
    observations); inputs beyond it are keyed by label and observations by (op, width) only, for pooling.
    """
    n_in, n_out = len(transcript.inputs), len(transcript.outputs)
    out = _input_quantities(transcript, None if prefix is None else min(prefix, n_in)) + _output_quantities(transcript)
    for i, obs in enumerate(transcript.observations):
        aligned = prefix is None or i < prefix - n_in - n_out
        key = ("obs", i) if aligned else ("pool", obs.op, obs.width)
        out += _observation_quantities(obs, key, leaks(obs) if leaks else None, transcript.ring_bits)
    return out


def signature(transcript: Transcript) -> list[tuple]:
    """The public structure of a run: per observation its op, scope, width and shapes (value and rows)."""
    inputs = [("input", label, payload.shape) for label, payload, _, _ in transcript.inputs]
    outputs = [("output", label, kind, payload.shape) for label, kind, payload in transcript.outputs]
    return inputs + outputs + [(o.op, o.scope, o.width, np.shape(o.value), np.shape(o.rows))
                               for o in transcript.observations]


def _common_prefix(signatures) -> int:
    first = signatures[0]
    length = min(len(s) for s in signatures)
    for i in range(length):
        if any(s[i] != first[i] for s in signatures[1:]):
            return i
    return length


def independence_problems(runs: dict, leaks=None, randomized: bool = False) -> list[str]:
    """Check transcripts ``runs`` = {secret label: [Transcript per seed]} (the same seeds for every secret).

    Returns a list of problems (empty: nothing found). See the module docstring for the tests.
    """
    problems = []
    all_runs = [t for ts in runs.values() for t in ts]
    signatures = [signature(t) for t in all_runs]
    if randomized:
        prefix = _common_prefix(signatures)
    else:
        prefix = None
        if any(s != signatures[0] for s in signatures[1:]):
            i = _common_prefix(signatures)
            problems.append(f"the transcript's structure depends on the secret or the seed (first at item {i})")
            return problems
    pooled = {}
    for secret, transcripts in runs.items():
        per_run = [quantities(t, leaks, prefix) for t in transcripts]
        groups: dict[tuple, list[Quantity]] = {}
        for qs in per_run:
            for q in qs:
                groups.setdefault(q.key, []).append(q)
        for key, group in groups.items():
            q0 = group[0]
            label = f"[{secret}] {q0.label}"
            aligned = key[0] != "pool"
            if q0.leak == "share":
                pooled.setdefault((key, q0.width), {})[secret] = np.concatenate([q.words.reshape(-1) for q in group])
                continue
            if q0.leak != "output":
                if aligned:
                    problems.append(freshness_problem(np.stack([q.words for q in group]), q0.width, label))
                if q0.leak is None:
                    words = np.concatenate([q.words.reshape(-1) for q in group])
                    problems.append(uniformity_problem(words, q0.width, label))
            if q0.leak == "independent":
                pooled.setdefault((key, q0.width), {})[secret] = np.concatenate(
                    [q.words.reshape(-1) for q in group])
    for (key, width), by_secret in pooled.items():
        samples = list(by_secret.values())
        what = "a party's result share" if key[0] == "out" else "declared-independent openings"
        for other in samples[1:]:
            problems.append(same_law_problem(samples[0], other, width, f"{what} {key}"))
    return [p for p in problems if p]


# -- the mutation: one mask disabled ---------------------------------------------------------------------------
@contextmanager
def counted_draws(session, correlation: str):
    """Within the block, every use of dealer correlation ``correlation`` appends to the yielded list how many
    random draws (``_random``, ``_random_shared`` and ``_permutations``) it made: its components, to enumerate the mutations."""
    counts = []
    with _patched(_source(session, correlation), correlation, None, counts):
        yield counts


@contextmanager
def disabled_mask(session, correlation: str, component: int | None = None):
    """Within the block, every use of dealer correlation ``correlation`` draws its ``component``-th random
    part (all of them when None) as zeros, and a permutation as the identity. The correlation stays valid
    (its derived parts are computed from the zeroed draws), so results stay right; only the secrecy goes."""
    with _patched(_source(session, correlation), correlation, component, None):
        yield


def _source(session, correlation: str):
    """Where ``correlation`` comes from: the scheme's own keys (ABY3's ``session.keys``, which then make
    every correlation), or the dealer."""
    for source in (session.keys, session.dealer):
        if source is not None and correlation in type(source).correlations():
            return source
    offered = [c for src in (session.dealer, session.keys) if src is not None for c in type(src).correlations()]
    raise ValueError(f"unknown correlation {correlation!r}; this session offers {offered}")


@contextmanager
def _patched(dealer, correlation: str, component, counts):
    method = getattr(dealer, correlation)
    random = dealer._random
    permutations = getattr(dealer, "_permutations", None)
    random_shared = getattr(dealer, "_random_shared", None)

    def mutated(*args, **kwargs):
        draws = itertools.count()

        def hit() -> bool:
            i = next(draws)
            return counts is None and (component is None or i == component)

        def zeroed_random(shape):
            out = random(shape)  # draw anyway: the PRG stream stays where it would be
            return np.zeros_like(out) if out is not None and hit() else out

        def identity_permutations(rows, n):
            out = permutations(rows, n)
            return np.broadcast_to(np.arange(n), out.shape).copy() if hit() else out

        def zeroed_random_shared(shape, kind="A"):
            shares, value = random_shared(shape, kind)  # drawn anyway, as above
            if value is None or not hit():
                return shares, value
            shares = shares.copy()  # shares of zero: party 0's share cancels the others'
            if kind == "A":
                shares[0, ...] = dealer.ring.reduce(shares[0, ...] - value)
            else:
                shares[0, ...] ^= value
            return shares, np.zeros_like(value)

        # A correlation made from others (an ABY3 edaBit draws zero sharings) nests these patches: each
        # restores what it found, so the draws of an inner correlation count as the inner one's.
        names = ("_random", "_permutations", "_random_shared")
        outer = {name: dealer.__dict__[name] for name in names if name in dealer.__dict__}
        dealer._random = zeroed_random
        if permutations is not None:
            dealer._permutations = identity_permutations
        if random_shared is not None:
            dealer._random_shared = zeroed_random_shared
        try:
            return method(*args, **kwargs)
        finally:
            for name in names:
                if name in outer:
                    setattr(dealer, name, outer[name])
                elif name in dealer.__dict__:
                    delattr(dealer, name)
            if counts is not None:
                counts.append(next(draws))

    setattr(dealer, correlation, mutated)
    try:
        yield
    finally:
        delattr(dealer, correlation)
