"""Session, channel, ledger and cost algebra."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import mpsim
from mpsim.ledger import Cost, scope_matches

ROOT = Path(__file__).resolve().parents[1]


def test_issue_example_runs_and_counts_exactly():
    with mpsim.Session(parties=2, frac_bits=16, seed=1) as s:
        x = s.input(np.linspace(-4, 4, 512), owner=0)
        w = s.input(np.random.default_rng(0).normal(size=(512, 64)), owner=1)
        with s.scope("layer"):
            y = (x * x) @ w
        out = s.reveal(y)
        c = s.cost()
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (64,)
    # square: 1 round, 64*512 bits per party; matmul: 1 round, 64*(512 + 512*64); reveal: 1 round, 64*64.
    per_party = 64 * 512 + 64 * (512 + 512 * 64) + 64 * 64
    assert (c.rounds, c.sequential_rounds) == (3, 3)
    assert c.sent == (per_party / 8, per_party / 8) and c.total_bytes == per_party / 4
    # Offline: square pair 512 corrections, matmul triple 64 corrections (local truncation needs none).
    assert c.offline_bytes == 64 * (512 + 64) / 8
    layer = s.cost(scope="layer")
    assert layer.rounds == 2 and layer.sent_bits == (64 * (512 + 512 + 512 * 64),) * 2
    reference = (np.linspace(-4, 4, 512) ** 2) @ np.random.default_rng(0).normal(size=(512, 64))
    # Encoding errors dominate: |dx^2| <= 2*4*2^-17 + ULP per element, times |w| summed over 512 terms.
    assert np.max(np.abs(out - reference)) < 512 * 4 * (8 * 2.0**-17 + 2 * 2.0**-16)


def test_rounds_are_depth_and_sequential_rounds_are_calls():
    s = mpsim.Session(parties=2, seed=0, backend="ideal")
    a, b = s.input(np.ones(4)), s.input(np.ones(4))
    with s.scope("independent"):
        a * a  # two independent products on fresh inputs: same depth, two calls
        b * b
    c = s.cost(scope="independent")
    assert (c.rounds, c.sequential_rounds) == (1, 2)
    with s.scope("chain"):
        (a * a) * a
    c = s.cost(scope="chain")
    assert (c.rounds, c.sequential_rounds) == (2, 2)
    assert s.cost().rounds == 2  # the whole session's critical path


def test_reveal_to_one_party_counts_only_senders():
    s = mpsim.Session(parties=3, seed=0)
    x = s.input(np.arange(5.0))
    m = s.mark()
    np.testing.assert_array_equal(s.reveal(x, to=1), np.arange(5.0))
    assert s.cost(since=m).sent_bits == (5 * 64, 0, 5 * 64)
    m = s.mark()
    s.reveal(x)
    assert s.cost(since=m).sent_bits == (5 * 64 * 2,) * 3
    with pytest.raises(ValueError, match="party"):
        s.reveal(x, to=3)


def test_bytes_are_fractional_when_fewer_than_eight_bits():
    s = mpsim.Session(parties=2, seed=0, backend="count")
    x = s.input(np.zeros(3))
    from mpsim.channel import Opening

    s.channel.open("bits", [Opening(None, (3,), 1, 0)])
    assert s.cost(scope=None).sent == (3 / 8, 3 / 8)
    assert x.shape == (3,)


def test_cost_algebra():
    a = Cost(2, 3, (10, 20), 5, (5, 0))
    b = Cost(1, 1, (1, 2), 3, (3, 0))
    assert a + b == Cost(3, 4, (11, 22), 8, (8, 0))
    assert a - b == Cost(1, 2, (9, 18), 2, (2, 0))
    assert 3 * a == a * 3 == Cost(6, 9, (30, 60), 15, (15, 0))
    assert a | b == Cost(2, 3, (11, 22), 8, (8, 0))
    assert (a + b) - b == a
    with pytest.raises(ValueError, match="parties"):
        a + Cost(1, 1, (1, 1, 1), 0, (0, 0, 0))
    with pytest.raises(TypeError):
        a * 1.5


def test_snapshot_difference_equals_cost_since_mark():
    s = mpsim.Session(parties=2, seed=0, backend="count")
    x = s.input(np.zeros((4, 4)))
    x @ x
    before, mark = s.cost(), s.mark()
    y = x @ x  # depth 1 again: runs alongside the first product
    y @ y  # depth 2
    diff, since = s.cost() - before, s.cost(since=mark)
    # Bits and calls agree; rounds differ by design: the snapshot difference is how much the session's
    # critical path grew (1), cost(since=mark) the depth levels the later segment itself used (2).
    assert (diff.sent_bits, diff.offline_bits, diff.sequential_rounds) == (
        since.sent_bits, since.offline_bits, since.sequential_rounds)
    assert (diff.rounds, since.rounds) == (1, 2)


def test_scope_tree_and_matching():
    s = mpsim.Session(parties=2, seed=0, backend="count")
    x = s.input(np.zeros((2, 3)))
    for layer in range(3):
        with s.scope(f"layer{layer}"):
            with s.scope("attention"):
                with s.scope("qk"):
                    x * x
    tree = s.cost_tree()
    names = [node.path for _, node in tree.walk()]
    assert "layer1/attention/qk" in names and "layer2/attention/qk/beaver_square" in names
    per_layer = s.cost(scope="layer0")
    assert s.cost(scope="attention/qk").sent_bits == tuple(3 * b for b in per_layer.sent_bits)
    assert s.cost(scope="/attention").sent_bits == (0, 0)  # anchored at the root: no match
    assert tree.find("layer1").cost == per_layer
    assert "layer2" in tree.format()
    assert scope_matches("a/b/c", "b/c") and not scope_matches("a/b/c", "a/c")
    with pytest.raises(ValueError):
        with s.scope("bad/name"):
            pass


def test_two_sessions_side_by_side_are_independent():
    s1 = mpsim.Session(parties=2, seed=1)
    s2 = mpsim.Session(parties=3, seed=1)
    x1, x2 = s1.input(np.ones(3)), s2.input(np.ones(3))
    x1 * x1
    assert len(s2.ledger) == 0 and len(s1.ledger) > 0
    with pytest.raises(ValueError, match="different sessions"):
        x1 + x2


def test_same_seed_same_shares_and_different_seed_different_shares():
    shares = []
    for seed in (5, 5, 6):
        s = mpsim.Session(parties=2, seed=seed)
        shares.append(s.input(np.arange(4.0)).shares.copy())
    np.testing.assert_array_equal(shares[0], shares[1])
    assert not np.array_equal(shares[0], shares[2])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"parties": 1}, "parties"),
        ({"parties": 2.0}, "parties"),
        ({"ring_bits": 48}, "ring_bits"),
        ({"frac_bits": 63}, "frac_bits"),
        ({"backend": "gpu"}, "backend"),
        ({"trunc": "exact"}, "trunc"),
        ({"parties": 3, "trunc": "local"}, "2 parties"),
    ],
)
def test_bad_session_arguments_give_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mpsim.Session(**kwargs)


def test_truncation_warning_follows_the_declared_range():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mpsim.Session(parties=2, max_abs=2.0**4)  # ~2^-27 per element: fine
    with pytest.warns(mpsim.TruncationWarning, match="probability"):
        mpsim.Session(parties=2, max_abs=2.0**20)  # ~2^-11 per element
    s = mpsim.Session(parties=2, max_abs=2.0**20, trunc="dealer")
    assert s.truncation_failure_log2() == pytest.approx(20 + 32 + 1 - 64)
    with pytest.warns(mpsim.TruncationWarning, match="2\\^\\(K-2\\)"):
        mpsim.Session(parties=3, max_abs=2.0**40)


def test_count_backend_reads_raise_but_costs_flow():
    s = mpsim.Session(parties=2, backend="count")
    x = s.input(np.zeros((3, 4)))
    r = s.reveal(x @ x.T)
    assert r.shape == (3, 3)
    with pytest.raises(mpsim.CountBackendError):
        np.asarray(r)
    with pytest.raises(mpsim.CountBackendError):
        x.shares
    assert s.cost().rounds == 2


def test_closed_session_rejects_new_protocol_calls_but_keeps_its_ledger():
    with mpsim.Session(parties=2, seed=0) as s:
        x = s.input(np.ones(2))
        x * x
    assert s.cost().rounds == 1
    with pytest.raises(RuntimeError, match="closed"):
        x * x


def test_console_script_demo_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mpsim.cli", "demo", "--block", "--seq", "64", "--heads", "2"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "step total" in out.stdout and "softmax" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "mpsim.cli", "demo", "--seq", "-3"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "positive integer" in bad.stderr and "Traceback" not in bad.stderr


def test_randomized_openings_are_simulated_from_the_session_seed_under_count():
    """The seam for 'randomized' protocols: count draws opened values; share/ideal open the real ones."""

    def coin(rng):
        return [rng.integers(0, 2, size=(6,), dtype=np.uint64)]

    draws = []
    for seed in (4, 4, 5):
        s = mpsim.Session(parties=2, seed=seed, backend="count")
        (values,), depth = s._open("coin", [s.input(np.zeros(6))], simulate=coin)
        draws.append(values)
        assert depth == 1 and s.cost().sent_bits == (6 * 64, 6 * 64)
    np.testing.assert_array_equal(draws[0], draws[1])
    assert set(np.unique(np.concatenate(draws))) <= {0, 1}
    s = mpsim.Session(parties=2, seed=4, backend="ideal")
    (values,), _ = s._open("coin", [s.input(np.arange(6), frac_bits=0)], simulate=coin)
    np.testing.assert_array_equal(values, np.arange(6))


def test_placeholder_inputs_are_count_only_and_cost_like_input():
    s = mpsim.Session(parties=2, backend="count")
    w = s.placeholder((4096, 11008), owner=1)  # a LLaMA MLP weight: no data is allocated
    x = s.placeholder((1, 4096))
    mark = s.mark()
    y = x @ w
    assert y.shape == (1, 11008)
    assert s.cost(since=mark).sent_bits == (64 * (4096 + 4096 * 11008),) * 2
    with pytest.raises(ValueError, match="needs real ones"):
        mpsim.Session(parties=2, backend="ideal").placeholder((2, 2))


def test_profiler_measures_time_per_scope():
    s = mpsim.Session(parties=2, seed=0)
    x = s.input(np.ones((64, 64)))
    with s.scope("work"):
        x @ x
    assert s.profiler.seconds["work"] > 0
    assert s.profiler.calls["work"] == 1 and s.profiler.calls["work/beaver_matmul"] == 1
