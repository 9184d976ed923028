"""Oblivious one-hot and gather against numpy, with exact costs, and one composite (argmax + gather).

One-hot of a secret integer index i over [0, n): by rotation (default; T = n rounded up to a power of two,
one round, log2 T bits per index) or by n equality tests. Domain: i in [0, n). Under ``check_domain=True``
(argument or session option) the share and ideal backends raise ``ValueError`` for an index outside it;
the count backend has no values and cannot check. Without the check an out-of-range index silently gives a
wrong one-hot: the rotation puts its 1 at i mod T, or nowhere when i mod T >= n (this is tested, so that a
change of behaviour is noticed).

Gather: rows of a secret matrix M (n, d) picked by secret indices or one-hots, a product onehot @ M with M a
plain SharedTensor (Beaver matmul, opens both operands) or a MaskedOperand from ``session.reusable(M)``
(opens only the one-hot). The one-hot is integer-encoded, so no truncation: results are exact.

Sessions: backends share and ideal (values and costs) and count (shapes and costs), N in {2, 3} (4 in the
property test), K = 64 (f = 16) and K = 32 (f = 8).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpsim
import protocols as P
from mpsim import SharedTensor
from protocol_env import BACKENDS, CONFIGS, RINGS, ProtocolEnv, config_id

PROPERTY = settings(max_examples=25, deadline=None, database=None)


def pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def onehot_ref(index, n: int) -> np.ndarray:
    return (np.asarray(index)[..., None] == np.arange(n)).astype(np.int64)


class Env(ProtocolEnv):
    """Sessions take options as keywords: ``Env(backend, parties, ring_bits, check_domain=True)``."""

    SEED, RNG_SEED = 3, 21

    def index(self, values) -> SharedTensor:
        return self.s.input(np.asarray(values, dtype=np.int64), frac_bits=0)

    def matrix(self, n: int, d: int) -> np.ndarray:
        return np.rint(self.rng.uniform(-50, 50, (n, d)) * 2**self.f) / 2**self.f


@pytest.fixture(params=CONFIGS, ids=[config_id(c) for c in CONFIGS])
def env(request):
    return Env(*request.param)


# ----------------------------------------------------------------------------------------------------------
# one-hot
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 7, 8, 12, 33])
def test_onehot_by_rotation_matches_numpy(env, n):
    idx = env.rng.integers(0, n, (3, 4))
    idx[0, :2] = [0, n - 1]  # both ends of the range
    i = env.index(idx)
    out, cost = env.cost_of(lambda: P.onehot(i, n))
    assert cost == env.declared("onehot_rotation", m=idx.size, T=pow2(n))
    T = pow2(n)
    assert cost.rounds == 1 and cost.sent_bits == ((env.N - 1) * idx.size * (T.bit_length() - 1),) * env.N
    env.values(out, onehot_ref(idx, n), frac=0)
    env.values(P.onehot(i, n, method="rotation"), onehot_ref(idx, n), frac=0)


def test_onehot_of_a_single_position_is_constant(env):
    i = env.index(np.zeros(4, dtype=np.int64))
    out, cost = env.cost_of(lambda: P.onehot(i, 1))
    assert cost.rounds == 0 and cost.sent_bits == (0,) * env.N
    env.values(out, np.ones((4, 1), dtype=np.int64), frac=0)


@pytest.mark.parametrize("n", [5, 8])
def test_onehot_by_equality_matches_numpy_and_costs_n_equality_tests(env, n):
    idx = env.rng.integers(0, n, (2, 3))
    i = env.index(idx)
    out, cost = env.cost_of(lambda: P.onehot(i, n, method="equality"))
    m = idx.size * n
    assert cost == env.declared("eqz", n=m) + env.declared("b2a_bit", n=m)
    env.values(out, onehot_ref(idx, n), frac=0)


def test_onehot_of_a_fixed_point_index_uses_equality(env):
    idx = np.array([0, 3, 4, 1])
    i = env.s.input(idx.astype(np.float64))  # fixed point: rotation cannot reduce it mod T
    out, cost = env.cost_of(lambda: P.onehot(i, 5))
    assert cost == env.declared("eqz", n=20) + env.declared("b2a_bit", n=20)
    env.values(out, onehot_ref(idx, 5), frac=0)
    with pytest.raises(ValueError):
        P.onehot(i, 5, method="rotation")


def test_onehot_rejects_bad_arguments(env):
    i = env.index([0, 1])
    with pytest.raises(ValueError):
        P.onehot(i, 4, method="table")
    with pytest.raises(ValueError):
        P.onehot(i, 0)
    with pytest.raises(ValueError):
        P.onehot_rotation(P.share_bits(env.s, np.array([0, 1])), 4)  # a boolean sharing is not an index


OUT_OF_RANGE = np.array([5, 6, 7, 8, 10, 13, 16, -1, -3, -6, -8, 1 << 20])


def test_out_of_range_index_silently_gives_a_wrong_onehot(env):
    """Documented: without check_domain the rotation puts the 1 at i mod T (none when i mod T >= n)."""
    n, T = 5, 8
    out = P.onehot(env.index(OUT_OF_RANGE), n)
    expected = onehot_ref(OUT_OF_RANGE % T, n)  # numpy's % is the ring's mod T for negative i too
    assert expected[:3].sum() == 0 and expected[3, 0] == expected[4, 2] == 1  # 5, 6, 7 -> none; 8 -> e_0; 10 -> e_2
    env.values(out, expected, frac=0)


@pytest.mark.parametrize("bad", [5, -1, 8, 1 << 20])
def test_check_domain_raises_on_share_and_ideal(env, bad):
    i = env.index([0, bad, 2])
    if env.count:
        P.onehot(i, 5, check_domain=True)  # no values: nothing to check (documented)
        return
    with pytest.raises(ValueError, match="outside"):
        P.onehot(i, 5, check_domain=True)
    # the session option does the same, and an explicit False overrides it
    strict = Env(env.backend, env.N, env.K, check_domain=True)
    j = strict.index([0, bad, 2])
    with pytest.raises(ValueError, match="outside"):
        P.onehot(j, 5)
    with pytest.raises(ValueError, match="outside"):
        P.gather(strict.s.input(strict.matrix(5, 2)), j, kind="index")
    strict.values(P.onehot(j, 5, check_domain=False), onehot_ref(np.array([0, bad, 2]) % 8, 5))
    strict.values(P.onehot(strict.index([0, 4, 2]), 5), onehot_ref([0, 4, 2], 5))  # in range: fine


@pytest.mark.parametrize("fixed", [False, True], ids=["equality", "auto-fixed-point"])
def test_check_domain_is_honoured_by_the_equality_method(fixed):
    s = mpsim.Session(parties=2, seed=1, backend="share")
    i = s.input(np.array([7.0, 2.0])) if fixed else s.input(np.array([7, 2]), frac_bits=0)
    with pytest.raises(ValueError):
        P.onehot(i, 5, method="auto" if fixed else "equality", check_domain=True)


def test_equality_onehot_of_an_out_of_range_index_is_a_zero_row(env):
    i = env.index([7, -1, 2])
    env.values(P.onehot(i, 5, method="equality"), onehot_ref([7, -1, 2], 5), frac=0)


def test_rotation_opens_a_uniform_value_whatever_the_index():
    """c = (r - i) mod T is uniform for every i: compare its histogram for i = 0 and i = 5 with uniform."""
    T, m = 8, 40_000
    for secret in (0, 5):
        s = mpsim.Session(parties=2, seed=31, backend="share")
        opened = []
        original = s.channel.open

        def spy(op, items, to=None, simulate=None):
            values, depth = original(op, items, to=to, simulate=simulate)
            opened.extend(v for v, item in zip(values, items) if item.width == 3)
            return values, depth

        s.channel.open = spy
        P.onehot(s.input(np.full(m, secret), frac_bits=0), T)
        (c,) = opened
        counts = np.bincount(np.asarray(c, dtype=np.int64) & (T - 1), minlength=T)
        assert counts.size == T
        tol = 6 * np.sqrt(m * (1 / T) * (1 - 1 / T))
        assert np.all(np.abs(counts - m / T) < tol), counts


# ----------------------------------------------------------------------------------------------------------
# gather
# ----------------------------------------------------------------------------------------------------------


def test_gather_rows_by_index_and_by_onehot_from_a_shared_matrix(env):
    n, d = 7, 3
    M = env.matrix(n, d)
    idx = env.rng.integers(0, n, (2, 4))
    m = env.s.input(M, owner=env.N - 1)
    i = env.index(idx)
    out, cost = env.cost_of(lambda: P.gather(m, i, kind="index"))
    T = pow2(n)
    assert cost == (env.declared("onehot_rotation", m=idx.size, T=T)
                    + env.declared("beaver_matmul", nx=idx.size * n, ny=n * d, n=idx.size * d))
    env.values(out, M[idx], frac=env.f)
    oh = P.onehot(i, n)
    env.values(P.gather(m, oh, kind="onehot"), M[idx], frac=env.f)
    env.values(P.gather(m, oh), M[idx], frac=env.f)  # auto: last axis of length n is a one-hot
    env.values(P.gather(m, i), M[idx], frac=env.f)  # auto: last axis 4 != n: an index


def test_gather_from_a_reusable_matrix_opens_only_the_onehot(env):
    n, d = 12, 5
    M = env.matrix(n, d)
    wm = env.s.reusable(env.s.input(M))
    for step in range(3):  # every use pays the one-hot and its own opening, never W again
        idx = env.rng.integers(0, n, (3,))
        i = env.index(idx)
        out, cost = env.cost_of(lambda: P.gather(wm, i, kind="index"))
        assert cost == (env.declared("onehot_rotation", m=3, T=16)
                        + env.declared("matmul_reused", nx=3 * n, ny=n * d, n=3 * d)), step
        env.values(out, M[idx], frac=env.f)
        oh = P.onehot(i, n)
        out, cost = env.cost_of(lambda: P.gather(wm, oh, kind="onehot"))
        assert cost == env.declared("matmul_reused", nx=3 * n, ny=n * d, n=3 * d)
        env.values(out, M[idx], frac=env.f)


def test_gather_by_an_index_that_looks_like_a_onehot_needs_kind_index(env):
    n = 3
    M = env.matrix(n, 2)
    idx = np.array([[2, 0, 1], [1, 1, 0]])  # last axis has length n: auto would take it for a one-hot
    m, i = env.s.input(M), env.index(idx)
    env.values(P.gather(m, i, kind="index"), M[idx], frac=env.f)
    assert P.gather(m, i).shape == (2, 2)  # auto: read as two (wrong) one-hots, as documented
    with pytest.raises(TypeError):
        P.gather(m, env.s.input(idx.astype(np.float64)))  # a fixed-point selector is refused
    with pytest.raises(ValueError):
        P.gather(m, i, kind="rows")


# ----------------------------------------------------------------------------------------------------------
# composite: argmax then gather; identical ledgers on the three backends
# ----------------------------------------------------------------------------------------------------------


def _argmax_gather(backend: str, parties: int, ring_bits: int):
    f = RINGS[ring_bits]
    rng = np.random.default_rng(5)
    scores = rng.integers(-3, 4, (4, 10)).astype(np.float64)  # ties on purpose
    table = np.rint(rng.uniform(-20, 20, (10, 6)) * 2**f) / 2**f
    s = mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=f, seed=8, backend=backend,
                      trunc="dealer" if ring_bits == 32 else "auto")
    x, m = s.input(scores), s.input(table, owner=parties - 1)
    wm = s.reusable(m)
    with s.scope("pick"):
        values, oh, index = P.argmax(x, axis=-1, return_index=True)
        rows = P.gather(m, oh)
        rows_reused = P.gather(wm, index, kind="index")
        best = P.max(rows, axis=0)
    outs = [s.reveal(t) for t in (values, oh, index, rows, rows_reused, best)]
    expected = [scores.max(-1), onehot_ref(scores.argmax(-1), 10), scores.argmax(-1),
                table[scores.argmax(-1)], table[scores.argmax(-1)], table[scores.argmax(-1)].max(0)]
    ledger = [(msg.scope, msg.op, msg.depth, msg.call, msg.src, msg.dst, msg.bits, msg.phase)
              for msg in s.ledger.messages]
    return outs, expected, (ledger, list(getattr(s.ledger, "work", []))), s.cost()


@pytest.mark.parametrize("parties,ring_bits", [(2, 64), (3, 32), (4, 64)])
def test_argmax_then_gather_ledgers_are_identical_on_every_backend(parties, ring_bits):
    results = {b: _argmax_gather(b, parties, ring_bits) for b in BACKENDS}
    for backend in ("share", "ideal"):
        outs, expected, _, _ = results[backend]
        for got, want in zip(outs, expected):
            np.testing.assert_array_equal(got, want)
    assert results["share"][2] == results["ideal"][2] == results["count"][2]
    assert results["share"][3] == results["ideal"][3] == results["count"][3]
    assert results["count"][3].rounds > 0


# ----------------------------------------------------------------------------------------------------------
# property-based
# ----------------------------------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data(), parties=st.sampled_from([2, 3, 4]), ring_bits=st.sampled_from([32, 64]))
def test_property_onehot_and_gather(data, parties, ring_bits):
    n = data.draw(st.integers(1, 20))
    m = data.draw(st.integers(1, 6))
    d = data.draw(st.integers(1, 3))
    idx = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)), dtype=np.int64)
    f = RINGS[ring_bits]
    table = np.array(data.draw(st.lists(st.integers(-1000, 1000), min_size=n * d, max_size=n * d)),
                     dtype=np.float64).reshape(n, d) / 4
    s = mpsim.Session(parties=parties, ring_bits=ring_bits, frac_bits=f, seed=data.draw(st.integers(0, 2**32)),
                      trunc="dealer" if ring_bits == 32 else "auto")
    i = s.input(idx, frac_bits=0)
    np.testing.assert_array_equal(s.reveal(P.onehot(i, n)), onehot_ref(idx, n))
    np.testing.assert_array_equal(s.reveal(P.onehot(i, n, method="equality")), onehot_ref(idx, n))
    mat = s.input(table)
    np.testing.assert_array_equal(s.reveal(P.gather(mat, i, kind="index")), table[idx])
    np.testing.assert_array_equal(s.reveal(P.gather(s.reusable(mat), i, kind="index")), table[idx])
