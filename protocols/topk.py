"""Top-k along an axis, batched over every other axis, by three methods; values and secret one-hots.

``topk(x, k, axis)`` returns the k largest values along ``axis`` (shape (..., k)) and a secret one-hot of
their positions (shape (..., k, n), aligned with the values), optionally the secret indices. Values come in
unspecified order unless ``sorted=True`` (then descending). Methods:

* ``"max"``: k rounds of argmax (a tournament), each followed by masking the winner out with its one-hot
  (a local product with a public constant). Deterministic; ties go to the lower index; about
  k ceil(log2 n) comparison layers.
* ``"sort"``: a bitonic network pruned for top-k: sort chunks of k' = 2^ceil(log2 k) descending, then
  repeatedly merge pairs of chunks keeping only the upper half (max(A[i], B[k'-1-i]) is a bitonic sequence
  holding the top k' of both) and clean it with a bitonic merge. Deterministic, output sorted, fixed rounds.
  A sorting network is not stable, so it compares the shuffle method's packed keys x 2^b + (T - 1 - j)
  (T = n rounded up to a power of two, b = log2 T), which are distinct and order ties by the lower index j;
  x moves with its key, and the one-hot is read off the key's low b bits. Requires |x| < 2^(K-2-b-f).
* ``"shuffle"``: shuffle-then-select (randomized cost). Keys are made distinct by packing the reversed
  original index into the low bits (key = x 2^b + (n - 1 - j), b = ceil(log2 n), so that ties go to the lower
  index as in the other methods); each row is shuffled obliviously by two
  dealer-assisted resharing passes with permutations chosen by party 0 and by party 1, so no single party
  knows the composed permutation; then quickselect opens only the outcomes of comparisons against pivots
  among the shuffled keys. Security: the keys are distinct, so the outcomes are a function of the ranks of
  the shuffled positions only; under a uniform permutation unknown to every party those ranks are a uniform
  permutation independent of the data, so the transcript (and the number of rounds) is independent of the
  secrets. Ties in x are broken by j inside the key, never by shuffled position (which would leak: an
  all-equal row would give a fixed transcript). The one-hot comes from the key's low b bits (a rotation
  one-hot of n - 1 - j, which reduces the key mod 2^b, read backwards), the values from the shuffled copy of
  x. Requires
  |x| < 2^(K-2-b-f) so that key differences do not wrap.
* ``"pivots"``: the shuffle method with a selection built for rounds (``select_positions_pivots``): per batch
  every candidate against 16 sample pivots, and every pair once 64 or fewer are left, so rows of a few hundred
  take 2 or 3 comparison batches instead of quickselect's 7 to 12, for about 7 to 18 times the comparisons.
  The same security argument: every opened outcome compares two shuffled distinct keys.

``method="auto"`` picks the method with the lowest estimated latency on a 3 Gbit/s, 0.3 ms-RTT LAN
(rounds x RTT/2 + bytes per party / bandwidth), with the shuffle method's expected rounds and comparisons
estimated by a seeded plaintext simulation of quickselect on random ranks, among the methods whose domain
covers the session's product range (``in_domain``): as ring integers (|x| 2^frac), max needs |x| < 2^(K-4),
sort and shuffle |x| < 2^(K-2-b), b = ceil(log2 n) index bits; the range to cover is |x| < 2^(K-2-f) (f the
session's fractional bits: a value x can be multiplied by a real of magnitude up to 1 and truncated exactly),
capped at max's 2^(K-4). So sort and shuffle qualify when b <= max(f, 2): n <= 65536 at K = 64 (f = 16),
n <= 256 at K = 32 (f = 8); max always does. The choice reads only public shapes, K and f. An explicit
method outside its domain raises ``ValueError``.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from mpsim.session import DEFAULT_FRAC_BITS
from mpsim.tensor import SharedTensor, concatenate

from .arith import _rng_values
from .boolean import msb
from .compare import select
from .oblivious import onehot_rotation
from .rotation import _pow2_at_least
from .reduce import argmax, check_axis, levels
from .cost import Expr
from .registry import COMPOSED, protocol

METHODS = ("auto", "max", "sort", "shuffle", "pivots")
LAN_HALF_RTT_S, LAN_BPS = 0.15e-3, 3e9


def _relabel(t: SharedTensor, frac: int) -> SharedTensor:
    return t._like(t.payload, t.shape, frac=frac)


def pack_keys(x: SharedTensor, low, bits: int) -> SharedTensor:
    """Integer keys x_ring 2^bits + low (local; frac 0): distinct when the ``low`` values (public or secret
    integers in [0, 2^bits)) are, and ordered as x first. Packing n - 1 - index sends ties to the lower
    index. Needs |x_ring| < 2^(K - 2 - bits) so that key differences do not wrap."""
    return _relabel(x, 0) * (1 << bits) + low


# -- compare-exchange networks -------------------------------------------------------------------------------
def _compare_exchange(keys: SharedTensor, vals: SharedTensor, I, J, keep_min: bool = True):
    """Positions I get the larger and J the smaller key of each pair, the values moving with their keys (one
    MSB of the key difference and one select of both differences)."""
    I, J = np.asarray(I), np.asarray(J)
    a, b = keys[:, I], keys[:, J]
    va, vb = vals[:, I], vals[:, J]
    lt_bit = msb(a - b)  # [a < b]: then swap
    d, dv = b - a, vb - va
    stacked = concatenate([d.reshape(d.shape + (1,)), _relabel(dv, d.frac).reshape(dv.shape + (1,))], axis=-1)
    sel = select(lt_bit.reshape(lt_bit.shape + (1,)), stacked)
    sd, sv = sel[..., 0], _relabel(sel[..., 1], vals.frac)
    hi_k, hi_v = a + sd, va + sv
    if not keep_min:
        return hi_k, hi_v
    lo_k, lo_v = b - sd, vb - sv
    L = keys.shape[1]
    untouched = np.setdiff1d(np.arange(L), np.concatenate([I, J]))
    order = np.argsort(np.concatenate([I, J, untouched]), kind="stable")
    new_k = concatenate([hi_k, lo_k, keys[:, untouched]], axis=1)[:, order]
    new_v = concatenate([hi_v, lo_v, vals[:, untouched]], axis=1)[:, order]
    return new_k, new_v


def _bitonic_sort_layers(m: int):
    """Pairs (I gets max, J gets min) of a bitonic network sorting m = 2^j elements descending."""
    layers, s = [], 2
    while s <= m:
        t = s // 2
        while t >= 1:
            I, J = [], []
            for i in range(m):
                j = i ^ t
                if j > i:
                    descending = (i & s) == 0
                    I.append(i if descending else j)
                    J.append(j if descending else i)
            layers.append((np.array(I), np.array(J)))
            t //= 2
        s *= 2
    return layers


def _bitonic_clean_layers(m: int):
    """A bitonic merge of a bitonic sequence of m = 2^j elements into descending order."""
    layers, t = [], m // 2
    while t >= 1:
        I = np.array([i for i in range(m) if (i ^ t) > i])
        layers.append((I, I ^ t))
        t //= 2
    return layers


def _chunked(layers, chunks: int, size: int):
    return [(np.concatenate([I + c * size for c in range(chunks)]), np.concatenate([J + c * size for c in range(chunks)]))
            for I, J in layers]


def sort_network_plan(n: int, k: int):
    """(layers, comparators per row) of the pruned bitonic top-k network."""
    n2, k2 = _pow2_at_least(n), min(_pow2_at_least(k), _pow2_at_least(n))
    plan = [("cx", lay) for lay in _chunked(_bitonic_sort_layers(k2), n2 // k2, k2)]
    length = n2
    while length > k2:
        chunks = length // k2
        I = np.concatenate([2 * c * k2 + np.arange(k2) for c in range(chunks // 2)])
        J = np.concatenate([(2 * c + 1) * k2 + (k2 - 1 - np.arange(k2)) for c in range(chunks // 2)])
        plan.append(("max", (I, J)))
        length //= 2
        plan += [("cx", lay) for lay in _chunked(_bitonic_clean_layers(k2), length // k2, k2)]
    return plan, sum(len(I) for _, (I, _) in plan)


# -- the three methods ---------------------------------------------------------------------------------------
BOTH = COMPOSED


def _topk_example(s):
    return (_rng_values(s, (3, 6)), 2), {}


def _topk_dims(x, k, *args, **kwargs):
    rows, n = x.shape
    return {"rows": rows, "n": n, "k": k, "T": _pow2_at_least(n), "lv": levels(n)}


def _sort_dims(x, k, *args, **kwargs):
    dims = _topk_dims(x, k)
    plan, comparators = sort_network_plan(dims["n"], k)
    return {**dims, "layers": len(plan), "C": comparators}


def _max_cost(d):
    """k extractions, each an argmax over the row (lv tournament levels, then its rotation one-hot)."""
    return d.argmax.at(L="lv") * Expr("k")


def _sort_cost(d):
    """C comparators per row in ``layers`` layers, each an msb and a select of (key, value) differences, then
    the rotation one-hot of the k winners."""
    comparators = (d.msb + d.bit_select.at(nb="n", ny="2*n", n="2*n")).at(n="rows*C").levels("layers")
    return comparators + d.onehot_rotation.at(m="rows*k")


def _shuffle_cost(d):
    """The shuffle of (key, value) pairs, I batches of Q comparisons in all (an msb and a 1-bit opening of
    each outcome), the rotation one-hot of the k winners."""
    batches = (d.msb.at(n="Q") + d.reveal.at(K=1, n="Q", to="None")).levels("I")
    return d.shuffle.at(n="2*rows*n") + batches + d.onehot_rotation.at(m="rows*k")


def _observe_outcomes(messages, N):
    """I = quickselect (and quicksort) iterations, Q = comparisons, read off the opened outcomes (one bit
    per outcome from party 1 to party 0 in every scheme's opening)."""
    return {
        "I": len({m.call for m in messages if m.op == "open_outcomes"}),
        "Q": sum(m.bits for m in messages if m.op == "open_outcomes" and m.src == 1 and m.dst == 0),
    }


@protocol(
    "topk_max",
    scheme=BOTH,
    cost=_max_cost,
    ref="repeated tournament argmax with masking (cf. CrypTen/SPU top-k by repeated max)",
    dims=_topk_dims,
    example=_topk_example,
    vars_doc="rows x n input; lv = ceil(log2 n); T = n rounded up to a power of two",
)
def topk_max(x: SharedTensor, k: int):
    """Top-k of each row of a (rows, n) tensor by k rounds of argmax and masking; sorted, ties to lower index.

    Steps (k times):
      1. argmax: ceil(log2 n) tournament levels (MSB + one select of value and index per pair), then a
         rotation one-hot of the winner's index (1 round).
      2. x <- x - 2^(K-3) onehot (local: a public-integer product), so the winner sinks below all others.
    Rounds: k (ceil(log2 n) (2 + log2 K) + 1). Comm: per comparator (N-1)(K + 2(2K-2-log2 K) + 1 + 2K) bits,
    n - 1 comparators per extraction. Leaks: nothing. Requires |x| < 2^(K-4-f) so the masking cannot wrap.
    Ref: the repeated-max top-k of CrypTen/SPU, with our batched tournament.
    """
    _check_rows(x, k, "max")
    return _topk_max(x, k)


def _topk_max(x: SharedTensor, k: int):
    K, f = x.session.ring.bits, x.frac
    big = 1 << (K - 3 - f) if K - 3 - f > 0 else 1
    values, onehots, indices = [], [], []
    for _ in range(k):
        v, oh, idx = argmax(x, axis=-1, return_index=True)
        values.append(v.reshape(v.shape + (1,)))
        onehots.append(oh.reshape(oh.shape[:-1] + (1, oh.shape[-1])))
        indices.append(idx.reshape(idx.shape + (1,)))
        x = x + oh * (-big)  # push the winner below every other value (local)
    return concatenate(values, axis=-1), concatenate(onehots, axis=-2), concatenate(indices, axis=-1)


@protocol(
    "topk_sort",
    scheme=BOTH,
    cost=_sort_cost,
    ref="bitonic sorting network (Batcher 1968) pruned for top-k",
    dims=_sort_dims,
    example=_topk_example,
    vars_doc="rows x n input; layers, C = layers and comparators of the pruned network; T as above",
)
def topk_sort(x: SharedTensor, k: int):
    """Top-k of each row of a (rows, n) tensor by a bitonic network pruned for top-k; sorted descending, ties
    to the lower index.

    Steps:
      1. Keys key_j = x_j 2^b + (T - 1 - j) (local; T = n rounded up to a power of two, b = log2 T): distinct,
         ordered by x and then by the lower index j (a sorting network is not stable: comparing x alone sends
         ties anywhere). Pad to T with keys -2^(K-2) + (T - 1 - j), below every input's; k' = 2^ceil(log2 k).
      2. Sort chunks of k' descending by key (bitonic sort network).
      3. While more than one chunk is left: pair chunks, keep max(A[i], B[k'-1-i]) (one comparator layer,
         minima dropped), then a bitonic merge of each surviving chunk (log2 k' layers).
      4. Take the first k; rotation one-hot of T - 1 - j = key mod T, read backwards (1 round);
         index = onehot @ (0..n-1) (local).
    Every comparator is an MSB of the key difference and one select moving key and value together.
    Rounds: layers (2 + log2 K) + 1 (no one-hot round when n = 1).
    Comm: (N-1) rows (C (K + 2(2K-2-log2 K) + 1 + 2K) + k log2 T) bits.
    Leaks: nothing (data-independent network). Requires |x| < 2^(K-2-b-f) so that key differences do not
    wrap. Ref: Batcher, "Sorting networks and their applications", AFIPS 1968; the top-k pruning as in GPU
    bitonic top-k; index-packed keys as in ``topk_shuffle``.
    """
    _check_rows(x, k, "sort")
    return _topk_sort(x, k)


def _topk_sort(x: SharedTensor, k: int):
    session = x.session
    rows, n = x.shape
    n2 = _pow2_at_least(n)
    low = np.arange(n2 - 1, -1, -1, dtype=np.int64)  # T - 1 - j: the larger key for the lower index
    keys, vals = pack_keys(x, low[:n], n2.bit_length() - 1), x
    if n2 > n:  # pad keys below every input's (they never reach the top k <= n); their values are never read
        pad = session.zeros((rows, n2 - n), frac_bits=0) + (low[n:] - (1 << (session.ring.bits - 2)))
        keys = concatenate([keys, pad], axis=1)
        vals = concatenate([vals, session.zeros((rows, n2 - n), frac_bits=x.frac)], axis=1)
    plan, _ = sort_network_plan(n, k)
    for kind, (I, J) in plan:
        keys, vals = _compare_exchange(keys, vals, I, J, keep_min=(kind == "cx"))
    oh = onehot_rotation(keys[:, :k], n2, check_domain=False)[..., ::-1][..., :n]  # key mod T = T - 1 - j
    return vals[:, :k], oh, oh @ np.arange(n, dtype=np.int64)


@protocol(
    "shuffle",
    rounds="2",
    comm="K*n*(int(p != 0) + int(p != 1))",
    offline="2*K*n",
    leaks="nothing (each pass reshares under masks; the composed permutation is known to no party)",
    ref="Chase-Ghosh-Poburinnaya, Secret-Shared Shuffle, ASIACRYPT 2020 (resharing with a dealer)",
    dims=lambda t: {"n": t.size},
    example=lambda s: ((_rng_values(s, (2, 5, 2)),), {}),
    vars_doc="n = elements of the (rows, m, w) tensor",
)
def shuffle(t: SharedTensor) -> SharedTensor:
    """Shuffle axis 1 of a (rows, m, w) tensor with a fresh uniform permutation per row.

    Steps (two passes, permuter P = 0 then P = 1):
      1. Dealer: pi (per row) for P; uniform masks a_q, b_q for every q != P; Delta = pi(sum a_q) - sum b_q
         for P.
      2. Every q != P sends z_q = x_q + a_q to P (one round).
      3. P keeps pi(x_P + sum z_q) - Delta = pi(x) + sum b_q; each q keeps -b_q.
    Rounds: 2. Comm: party p sends K |t| bits in each pass where it is not the permuter.
    Offline: 2 K |t| bits (the two Deltas). Leaks: nothing: z_q is padded by a_q; new shares are fresh.
    Ref: Chase, Ghosh, Poburinnaya, "Secret-Shared Shuffle", ASIACRYPT 2020 (resharing with correlations).
    """
    if t.ndim != 3:
        raise ValueError(f"shuffle takes a (rows, m, w) tensor, got shape {t.shape}")
    session = t.session
    payload, depth = t.payload, t.depth
    bits = session.ring.bits * t.size
    for permuter in (0, 1):
        perm, a, b, delta = session.dealer.shuffle_pass(t.shape, permuter)
        messages = session.backend.shuffle_messages(payload, a)
        sends = [(q, permuter, bits) for q in range(session.parties) if q != permuter]
        session._check_open()
        depth = session.channel.exchange("reshare", sends, depth, contents=messages)
        payload = session.backend.shuffle_apply(messages, perm, b, delta, permuter)
    return t._like(payload, t.shape, depth=depth)


def _open_outcomes(session, bits: SharedTensor, simulate):
    bits.width = 1
    (value,), depth = session.scheme.open(session, "open_outcomes", [bits], simulate=simulate)
    return np.asarray(value, dtype=np.uint64).astype(bool).reshape(bits.shape), depth


def _compare_round(session, keys: SharedTensor, rows_idx, i_idx, j_idx, sim_ranks) -> np.ndarray:
    """One batch: [key_i > key_j] for every (row, i, j), by MSB of key_j - key_i; the outcome bits are opened."""
    diff = keys[rows_idx, j_idx] - keys[rows_idx, i_idx]
    greater = msb(diff)

    def simulate(rng):
        return [(sim_ranks[rows_idx, i_idx] > sim_ranks[rows_idx, j_idx]).astype(np.uint64)]

    outcome, depth = _open_outcomes(session, greater, simulate if sim_ranks is not None else None)
    # What happens next is chosen by these public outcomes: it cannot start before they are known.
    if depth >= keys.depth:
        keys.depth, keys.calls = depth, session.channel.frontier(depth)
    return outcome


def _partition_round(session, keys: SharedTensor, segments, sim_ranks):
    """Compare every non-pivot member of every segment with its segment's pivot (first member) in one batch.

    segments: list of (row, positions array). Returns list of (greater positions, pivot, smaller positions).
    """
    rows_idx = np.concatenate([np.full(len(pos) - 1, row) for row, pos in segments])
    pos_idx = np.concatenate([pos[1:] for _, pos in segments])
    piv_idx = np.concatenate([np.full(len(pos) - 1, pos[0]) for _, pos in segments])
    outcome = _compare_round(session, keys, rows_idx, pos_idx, piv_idx, sim_ranks)
    out, start = [], 0
    for row, pos in segments:
        m = len(pos) - 1
        o = outcome[start : start + m]
        start += m
        out.append((pos[1:][o], pos[0], pos[1:][~o]))
    return out


def sample_size(n: int) -> int:
    """Pivot sample per row: round(0.7 sqrt(n)), none below 3 (tuned by simulation on random ranks)."""
    s = int(round(0.7 * math.sqrt(n)))
    return s if s >= 3 else 0


def pair_wins(a, b, outcomes, size: int) -> np.ndarray:
    """Per member of a set of ``size``, how many of the compared pairs (a[i], b[i]) it won, given the
    outcomes [key_a > key_b]."""
    return np.bincount(a, weights=outcomes, minlength=size) + np.bincount(b, weights=~outcomes, minlength=size)


class _Lockstep:
    """The per-row state of a selection run on all rows in lockstep: candidates left (positions), how many
    of them each row still needs, and the parts chosen so far."""

    def __init__(self, rows: int, n: int, k: int):
        self.cands = [np.arange(n) for _ in range(rows)]
        self.need = [k] * rows
        self.chosen: list[list[np.ndarray]] = [[] for _ in range(rows)]

    def settle(self) -> list[int]:
        """Take every row whose candidates are exactly what it needs; return the rows still selecting."""
        for r, (c, h) in enumerate(zip(self.cands, self.need)):
            if h > 0 and len(c) == h:
                self.chosen[r].append(c)
                self.need[r] = 0
        return [r for r, h in enumerate(self.need) if h > 0]

    def positions(self) -> list[np.ndarray]:
        """The chosen positions per row."""
        return [np.concatenate(ch).astype(np.int64) if ch else np.zeros(0, np.int64) for ch in self.chosen]


def select_positions(rows: int, n: int, k: int, compare):
    """Quickselect with sample pivots, all rows in lockstep; ``compare(rows_idx, i_idx, j_idx)`` runs one
    batch and returns [key_i > key_j] (keys distinct, positions in shuffled order).

    1. If k < n: the first s = ``sample_size(n)`` positions of each row are a uniform sample (the row is
       shuffled); one batch compares all s(s-1)/2 pairs, which orders the sample.
    2. Each iteration, per active row (need h of the m candidates left): the pivot is the remaining sample
       member at relative rank f (t + 1) - 1 +- z sqrt(t f (1 - f)), f = h/m, t = sample members left,
       z = 1/2, shifted to the side that leaves the smaller part to search (below the boundary when
       h <= m - h); the first candidate once the sample is used up. One batch compares the pivot with every
       candidate whose side is not known from the sample order; the row keeps the part holding the
       boundary, as quickselect does.
    About 2.2-2.6 n comparisons for k = n/5 .. n/2, 20-25% fewer than first-candidate pivots (3.0-3.3 n), in
    slightly fewer batches. Returns (batches, comparisons, chosen positions per row).
    """
    s = sample_size(n) if k < n else 0
    srank = np.full((rows, n), -1, np.int64)  # rank among the row's sample (0 = largest), -1 off the sample
    batches = comparisons = 0
    if s and rows:
        a, b = np.triu_indices(s, 1)
        out = compare(np.repeat(np.arange(rows), len(a)), np.tile(a, rows), np.tile(b, rows))
        batches, comparisons = 1, int(out.size)
        flat = out.reshape(rows, len(a))
        wins = np.stack([pair_wins(a, b, flat[r], s) for r in range(rows)]).astype(np.int64)
        srank[:, :s] = np.argsort(np.argsort(-wins, axis=1, kind="stable"), axis=1)
    rows_state = _Lockstep(rows, n, k)
    cands, need, chosen = rows_state.cands, rows_state.need, rows_state.chosen
    greater = np.zeros(n, bool)
    while True:
        active = rows_state.settle()
        if not active:
            break
        plans = []
        for r in active:
            c, h = cands[r], need[r]
            left = c[srank[r, c] >= 0]
            if len(left):
                left = left[np.argsort(srank[r, left])]
                t, m, f = len(left), len(c), h / len(c)
                sign = 1 if h <= m - h else -1
                j = int(round(f * (t + 1) - 1 + sign * 0.5 * math.sqrt(t * f * (1 - f) + 0.25)))
                j = min(max(j, 0), t - 1)
                p, unknown, known_up = int(left[j]), c[srank[r, c] < 0], left[:j]
            else:
                p, unknown, known_up = int(c[0]), c[1:], c[:0]
            plans.append((r, p, unknown, known_up))
        rows_idx = np.concatenate([np.full(len(u), r) for r, _, u, _ in plans])
        i_idx = np.concatenate([u for _, _, u, _ in plans])
        j_idx = np.concatenate([np.full(len(u), p) for _, p, u, _ in plans])
        if i_idx.size:  # every side may already be known from the sample order
            out = compare(rows_idx, i_idx, j_idx)
            batches += 1
            comparisons += int(out.size)
        else:
            out = np.zeros(0, bool)
        start = 0
        for r, p, unknown, known_up in plans:
            o = out[start : start + len(unknown)]
            start += len(unknown)
            greater[unknown[o]] = True
            greater[known_up] = True
            c = cands[r]
            is_up = greater[c]
            greater[c] = False
            up, down = c[is_up], c[~is_up & (c != p)]
            if len(up) >= need[r]:
                cands[r] = up
            else:
                chosen[r] += [up, np.array([p])]
                need[r] -= len(up) + 1
                cands[r] = down
    return batches, comparisons, rows_state.positions()


PIVOTS, ALL_PAIRS = 16, 64  # pivots per round of topk_pivots; candidate sets this small are ranked at once


def select_positions_pivots(rows: int, n: int, k: int, compare, pivots: int = PIVOTS, small: int = ALL_PAIRS):
    """Selection in few batches, all rows in lockstep; ``compare`` as in ``select_positions``.

    Per batch and active row (need h of its m candidates, in shuffled order): if m <= ``small``, every pair
    is compared and the row's top h is read off the wins; else the first ``pivots`` candidates (a uniform
    sample: the row is shuffled) are compared with each other and with every other candidate, which places
    every candidate in one of the 2 p + 1 groups the ordered pivots delimit; the groups above the h-th
    largest are chosen, and the group holding it is the next batch's candidates. With p = 16 a group holds
    about m / 17 candidates, so rows of a few hundred finish in two batches (quickselect: about log n).
    Cf. sample sort (Frazer-McKellar, JACM 1970) and multi-pivot selection. Returns (batches, comparisons,
    chosen positions per row).
    """
    rows_state = _Lockstep(rows, n, k)
    cands, need, chosen = rows_state.cands, rows_state.need, rows_state.chosen
    batches = comparisons = 0
    while True:
        active = rows_state.settle()
        if not active:
            break
        plans, ri, ii, jj = [], [], [], []
        for r in active:
            c = cands[r]
            p = len(c) if len(c) <= small else pivots
            a, b = np.triu_indices(p, 1)  # the pivots (all candidates when few) against each other
            rest = np.arange(p, len(c))
            pairs_i = np.concatenate([c[a], np.repeat(c[rest], p)])
            pairs_j = np.concatenate([c[b], np.tile(c[:p], len(rest))])
            plans.append((r, p, len(a), len(rest)))
            ri.append(np.full(len(pairs_i), r))
            ii.append(pairs_i)
            jj.append(pairs_j)
        out = compare(np.concatenate(ri), np.concatenate(ii), np.concatenate(jj))
        batches += 1
        comparisons += int(out.size)
        at = 0
        for r, p, n_pivot_pairs, n_rest in plans:
            c, h = cands[r], need[r]
            among = out[at : at + n_pivot_pairs]
            above = out[at + n_pivot_pairs : at + n_pivot_pairs + n_rest * p].reshape(n_rest, p)
            at += n_pivot_pairs + n_rest * p
            a, b = np.triu_indices(p, 1)
            wins = pair_wins(a, b, among, p)
            greater = p - 1 - wins  # pivots above each pivot (keys distinct: 0 .. p - 1)
            if p == len(c):  # every pair compared: the order is known
                chosen[r].append(c[np.argsort(greater, kind="stable")[:h]])
                need[r] = 0
                continue
            # group of each candidate: 2 g for one below g pivots (and above the rest), 2 t + 1 for the pivot
            # with t pivots above it; smaller groups hold larger keys
            group = np.empty(len(c), np.int64)
            group[:p] = 2 * greater.astype(np.int64) + 1
            group[p:] = 2 * (p - above.sum(axis=1)).astype(np.int64)
            sizes = np.bincount(group, minlength=2 * p + 1)
            before = np.cumsum(sizes) - sizes  # candidates in larger groups
            g = int(np.searchsorted(np.cumsum(sizes), h, side="left"))  # the group holding the h-th largest
            chosen[r].append(c[group < g])
            need[r] = h - int(before[g])
            cands[r] = c[group == g]
    return batches, comparisons, rows_state.positions()


def quickselect_plan(ranks: np.ndarray, k: int):
    """The selection the protocol runs, on rows of distinct plaintext ranks (larger rank = larger key).

    Returns (batches of comparisons, comparisons in total, selected positions per row).
    """
    ranks = np.asarray(ranks)
    rows, n = ranks.shape
    return select_positions(rows, n, k, lambda r, i, j: ranks[r, i] > ranks[r, j])


def _quickselect(session, keys: SharedTensor, k: int, sim_ranks, select=None):
    rows, n = keys.shape
    select = select_positions if select is None else select
    _, _, chosen = select(rows, n, k, lambda r, i, j: _compare_round(session, keys, r, i, j, sim_ranks))
    return chosen


def _quicksort(session, keys: SharedTensor, chosen, sim_ranks):
    """Order each row's chosen positions by descending key (opening pivot comparisons, still shuffled)."""
    segments = [[(r, np.asarray(c))] for r, c in enumerate(chosen)]
    while any(len(p) > 1 for seg in segments for _, p in seg):
        todo = [(r, p) for seg in segments for r, p in seg if len(p) > 1]
        results = iter(_partition_round(session, keys, todo, sim_ranks))
        new_segments = []
        for seg in segments:
            out = []
            for r, p in seg:
                if len(p) > 1:
                    g, pivot, s = next(results)
                    out += [(r, g), (r, np.array([pivot])), (r, s)]
                else:
                    out.append((r, p))
            new_segments.append([(r, p) for r, p in out if len(p)])
        segments = new_segments
    return [np.concatenate([p for _, p in seg]) if seg else np.array([], int) for seg in segments]


# The shuffle-then-select methods: one cost (the shuffle, I batches of Q comparisons, the one-hot), one
# security argument (every opened outcome compares two shuffled distinct keys); they differ in the selection.
_SHUFFLED = dict(
    scheme=BOTH,
    cost=_shuffle_cost,
    leaked={"open_outcomes": "independent"},
    kind="randomized",
    leaks="nothing: opened comparison outcomes of shuffled distinct keys are independent of the data",
    dims=_topk_dims,
    example=_topk_example,
    observe=_observe_outcomes,
)


@protocol(
    "topk_shuffle",
    **_SHUFFLED,
    ref="shuffle (Chase-Ghosh-Poburinnaya 2020) then quickselect (Hoare 1961) with sample pivots (cf. "
        "Floyd-Rivest 1975) on opened outcomes",
    vars_doc="I = comparison batches (sample sort, quickselect), Q = comparisons (random, data-independent; read "
             "off the ledger); T as above",
)
def topk_shuffle(x: SharedTensor, k: int, sorted: bool = False):
    """Top-k of each row of a (rows, n) tensor by shuffle-then-quickselect (randomized cost).

    Steps:
      1. key = x 2^b + (n - 1 - j) (local; b = ceil(log2 n)): distinct keys, ties to the lower index j.
      2. Shuffle (key, x) pairs along each row (``shuffle``: 2 rounds, permutations of parties 0 and 1).
      3. Quickselect with sample pivots, all rows in lockstep (``select_positions``): one batch orders a
         small sample of each row, then per iteration every candidate whose side is unknown is compared with
         its row's pivot by MSB, the outcome bits are opened (1 bit each), and the row is partitioned.
      4. Optionally (sorted=True) quicksort the k chosen the same way.
      5. Values from the shuffled x at the chosen (public, shuffled) positions; one-hot by rotation from
         the key (reduced mod 2^b = j); index = onehot @ (0..n-1) (local).
    Rounds: the shuffle's + I (msb + 1) + 1 (no one-hot round when n = 1), I = comparison batches (a random
    variable independent of the data); additive: 2 + I (2 + log2 K) + 1.
    Comm: the shuffle moves (key, x) pairs (additive: 2 K rows n bits per non-permuting pass); an msb and one
    opened bit per comparison, Q comparisons in all (about 2.2-2.6 n per row); and the one-hot.
    Leaks: nothing beyond the output (see the module docstring). Requires |x| < 2^(K-2-b-f).
    Ref: Chase-Ghosh-Poburinnaya, ASIACRYPT 2020; Hoare, "Algorithm 65: Find", CACM 1961.
    """
    _check_rows(x, k, "shuffle")
    return _topk_shuffle(x, k, sorted)


@protocol(
    "topk_pivots",
    **_SHUFFLED,
    ref="shuffle (Chase-Ghosh-Poburinnaya 2020) then selection by rounds of 16 sample pivots (cf. sample "
        "sort, Frazer-McKellar 1970) on opened outcomes",
    vars_doc="I = comparison batches (2 or 3 for rows of a few hundred), Q = comparisons (random, "
             "data-independent; read off the ledger); T as above",
)
def topk_pivots(x: SharedTensor, k: int, sorted: bool = False):
    """Top-k of each row of a (rows, n) tensor in few comparison batches: ``topk_shuffle`` with the selection
    of ``select_positions_pivots`` (every candidate against 16 pivots per batch; small sets all pairs).

    Steps: as ``topk_shuffle``, step 3 replaced: per batch and row, the first 16 candidates of the shuffled
    row are compared with each other and with every other candidate (or all pairs once 64 or fewer are
    left); the outcome bits are opened and the row keeps the group holding its k-th largest.
    Rounds: 2 + I (msb + 1) + 1, I = batches (2 or 3 at n of a few hundred, against about log2 n for
    quickselect): for rounds-bound settings (one-round comparisons, WANs). Comm: the shuffle's, Q (msb + 1
    bit) with Q about 17 n per row in the first batch (7-18 times quickselect's), the one-hot's.
    Leaks: nothing beyond the output (as ``topk_shuffle``: outcomes of shuffled distinct keys). Requires
    |x| < 2^(K-2-b-f).
    Ref: Chase-Ghosh-Poburinnaya, ASIACRYPT 2020 (shuffle); Frazer-McKellar, "Samplesort", JACM 1970.
    """
    _check_rows(x, k, "pivots")
    return _topk_shuffle(x, k, sorted, select_positions_pivots)


def _topk_shuffle(x: SharedTensor, k: int, sorted_: bool, select=None):
    session = x.session
    rows, n = x.shape
    b = max(1, (n - 1).bit_length())
    keys = pack_keys(x, np.arange(n - 1, -1, -1, dtype=np.int64), b)  # x_ring 2^b + (n - 1 - j)
    stacked = concatenate([keys.reshape(rows, n, 1), _relabel(x, 0).reshape(rows, n, 1)], axis=-1)
    shuffled = shuffle(stacked)
    sh_keys, sh_x = shuffled[..., 0], _relabel(shuffled[..., 1], x.frac)
    sim_ranks = None
    if not session.backend.has_data:
        sim_ranks = np.stack([session.backend.sim_rng.permutation(n) for _ in range(rows)]) if rows else None
    chosen = _quickselect(session, sh_keys, k, sim_ranks, select)
    if sorted_:
        chosen = _quicksort(session, sh_keys, chosen, sim_ranks)
    rows_idx = np.repeat(np.arange(rows), k).reshape(rows, k)
    pos = np.stack(chosen).astype(np.int64) if rows else np.zeros((0, k), np.int64)
    sh_x.depth, sh_x.calls = sh_keys.depth, sh_keys.calls  # the chosen positions are known after the last opening
    values = sh_x[rows_idx, pos]
    oh = onehot_rotation(sh_keys[rows_idx, pos], n, check_domain=False)[..., ::-1]  # key mod 2^b = n - 1 - j
    index = oh @ np.arange(n, dtype=np.int64)
    return values, oh, index


@functools.lru_cache(maxsize=4096)  # a pure function of public sizes; the shuffle estimate simulates selections
def estimate(method: str, rows: int, n: int, k: int, K: int = 64, N: int = 2) -> tuple[float, float]:
    """(rounds, bytes per party) estimated for a method; the shuffle method's from a seeded simulation."""
    L = int(math.log2(K))
    cmp_bits = (N - 1) * (K + 2 * (2 * K - 2 - L))
    sel2_bits = (N - 1) * (1 + 2 * K)
    oh_round = int(n > 1)  # the rotation one-hot's round (none over a single position)
    if method == "max":
        rounds = k * (levels(n) * (2 + L) + oh_round)
        bits = k * rows * ((n - 1) * (cmp_bits + sel2_bits) + (N - 1) * int(math.log2(_pow2_at_least(n))))
    elif method == "sort":
        plan, comparators = sort_network_plan(n, k)
        rounds = len(plan) * (2 + L) + oh_round
        bits = rows * comparators * (cmp_bits + sel2_bits) + rows * k * (N - 1) * int(math.log2(_pow2_at_least(n)))
    elif method == "shuffle":
        ranks = np.stack([np.random.default_rng(i).permutation(n) for i in range(min(rows, 8))])
        iterations, comparisons, _ = quickselect_plan(ranks, k)
        comparisons = comparisons / len(ranks) * rows
        rounds = 2 + iterations * (2 + L) + oh_round
        bits = 2 * K * rows * n + comparisons * (cmp_bits + (N - 1)) + rows * k * (N - 1) * int(math.log2(_pow2_at_least(n)))
    else:
        raise ValueError(f"unknown top-k method {method!r}")
    return rounds, bits / 8


def _index_bits(n: int) -> int:
    """b = ceil(log2 n) (at least 1): the index bits the sort and shuffle methods pack below x."""
    return max(1, (int(n) - 1).bit_length())


def domain_log2(method: str, n: int, K: int) -> int:
    """log2 of the bound on |x| as a ring integer (|x| 2^frac) below which ``method`` is exact on rows of n:
    max masks each winner by 2^(K-3) (K - 4); sort, shuffle and pivots compare keys x 2^b + low (K - 2 - b)."""
    return K - 4 if method == "max" else K - 2 - _index_bits(n)


def required_log2(K: int, f: int) -> int:
    """The range (log2, ring integers) a method's domain must cover: 2^(K-2-f), where x times a real of
    magnitude up to 1 still truncates exactly (at scale 2^(frac+f) below 2^(K-2)), capped at max's 2^(K-4)."""
    return min(K - 2 - f, K - 4)


def in_domain(method: str, n: int, K: int, f: int) -> bool:
    """Whether ``method``'s domain covers the session's product range (public: n, K and f only)."""
    return domain_log2(method, n, K) >= required_log2(K, f)


def choose_method(rows: int, n: int, k: int, K: int = 64, N: int = 2, f: int | None = None) -> str:
    """The in-domain method (``in_domain``; f defaults to the session default for K) of lowest estimated
    LAN latency."""
    f = DEFAULT_FRAC_BITS[K] if f is None else f

    def latency(m):
        rounds, nbytes = estimate(m, rows, n, k, K, N)
        return rounds * LAN_HALF_RTT_S + nbytes * 8 / LAN_BPS

    return min((m for m in ("max", "sort", "shuffle") if in_domain(m, n, K, f)), key=latency)


def _check_domain(x: SharedTensor, method: str, n: int) -> None:
    """ValueError when an explicitly chosen method's domain does not cover the session's product range."""
    K, f, fx = x.session.ring.bits, x.session.frac_bits, x.frac
    if in_domain(method, n, K, f):
        return
    dom, req = domain_log2(method, n, K), required_log2(K, f)
    raise ValueError(
        f"topk method={method!r} on rows of n={n} is exact only for |x| < 2^{dom - fx} (K={K}, frac={fx}, "
        f"{_index_bits(n)} index bits packed below x), short of the session's product range |x| < 2^{req - fx} "
        f"(f={f}); use method='max' or 'auto', or rows of n <= {2 ** max(f, 2)}")


def _check_k(k, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")


def _check_rows(x: SharedTensor, k, method: str) -> None:
    """The arguments of topk_max / topk_sort / topk_shuffle: a non-empty (rows, n) tensor, k in [1, n], and
    the method's domain."""
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"topk_{method} takes a non-empty (rows, n) tensor, got shape {x.shape} (protocols.topk "
                         "takes any axis)")
    _check_k(k, x.shape[1])
    _check_domain(x, method, x.shape[1])


def _resolve(x: SharedTensor, k: int, axis: int, method: str):
    """(rows, n, the method that runs) for topk's arguments; raises on bad ones."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_axis(x, axis, "topk")
    if x.size == 0:
        raise ValueError(f"topk of an empty tensor (shape {x.shape}): nothing to select")
    shape = np.moveaxis(np.broadcast_to(np.empty((), dtype=bool), x.shape), axis, -1).shape  # no data
    lead, n = shape[:-1], shape[-1]
    _check_k(k, n)
    rows = int(math.prod(lead))
    if method == "auto" and x.session.scheme.name == "fss":
        # one-round comparisons: the batches are the rounds, so the fewest batches (bench_protocols)
        method = "pivots"
    elif method == "auto" and x.session.scheme.name != "additive":
        # choose_method's estimates are the additive scheme's; in ABY3 the shuffle is the cheapest by far
        # (bench_protocols: 32 x 512, k = 50)
        method = "shuffle"
    elif method == "auto":
        method = choose_method(rows, n, k, x.session.ring.bits, x.session.parties, x.session.frac_bits)
    _check_domain(x, method, n)
    return rows, n, method


def _dispatch_dims(x, k, axis=-1, method="auto", sorted=False, return_index=False):
    rows, n, chosen = _resolve(x, k, axis, method)
    layers = C = 0
    if chosen == "sort":
        plan, C = sort_network_plan(n, k)
        layers = len(plan)
    return {"rows": rows, "n": n, "k": int(k), "T": _pow2_at_least(n), "lv": levels(n), "layers": layers, "C": C,
            "mx": int(chosen == "max"), "so": int(chosen == "sort"), "sh": int(chosen == "shuffle"),
            "pv": int(chosen == "pivots")}


def _dispatch_cost(d):
    return (d.topk_max * Expr("mx") + d.topk_sort * Expr("so") + d.topk_shuffle * Expr("sh")
            + d.topk_pivots * Expr("pv"))


@protocol(
    "topk",
    scheme=BOTH,
    cost=_dispatch_cost,
    kind="randomized",
    leaks="nothing beyond the output (shuffle: opened outcomes of shuffled distinct keys, independent of the data)",
    ref="dispatches to topk_max / topk_sort / topk_shuffle / topk_pivots (cheapest estimated LAN latency for "
        "'auto' in the additive scheme; shuffle in ABY3, pivots in the FSS suite)",
    dims=_dispatch_dims,
    example=_topk_example,
    vars_doc="mx, so, sh, pv = 1 for the method that runs (max, sort, shuffle, pivots; 'auto' as in ref); "
             "the chosen method's variables (rows, n, k, T, lv; layers, C; I, Q observed, 0 unless shuffle or "
             "pivots)",
    observe=_observe_outcomes,
)
def topk(x: SharedTensor, k: int, axis: int = -1, method: str = "auto", sorted: bool = False,
         return_index: bool = False):
    """The k largest values along ``axis`` and their secret one-hots (see the module docstring).

    Returns (values (..., k), onehot (..., k, n)[, index (..., k)]), where ... are the other axes in their
    order; with ``sorted=True`` values descend.
    Steps:
      1. Move ``axis`` last and flatten the other axes into rows (local).
      2. method "auto": in the additive scheme ``choose_method`` (public: shapes only) picks max, sort or
         shuffle; ABY3 takes shuffle, the FSS suite pivots (its comparisons are one round: fewest batches).
      3. Run ``topk_max``, ``topk_sort``, ``topk_shuffle`` or ``topk_pivots`` on the (rows, n) tensor;
         reshape back (local).
    Rounds: those of the chosen method (the registry formula selects it with mx, so, sh, pv); the shuffle
    and pivots methods' are random (I batches), independent of the data, so the entry is "randomized".
    Comm: the chosen method's (the shuffle method's depends on Q comparisons, random as I).
    Leaks: nothing beyond the output (the shuffle method's argument is in the module docstring).
    Ref: ``topk_max`` (repeated max, CrypTen/SPU), ``topk_sort`` (Batcher 1968), ``topk_shuffle``
    (Chase-Ghosh-Poburinnaya 2020, Hoare 1961).
    """
    rows, n, method = _resolve(x, k, axis, method)
    x_last = x.moveaxis(axis, -1)
    lead = x_last.shape[:-1]
    flat = x_last.reshape(rows, n)
    if method == "max":
        values, oh, index = topk_max(flat, k)
    elif method == "sort":
        values, oh, index = topk_sort(flat, k)
    elif method == "pivots":
        values, oh, index = topk_pivots(flat, k, sorted)
    else:
        values, oh, index = topk_shuffle(flat, k, sorted)
    values = values.reshape(lead + (k,))
    oh = oh.reshape(lead + (k, n))
    index = index.reshape(lead + (k,))
    return (values, oh, index) if return_index else (values, oh)
