"""Preprocessing generators (costmodel.generators): each price against a hand count on small cases, the dealer's
against the ledger, and the command line's --offline."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import mpsim
import protocols as P
from costmodel.generators import GENERATORS, KAPPA, _he_blocks, ferret_cot_bits, get_generator, price, price_session
from costmodel.profiles import parse_profile
from mpsim.cli import main


def one(kind, dims=(), units=1):
    return {(kind, dims): units}


def test_ferret_bits_per_cot_from_its_parameters():
    # t trees of depth lg(n / t) = lg(8192) = 13, 2 kappa bits per level, for n - k new COTs
    assert ferret_cot_bits() == 1319 * 13 * 256 / (10_805_248 - 589_760)
    assert 0.42 < ferret_cot_bits() < 0.44


@pytest.mark.parametrize("K", [32, 64])
def test_ot_beaver_triple_is_two_gilboa_products(K):
    # per party: K COTs as receiver (kappa bits each) and one product's K (K + 1) / 2 payload bits as sender
    p = price(one("beaver_triple"), "ot", K, 2)
    assert p.sent_bits == (K * KAPPA + K * (K + 1) // 2,) * 2
    assert p.by_kind["beaver_triple"]["cots"] == K
    assert p.rounds == GENERATORS["ot"].rounds


def test_ot_matrix_triple_by_hand():
    # (2 x 3) by (3 x 4), K = 32: an OT per bit of B's 12 entries (384), each carrying a column of A (2 words of
    # 32 - t bits): 2 * 12 * 528 payload bits
    p = price(one("matmul_triple", (2, 3, 4)), "ot", 32, 2)
    assert p.sent_bits[0] == 384 * KAPPA + 2 * 3 * 4 * 528


def test_ot_small_kinds_by_hand():
    K = 64
    cases = {
        ("and_triple", ()): 1 * KAPPA + 1,
        ("dabit", ()): KAPPA / 2 + K / 2,
        ("square_pair", ()): K / 2 * KAPPA + K * (K + 1) / 4,
        ("edabit", ()): K * KAPPA + K * (K + 1) / 2,
        # T = 8: a barrel shifter of lg 8 = 3 stages, 2 T K bits per stage, split over the pair's two rotations
        ("rotation_onehot", (8,)): 1.5 * KAPPA + 8 * 64 * 3,
        # the (T, w) table beside e_r: two rotations of (w + 1)-word rows
        ("rotation_table", (8, 2)): 2 * (1.5 * KAPPA + 8 * 64 * 3 * 3),
        # Benes network on 8: 8 * 3 - 4 = 20 switches, a 1-of-2 OT of w K-bit words each
        ("shuffle_pass", (8, 2)): 10 * KAPPA + 20 * 2 * 64,
    }
    for (kind, dims), bits in cases.items():
        assert price(one(kind, dims), "ot", K, 2).sent_bits[0] == pytest.approx(bits, rel=0, abs=1e-9), kind


def test_silent_ot_changes_only_the_per_cot_bits_and_units_scale():
    K = 64
    ot = price(one("beaver_triple", (), 10), "ot", K, 2)
    silent = price(one("beaver_triple", (), 10), "silent-ot", K, 2)
    payload = 10 * K * (K + 1) // 2
    assert ot.sent_bits[0] == 10 * K * KAPPA + payload
    assert silent.sent_bits[0] == pytest.approx(10 * K * ferret_cot_bits() + payload)
    assert silent.compute_s == pytest.approx(10 * K * 22e-9)


def test_more_parties_run_every_pair():
    # each of N parties is in N - 1 pairs
    two = price(one("beaver_triple"), "ot", 64, 2).sent_bits[0]
    assert price(one("beaver_triple"), "ot", 64, 4).sent_bits == (3 * two,) * 4


def test_he_packing_by_hand():
    # 1 x 4096 by 4096 x 4096 at N = 4096: blocks 1 x 32 x 128 give 128 input and 32 output ciphertexts
    # (128 + 2 * 32 = 192 polynomials, as 1 x 64 x 64 does; nothing smaller: ins * outs >= 4096)
    ins, outs, products = _he_blocks(1, 4096, 4096, 4096)
    assert ins + 2 * outs == 192 and products == 4096
    gen = get_generator("he")
    p = price(one("reuse_triple", (1, 4096, 4096)), gen, 64, 2)
    assert p.sent_bits[0] == 192 * 4096 * 109
    assert p.by_kind["reuse_triple"]["cots"] == 0
    assert p.compute_s == pytest.approx(4096 * 2 * 4096 * 2 / gen.he_word_mult_per_s)
    # other kinds as silent-ot
    assert price(one("and_triple"), "he", 64, 2).sent_bits == price(one("and_triple"), "silent-ot", 64, 2).sent_bits


def test_seconds_are_flights_plus_bits_over_bandwidth_plus_compute():
    p = price(one("beaver_triple", (), 1000), "ot", 64, 2)
    wan = parse_profile("wan")
    assert p.seconds(wan) == pytest.approx(p.rounds * wan.latency("half_rtt") + p.max_bits / wan.bandwidth_bps
                                           + p.compute_s)
    assert price({}, "ot", 64, 2).seconds(wan) == 0.0


def _softmax_session(scheme="additive", parties=2):
    s = mpsim.Session(parties=parties, backend="count", scheme=scheme)
    x = s.input(np.zeros((4, 32)))
    w = s.input(np.zeros((32, 32)))
    P.softmax(x @ w, axis=-1)
    return s


def test_dealer_price_is_the_ledger():
    s = _softmax_session()
    p = price_session(s, "dealer")
    assert sum(p.sent_bits) == s.cost().offline_bits  # every dealer bit, itemised by the inventory
    assert p.max_bits == p.sent_bits[0]  # the corrections go to party 0


def test_3pc_prices_aby3_as_recorded_and_refuses_a_dealer_run():
    s = _softmax_session("aby3", 3)
    p = price_session(s, "3pc")
    assert sum(p.sent_bits) == s.cost().offline_bits > 0
    with pytest.raises(ValueError, match="among the parties"):
        price_session(s, "ot")
    with pytest.raises(ValueError, match="dealer correlations"):
        price_session(_softmax_session(), "3pc")


def test_fss_keys_need_a_dealer():
    s = _softmax_session("fss")
    assert price_session(s, "dealer").max_bits > 0
    with pytest.raises(ValueError, match="FSS keys need a dealer"):
        price_session(s, "silent-ot")


def test_unknown_generator_is_named():
    with pytest.raises(ValueError, match="known: dealer, ot, silent-ot, he, 3pc"):
        get_generator("magic")


def test_decode_offline_json_and_text(capsys):
    code = main(["decode", "--model", "mpcache-proxy", "--seq", "512", "--compare", "mpcache", "--offline",
                 "dealer,silent-ot", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["offline_generators"] == ["dealer", "silent-ot"]
    for entry in out["policies"]:
        dealer, silent = entry["offline"]["dealer"], entry["offline"]["silent-ot"]
        assert dealer["max_bytes"] == entry["offline_bytes"]  # no FSS keys: the dealer's bytes all go to party 0
        assert silent["max_bytes"] > dealer["max_bytes"] and set(silent["seconds"]) == {"lan", "wan"}
        assert math.isfinite(silent["compute_s"]) and silent["compute_s"] > 0
    code = main(["decode", "--model", "mpcache-proxy", "--seq", "512", "--offline", "he"])
    text = capsys.readouterr().out
    assert code == 0 and "offline (he)" in text and "online + offline (he)" in text
    code = main(["decode", "--model", "mpcache-proxy", "--offline", "nope"])
    assert code == 2 and "unknown preprocessing generator" in capsys.readouterr().err


def test_a_renamed_generator_prices_as_its_method():
    mine = GENERATORS["dealer"].with_(name="my-dealer")
    p, q = price(one("beaver_triple"), mine, 64, 2), price(one("beaver_triple"), "dealer", 64, 2)
    assert p.generator == "my-dealer" and p.sent_bits == q.sent_bits == (64, 0)
    cheap = GENERATORS["silent-ot"].with_(name="cheap", cot_bits=0.1)
    assert price(one("beaver_triple"), cheap, 64, 2).sent_bits[0] == pytest.approx(64 * 0.1 + 64 * 65 / 2)


@pytest.mark.parametrize("argv, message", [
    (["--scheme", "fss", "--offline", "silent-ot"], "the fss scheme's keys need a dealer"),
    (["--scheme", "aby3", "--offline", "dealer"], "the aby3 scheme makes its correlations among the parties"),
    (["--offline", "3pc"], "3pc prices ABY3's own correlations"),
])
def test_offline_refusals_come_before_any_work(argv, message, capsys, monkeypatch):
    import mpcache.workload

    def never(*a, **k):
        raise AssertionError("measured before refusing")

    monkeypatch.setattr(mpcache.workload, "measure", never)
    assert main(["decode", "--model", "mpcache-proxy", *argv]) == 2
    assert message in capsys.readouterr().err
