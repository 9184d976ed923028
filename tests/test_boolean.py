"""Boolean sharing: A2B, B2A, single-bit B2A, AND, XOR, NOT and the MSB against numpy, with exact costs.

A boolean-shared tensor holds one K-bit word per element (XOR shares); ``protocols.reveal_bits`` opens it as
uint64 words. So ``reveal_bits(a2b(x))`` must equal the ring encoding of x bit for bit (``Ring.encode`` for
fixed point, ``Ring.from_ints`` for integers, both reduced mod 2^K), and ``b2a`` must give back the same
ring element. Everything here is exact.

Sessions: backends share and ideal (values and costs) and count (shapes and costs), N in {2, 3} (N = 4 in
the property tests), K = 64 (f = 16) and K = 32 (f = 8). Costs are checked against the registry.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mpsim
import protocols as P
from protocol_env import BACKENDS, CONFIGS, ProtocolEnv, config_id

PROPERTY = settings(max_examples=20, deadline=None, database=None)


class Env(ProtocolEnv):
    SEED, RNG_SEED = 11, 7

    def __init__(self, backend, parties, ring_bits, seed=None):
        super().__init__(backend, parties, ring_bits, seed=seed)
        self.mask = (1 << ring_bits) - 1

    def ring_ints(self, n: int) -> np.ndarray:
        """Random signed integers over the whole ring, plus its extremes and the values around 0."""
        lo, hi = -(1 << (self.K - 1)), (1 << (self.K - 1)) - 1
        edges = np.array([lo, hi, 0, -1, 1, lo + 1, hi - 1], dtype=np.int64)
        return np.concatenate([edges, self.rng.integers(lo, hi, n, endpoint=True, dtype=np.int64)])

    def words(self, values) -> np.ndarray:
        """The ring encoding of signed integers as uint64 words."""
        return self.s.ring.from_ints(np.asarray(values, dtype=np.int64))


@pytest.fixture(params=CONFIGS, ids=[config_id(c) for c in CONFIGS])
def env(request):
    return Env(*request.param)


# ----------------------------------------------------------------------------------------------------------
# conversions
# ----------------------------------------------------------------------------------------------------------


def test_a2b_of_fixed_point_reveals_the_ring_encoding(env):
    top = 2.0 ** (env.K - 1 - env.f)
    a = np.concatenate([[0.0, -0.0, 2.0**-env.f, -(2.0**-env.f), 1.5, -2.25, -top, top / 2, -top / 2],
                        np.rint(env.rng.uniform(-100, 100, 40) * 2**env.f) / 2**env.f])
    x = env.s.input(a)
    out, cost = env.cost_of(lambda: P.a2b(x))
    assert cost == env.declared("a2b", n=a.size, G=P.boolean.a2b_gates(env.K))
    assert cost.rounds == 1 + int(np.log2(env.K))
    env.bits(out, env.s.ring.encode(a, env.f), width=env.K)


def test_a2b_of_integers_over_the_whole_ring(env):
    v = env.ring_ints(64).reshape(-1, 1)
    out = P.a2b(env.s.input(v, frac_bits=0))
    assert out.shape == v.shape
    env.bits(out, env.words(v), width=env.K)


def test_a2b_of_a_zero_d_and_an_empty_tensor(env):
    env.bits(P.a2b(env.s.input(np.array(-3), frac_bits=0)), env.words(-3))
    out, cost = env.cost_of(lambda: P.a2b(env.s.input(np.zeros((0, 3)))))
    assert out.shape == (0, 3) and cost.sent_bits == (0,) * env.N


def test_b2a_gives_back_the_ring_element(env):
    v = env.ring_ints(40)
    b = P.share_bits(env.s, v, owner=env.N - 1)
    out, cost = env.cost_of(lambda: P.b2a(b))
    assert cost == env.declared("b2a", n=v.size)
    assert cost.rounds == 1
    env.values(out, v, frac=0)


def test_a2b_then_b2a_round_trips(env):
    a = np.array([1.5, -2.25, 0.0, 1000.0, -(2.0**-env.f)])
    back = P.b2a(P.a2b(env.s.input(a)))
    # b2a returns the same ring element as an integer (scale 0): the fixed-point encoding itself.
    env.values(back, env.s.ring.to_signed(env.s.ring.encode(a, env.f)), frac=0)


def test_b2a_bit_uses_bit_zero_only(env):
    words = np.array([[0, 1, 2, 3], [1 << (env.K - 1), (1 << (env.K - 1)) + 1, 6, 7]], dtype=np.uint64)
    b = P.share_bits(env.s, words)
    out, cost = env.cost_of(lambda: P.b2a_bit(b))
    assert cost == env.declared("b2a_bit", n=words.size)
    env.values(out, (words & np.uint64(1)).astype(np.int64), frac=0)
    bits = P.share_bits(env.s, np.array([0, 1, 1, 0]), width=1)
    env.values(P.b2a_bit(bits), [0, 1, 1, 0], frac=0)


# ----------------------------------------------------------------------------------------------------------
# AND, XOR, NOT
# ----------------------------------------------------------------------------------------------------------


def test_and_of_words_and_of_bits(env):
    u, v = env.ring_ints(30), env.ring_ints(30)[::-1].copy()
    x, y = P.share_bits(env.s, u), P.share_bits(env.s, v, owner=env.N - 1)
    out, cost = env.cost_of(lambda: P.and_(x, y))
    assert cost == env.declared("and", n=u.size, w=env.K)
    env.bits(out, env.words(u) & env.words(v), width=env.K)
    p, q = env.rng.integers(0, 2, (3, 5)), env.rng.integers(0, 2, (3, 5))
    bp, bq = P.share_bits(env.s, p, width=1), P.share_bits(env.s, q, width=1)
    out, cost = env.cost_of(lambda: P.and_(bp, bq))
    assert cost == env.declared("and", n=p.size, w=1)  # one bit per element, not a word
    env.bits(out, p & q, width=1)
    with pytest.raises(ValueError):
        P.and_(bp, bq[:2])  # no broadcasting inside an AND


def test_xor_and_not_are_local_and_exact(env):
    u, v = env.ring_ints(30), env.ring_ints(30)[::-1].copy()
    wu, wv = env.words(u), env.words(v)
    x, y = P.share_bits(env.s, u), P.share_bits(env.s, v)
    outs, cost = env.cost_of(lambda: (P.xor(x, y), P.xor(x, wv), P.not_(x)))
    assert cost == env.zero()
    env.bits(outs[0], wu ^ wv)
    env.bits(outs[1], wu ^ wv)
    env.bits(outs[2], wu ^ np.uint64(env.mask))  # NOT flips the K meaningful bits only
    p = env.rng.integers(0, 2, 6)
    bp = P.share_bits(env.s, p, width=1)
    env.bits(P.not_(bp), 1 - p, width=1)  # a bit's NOT flips bit 0 only
    env.bits(P.xor(bp, np.ones(6, dtype=np.uint64)), 1 - p)
    env.bits(P.xor(bp, P.not_(bp)), np.ones(6))
    env.bits(P.not_(P.not_(x)), wu)


def test_boolean_operations_reject_arithmetic_sharings(env):
    x = env.s.input(np.array([1.0, 2.0]))
    b = P.share_bits(env.s, np.array([1, 2]))
    for fn in (lambda: P.xor(x, b), lambda: P.xor(b, x), lambda: P.and_(x, b), lambda: P.not_(x),
               lambda: P.b2a(x), lambda: P.b2a_bit(x), lambda: P.reveal_bits(x)):
        with pytest.raises(TypeError):
            fn()
    with pytest.raises(TypeError):
        b + b  # arithmetic on a boolean sharing needs a conversion


@pytest.mark.parametrize("name", ["msb", "eqz", "a2b", "select_y"])
def test_arithmetic_protocols_reject_boolean_sharings(name):
    for backend in BACKENDS:
        s = mpsim.Session(parties=2, seed=1, backend=backend)
        b = P.share_bits(s, np.array([-5, 3, 0, 7]))
        bit = P.share_bits(s, np.array([1, 0, 1, 1]), width=1)
        fn = {"msb": lambda: P.msb(b), "eqz": lambda: P.eqz(b), "a2b": lambda: P.a2b(b),
              "select_y": lambda: P.select(bit, b)}[name]
        with pytest.raises(TypeError):
            fn()


# ----------------------------------------------------------------------------------------------------------
# MSB and opening
# ----------------------------------------------------------------------------------------------------------


def test_msb_is_the_top_bit_over_the_whole_ring(env):
    v = env.ring_ints(100)
    out, cost = env.cost_of(lambda: P.msb(env.s.input(v, frac_bits=0)))
    assert cost == env.declared("msb", n=v.size)
    env.bits(out, env.words(v) >> np.uint64(env.K - 1), width=1)


def test_msb_cost_at_n2_k64_is_38_bytes_per_element():
    s = mpsim.Session(parties=2, seed=0, backend="count")
    x = s.placeholder((1000,))
    mark = s.mark()
    P.msb(x)
    c = s.cost(since=mark)
    # K + 2 (2K - 2 - log2 K) = 64 + 2 * 120 = 304 bits = 38 bytes per element, in 1 + log2 K = 7 rounds
    assert c.rounds == 7 and c.sequential_rounds == 7 and c.sent_bits == (304 * 1000,) * 2


def test_reveal_bits_opens_width_bits_per_element(env):
    p = env.rng.integers(0, 2, (4, 3))
    b = P.share_bits(env.s, p, width=1)
    out, cost = env.cost_of(lambda: P.reveal_bits(b))
    assert cost.rounds == 1 and cost.sent_bits == ((env.N - 1) * p.size,) * env.N
    if not env.count:
        np.testing.assert_array_equal(out, p.astype(np.uint64))
    w = P.share_bits(env.s, np.arange(5))
    out, cost = env.cost_of(lambda: P.reveal_bits(w, to=0))
    assert cost.sent_bits == (0,) + (env.K * 5,) * (env.N - 1)
    if not env.count:
        np.testing.assert_array_equal(out, np.arange(5, dtype=np.uint64))


# ----------------------------------------------------------------------------------------------------------
# property-based tests
# ----------------------------------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data(), parties=st.sampled_from([2, 3, 4]), ring_bits=st.sampled_from([32, 64]))
def test_property_a2b_b2a_and_xor_not(data, parties, ring_bits):
    lo, hi = -(1 << (ring_bits - 1)), (1 << (ring_bits - 1)) - 1
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))
    v = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)))
    u = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)))
    s = mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=0, seed=data.draw(st.integers(0, 2**32)))
    wv, wu = s.ring.from_ints(v), s.ring.from_ints(u)
    x = s.input(v, frac_bits=0)
    np.testing.assert_array_equal(P.reveal_bits(P.a2b(x)), wv)
    np.testing.assert_array_equal(s.reveal(P.b2a(P.share_bits(s, v))), v)
    np.testing.assert_array_equal(P.reveal_bits(P.msb(x)), wv >> np.uint64(ring_bits - 1))
    bu, bv = P.share_bits(s, u), P.share_bits(s, v, owner=parties - 1)
    np.testing.assert_array_equal(P.reveal_bits(P.and_(bu, bv)), wu & wv)
    np.testing.assert_array_equal(P.reveal_bits(P.xor(bu, bv)), wu ^ wv)
    np.testing.assert_array_equal(P.reveal_bits(P.not_(bu)), wu ^ np.uint64((1 << ring_bits) - 1))
