"""Preprocessing generators: what the correlations a run consumed would cost to make, by how they are made.

``price(inventory, generator, K, parties)`` is a pure function, like ``estimate`` for the online phase: from a
run's correlation inventory (``Cost.inventory``: (kind, dims, units)) and a :class:`Generator` profile it
gives the bits each party sends, the generator's message flights (rounds) and its compute seconds, itemised
by kind. :meth:`OfflinePrice.seconds` prices that on a network profile: rounds x one-way latency + the
busiest party's bits / bandwidth + compute.

Generators
----------
* ``dealer``: the trusted dealer of today's runs (``costmodel.preprocessing.dealer_bits``): seeds are free,
  one correction per derived element goes to party 0, FSS keys to every party; 1 flight, no party sends.
* ``ot``: no dealer; every correlation from oblivious transfer. Correlated OT by IKNP extension (Ishai,
  Kilian, Nissim, Petrank, CRYPTO 2003; correlated variant of Asharov et al., CCS 2013): the receiver sends
  kappa = 128 bits per OT; the sender sends the OT's payload. Products by Gilboa's OT multiplication
  (CRYPTO 1999): a K-bit cross term a_i b_j takes K correlated OTs, one per bit of b_j, whose payloads
  shrink to K - t bits for bit t (the high bits vanish mod 2^K): K (K + 1) / 2 payload bits.
* ``silent-ot``: the same constructions over Ferret's correlated OT (Yang, Weng, Lan, Zhang, Wang, CCS
  2020), whose communication is sublinear in the number of OTs: ``cot_bits`` per OT, derived from its
  semi-honest parameters (below); payloads are unchanged (they carry the product's information).
* ``he``: matrix triples by homomorphic encryption in the style of Cheetah (Huang, Lu, Hong, Ding, USENIX
  Security 2022): one party sends its operand encrypted, the other multiplies by its plaintext matrix,
  masks and returns the product's ciphertexts; the other correlations as ``silent-ot``.
* ``3pc``: ABY3's correlations are made by the three parties among themselves (their offline messages are
  already in the ledger, ``protocols.aby3.correlations``): priced as recorded; a run that needs a dealer
  is refused.

Each kind's construction (per unit, two parties; N parties run it on each of the N (N - 1) ordered pairs,
or N (N - 1) / 2 unordered ones for symmetric terms; each party sends its share as sender and as
receiver, so the bits below are per party for N = 2 and (N - 1) times them for N):

=====================  ==================================================================  =====  =========
kind (dims)            construction                                                        COTs   payload
=====================  ==================================================================  =====  =========
beaver_triple          c = a b: cross terms a_0 b_1, a_1 b_0 by Gilboa                     K      K(K+1)/2
square_pair            a^2: one cross term 2 a_0 a_1 (each party sends it once in two)     K/2    K(K+1)/4
matmul_triple (m,k,n)  A B: cross terms A_0 B_1, A_1 B_0; an OT per bit of B's entries,     k n K  m k n K(K+1)/2
                       its payload a column of A (SecureML, Mohassel-Zhang S&P 2017, 4.2)
reuse_triple (m,k,n)   A_t B with B's mask fixed: as matmul_triple
trunc_pair             r from K daBits (its bits), r' = r >> f and r_(K-1) then local       K      K(K+1)/2
and_triple             c = a & b on one bit: cross terms by 1-bit OTs                      1      1
edabit                 K random bits, each lifted to Z_2^K with weight 2^t (Gilboa rows)   K      K(K+1)/2
dabit                  a random bit b_0 xor b_1 lifted: b_0 + b_1 - 2 b_0 b_1, one OT      1/2    K/2
bit_select_triple      r a with r a ring element: as beaver_triple                         K      K(K+1)/2
rotation_onehot (T)    e_r, r = r_0 + r_1: P0 holds e_(r_0); an oblivious rotation by r_1  lg T/2 T K lg T
rotation_table (T, w)  e_r beside the (T, w) shared table: two rotations (by r_0, by r_1)  lg T   2 T (w+1) K lg T
shuffle_pass (n, w)    the permuter's permutation on a Benes network of n lg n - n/2        S/2    S w K
                       switches (Mohassel-Sadeghian, EUROCRYPT 2013), a 1-of-2 OT each
=====================  ==================================================================  =====  =========

(COTs and payload bits per party: a pair's OTs are split evenly between its two parties, so a rotation's
lg T OTs are lg T / 2 per party, and a Benes network's S switches S / 2.) An oblivious rotation of a T-vector of l-bit words by an amount the
receiver knows is a barrel shifter: for each of its lg T bits one 1-of-2 OT whose two messages are the
sender's masked vector shifted by 0 or 2^j (2 T l bits, split evenly between the two parties over the two
rotations of a pair). The sender's masks for every stage are its own, so all stages run in one flight.
FSS keys (``msb_key``, ``gate_key``, ``onehot_key``, ``trunc_key``) are refused: generating DCF and DPF keys
between the two parties (Doerner and shelat, CCS 2017) is not priced here.

Ferret's bits per COT: its semi-honest primal-LPN parameters n = 10,805,248 outputs, t = 1,319 noise
positions, k = 589,760 reserved for the next iteration: one GGM tree of depth lg(n / t) = 13 per noise
position, each level a 2 kappa-bit message, so t 13 (2 128) bits per n - k = 10,215,488 new COTs: 0.43 bits.

HE (Cheetah's coefficient packing, ``he_degree`` N = 4096, ``he_logq`` 109-bit ciphertext modulus as in
SEAL's default for N = 4096): an m x k by k x n product is cut into blocks m_w x k_w x n_w with
m_w k_w n_w <= N (searched over powers of two); the encrypting party sends ceil(m/m_w) ceil(k/k_w) input
ciphertexts (symmetric encryption: one polynomial, N logq bits, the other from a seed) and receives
ceil(m/m_w) ceil(n/n_w) output ciphertexts (two polynomials, 2 N logq bits); two cross terms, each party
encrypting once. Compute: one plaintext-ciphertext product per input block and output block pair,
2 N logq / 64 word multiplications each, at ``he_word_mult_per_s``.

Compute of the OT generators: COTs / ``cot_per_s``; ``ot``: IKNP correlated OT at 5.2 M/s per core
(2^20 correlated OTs in about 200 ms with libOTe on a laptop core, libOTe issue 108); ``silent-ot``:
Ferret's 22 ns per COT (its abstract: maliciously secure, 50 Mbit/s; the semi-honest protocol is no
slower). These are published or reported figures for other machines: parameters, not measurements here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from mpsim.ledger import DEALER, OFFLINE

from .preprocessing import DEALER_KINDS, dealer_bits
from .profiles import parse_profile

__all__ = ["GENERATORS", "FSS_KINDS", "Generator", "OfflinePrice", "check_scheme", "ferret_cot_bits", "get_generator",
           "price", "price_messages", "price_session"]

KAPPA = 128
FSS_KINDS = ("msb_key", "gate_key", "onehot_key", "trunc_key")


def ferret_cot_bits(n: int = 10_805_248, t: int = 1_319, k: int = 589_760, kappa: int = KAPPA) -> float:
    """Ferret's semi-honest communication per new COT: t GGM trees of depth lg(n / t), a 2 kappa-bit message
    per level, for n - k new COTs (module docstring)."""
    depth = math.ceil(math.log2(n / t))
    return t * depth * 2 * kappa / (n - k)


@dataclass(frozen=True)
class Generator:
    """A way of making correlations (see the module docstring); its numbers are parameters with sources."""

    name: str
    method: str = "ot"  # "dealer" (the ledger's dealer bits), "ot" (the constructions below) or "3pc" (as recorded)
    cot_bits: float = 0.0  # communication per correlated OT, both directions counted at the receiver
    cot_per_s: float = 0.0  # COTs per second per party (compute)
    rounds: int = 0  # message flights of one batch of preprocessing
    matmul: str = "ot"  # how matrix triples are made: "ot" or "he"
    he_degree: int = 4096
    he_logq: int = 109
    he_word_mult_per_s: float = 1e9  # an assumed rate for one core with vector units: set your own
    source: str = ""

    def with_(self, **changes) -> "Generator":
        return replace(self, **changes)


GENERATORS = {g.name: g for g in (
    Generator("dealer", method="dealer", rounds=1, source="a trusted dealer: seeds plus one correction per element to party 0"),
    Generator("ot", cot_bits=KAPPA, cot_per_s=5.2e6, rounds=2,
              source="IKNP correlated OT (kappa = 128 bits per OT) and Gilboa products; 5.2 M COT/s per core "
                     "(libOTe issue 108)"),
    Generator("silent-ot", cot_bits=ferret_cot_bits(), cot_per_s=1 / 22e-9, rounds=3,
              source="Ferret correlated OT (CCS 2020), 0.43 bits and 22 ns per COT, and Gilboa products"),
    Generator("he", cot_bits=ferret_cot_bits(), cot_per_s=1 / 22e-9, rounds=3, matmul="he",
              source="Cheetah-style HE matrix triples (N = 4096, 109-bit q), other correlations by Ferret"),
    Generator("3pc", method="3pc", source="ABY3: the three parties make the correlations among themselves (as recorded)"),
)}


def check_scheme(generator, scheme: str) -> Generator:
    """The generator, if it can make what ``scheme`` consumes (before any work): ABY3 makes its own (3pc only);
    the FSS suite's keys need a dealer; a dealer scheme cannot be priced as 3pc."""
    gen = get_generator(generator)
    if scheme == "aby3" and gen.method != "3pc":
        raise ValueError(f"the aby3 scheme makes its correlations among the parties: --offline 3pc, not {gen.name}")
    if scheme == "fss" and gen.method == "ot":
        raise ValueError(f"the fss scheme's keys need a dealer (two-party DCF/DPF key generation is not priced): "
                         f"--offline dealer, not {gen.name}")
    if scheme != "aby3" and gen.method == "3pc":
        raise ValueError(f"3pc prices ABY3's own correlations; the {scheme} scheme uses a dealer's: choose dealer, "
                         "ot, silent-ot or he")
    return gen


def get_generator(name) -> Generator:
    if isinstance(name, Generator):
        return name
    try:
        return GENERATORS[name]
    except KeyError:
        raise ValueError(f"unknown preprocessing generator {name!r}; known: {', '.join(GENERATORS)}") from None


@dataclass(frozen=True)
class OfflinePrice:
    """What the offline phase costs under one generator: bits each party sends (``sent_bits``; the dealer's
    bits for ``dealer``, which no party sends), flights, compute seconds, and the same per kind."""

    generator: str
    sent_bits: tuple[int | float, ...]
    rounds: int
    compute_s: float
    by_kind: dict = field(default_factory=dict)  # kind -> {"bits": per party, "cots": per party}

    @property
    def max_bits(self) -> float:
        return max(self.sent_bits, default=0)

    @property
    def bytes_per_party(self) -> float:
        """Bytes the busiest party sends (``dealer``: the bytes the dealer sends its busiest receiver)."""
        return self.max_bits / 8

    def seconds(self, profile) -> float:
        """rounds x one-way latency + the busiest party's bits / bandwidth + compute."""
        profile = parse_profile(profile)
        if not self.max_bits and not self.compute_s:
            return 0.0
        return self.rounds * profile.latency("half_rtt") + self.max_bits / profile.bandwidth_bps + self.compute_s

    def as_dict(self, profiles=()) -> dict:
        return {"generator": self.generator, "sent_bytes": [b / 8 for b in self.sent_bits],
                "max_bytes": self.bytes_per_party, "rounds": self.rounds, "compute_s": self.compute_s,
                "seconds": {parse_profile(p).name: self.seconds(p) for p in profiles},
                "by_kind": {k: dict(v) for k, v in self.by_kind.items()}}


def _gilboa(K: int) -> int:
    """Payload bits of one K-bit Gilboa product: K OTs of K - t bits."""
    return K * (K + 1) // 2


def _rotation(T: int, width_bits: int) -> tuple[float, float]:
    """(COTs, payload bits) per party of one oblivious rotation of a T-vector of ``width_bits``-bit rows, split
    between the two parties of a pair (module docstring)."""
    lg = max(T.bit_length() - 1, 0)
    return lg / 2, T * width_bits * lg


def _benes_switches(n: int) -> int:
    lg = max(math.ceil(math.log2(n)), 0) if n > 1 else 0
    return max(n * lg - n // 2, 0)


def ot_needs(kind: str, dims: tuple, K: int) -> tuple[float, float]:
    """(COTs, payload bits) per party and per unit for two parties (the module docstring's table)."""
    if kind in ("beaver_triple", "bit_select_triple", "trunc_pair", "edabit"):
        return K, _gilboa(K)
    if kind == "square_pair":
        return K / 2, _gilboa(K) / 2
    if kind in ("matmul_triple", "reuse_triple"):
        m, k, n = dims
        return k * n * K, m * k * n * _gilboa(K)
    if kind == "and_triple":
        return 1, 1
    if kind == "dabit":
        return 0.5, K / 2
    if kind == "rotation_onehot":
        (T,) = dims
        return _rotation(T, K)
    if kind == "rotation_table":
        T, w = dims
        cots, payload = _rotation(T, K * (w + 1))
        return 2 * cots, 2 * payload
    if kind == "shuffle_pass":
        n, w = dims[0], (dims[1] if len(dims) > 1 else 1)
        switches = _benes_switches(n)
        return switches / 2, switches * w * K
    if kind in FSS_KINDS:
        raise ValueError(f"{kind}: FSS keys need a dealer here (two-party DCF/DPF key generation, Doerner-shelat "
                         "CCS 2017, is not priced); use --offline dealer with the fss scheme")
    raise ValueError(f"no OT construction for correlation {kind!r} (known: {sorted(DEALER_KINDS)})")


def _he_blocks(m: int, k: int, n: int, degree: int) -> tuple[int, int, int]:
    """(input ciphertexts, output ciphertexts, plaintext-ciphertext products) of Cheetah's packing of an
    (m x k) by (k x n) product, the block shape minimising the bits sent (an output ciphertext is two
    polynomials, an input one)."""
    best = None
    for mw in (1 << i for i in range(degree.bit_length())):
        for kw in (1 << i for i in range(degree.bit_length())):
            if mw * kw > degree:
                break
            nw = degree // (mw * kw)
            mb, kb, nb = math.ceil(m / mw), math.ceil(k / kw), math.ceil(n / nw)
            key = (mb * kb + 2 * mb * nb, mb * kb * nb)
            if best is None or key < best[0]:
                best = (key, mb * kb, mb * nb, mb * kb * nb)
    return best[1], best[2], best[3]


def he_needs(dims: tuple, gen: Generator) -> tuple[float, float]:
    """(bits, word multiplications) per party and per matrix triple: each party encrypts its operand of one
    cross term (input ciphertexts, N logq bits each) and returns the masked product of the other's (output
    ciphertexts, 2 N logq bits each); a plaintext-ciphertext product is 2 N ceil(logq / 64) word
    multiplications in the NTT domain."""
    m, k, n = dims
    ins, outs, products = _he_blocks(m, k, n, gen.he_degree)
    poly_bits = gen.he_degree * gen.he_logq
    words = 2 * gen.he_degree * math.ceil(gen.he_logq / 64)
    return ins * poly_bits + outs * 2 * poly_bits, products * words


def price(inventory, generator, K: int, parties: int) -> OfflinePrice:
    """The offline phase of ``inventory`` (``Cost.inventory`` or its ``correlations`` dict) under
    ``generator`` (a name of ``GENERATORS`` or a Generator) in a K-bit ring among ``parties``."""
    gen = get_generator(generator)
    items = list(inventory.items()) if isinstance(inventory, dict) else [((k, d), u) for k, d, u in inventory]
    if gen.method == "dealer":
        received = dealer_bits(dict(items), K, parties)
        by_kind = {}
        for (kind, dims), units in items:
            by_kind.setdefault(kind, {"bits": 0, "cots": 0})["bits"] += max(dealer_bits({(kind, dims): units}, K,
                                                                                        parties))
        return OfflinePrice(gen.name, tuple(received), gen.rounds if items else 0, 0.0, by_kind)
    if gen.method == "3pc":
        if items:
            raise ValueError("3pc makes ABY3's correlations among the parties; this run consumed dealer "
                             f"correlations ({', '.join(sorted({k for (k, _), _ in items}))}): run it with "
                             "--scheme aby3, or choose dealer, ot, silent-ot or he")
        return OfflinePrice(gen.name, tuple([0] * parties), 0, 0.0, {})
    pairs = parties - 1  # each party is in N - 1 pairs
    bits = cots_total = 0.0
    he_words = 0.0
    by_kind: dict = {}
    for (kind, dims), units in items:
        if gen.matmul == "he" and kind in ("matmul_triple", "reuse_triple"):
            b, words = he_needs(dims, gen)
            kind_bits, kind_cots = units * pairs * b, 0.0
            he_words += units * pairs * words
        else:
            cots, payload = ot_needs(kind, dims, K)
            kind_cots = units * pairs * cots
            kind_bits = kind_cots * gen.cot_bits + units * pairs * payload
        entry = by_kind.setdefault(kind, {"bits": 0.0, "cots": 0.0})
        entry["bits"] += kind_bits
        entry["cots"] += kind_cots
        bits += kind_bits
        cots_total += kind_cots
    compute = (cots_total / gen.cot_per_s if gen.cot_per_s else 0.0) + he_words / gen.he_word_mult_per_s
    return OfflinePrice(gen.name, tuple([bits] * parties), gen.rounds if items else 0, compute, by_kind)


def price_messages(messages, generator, K: int, parties: int, scheme: str = "additive") -> OfflinePrice:
    """``price`` of the correlations a list of ledger messages delivered; ``3pc`` prices the offline messages
    the parties sent each other (ABY3's), and a scheme that makes its own is refused any other generator."""
    from mpsim.ledger import cost_of

    gen = get_generator(generator)
    sent = [0] * parties
    for m in messages:
        if m.phase == OFFLINE and m.src != DEALER:
            sent[m.src] += m.bits
    if any(sent) and gen.method != "3pc":
        raise ValueError(f"the {scheme} scheme makes its correlations among the parties (no dealer): price its "
                         "offline phase with 3pc")
    result = price(cost_of(messages, parties).inventory, gen, K, parties)
    if gen.method != "3pc":
        return result
    return OfflinePrice(gen.name, tuple(sent), 1 if any(sent) else 0, 0.0, {"parties": {"bits": max(sent), "cots": 0}})


def price_session(session, generator, since: int = 0) -> OfflinePrice:
    """``price_messages`` of what ``session`` consumed after ``since`` (a ``Session.mark()``)."""
    return price_messages(session.ledger.messages[since:], generator, session.ring.bits, session.parties,
                          session.scheme.name)
