"""The serial twins of the parallel kernels (mpsim.kernels): the same results on every path, and the measured
crossover that picks between them."""
from __future__ import annotations

import numpy as np
import pytest

from mpsim import kernels as K


@pytest.fixture
def path(monkeypatch):
    """force(threshold): every kernel family switches to serial below ``threshold`` elements."""
    def force(threshold: int):
        monkeypatch.setenv(K.SERIAL_ENV, str(threshold))
        K.serial_below.cache_clear()

    yield force
    K.serial_below.cache_clear()


@pytest.mark.parametrize("n", [1, 63, 64, 16385, 40000])
def test_serial_and_parallel_paths_agree(path, n):
    rng = np.random.default_rng(n)
    x = rng.integers(0, 2**64, size=(2, n), dtype=np.uint64)
    y = rng.integers(0, 2**64, size=(2, n), dtype=np.uint64)
    e, f = x[0].copy(), y[1].copy()
    results = []
    for threshold in (0, 1 << 40):  # always parallel, always serial
        path(threshold)
        bt = np.ascontiguousarray(x.reshape(1, 2, n)[:, :, : min(n, 300)])
        results.append((K.ring_add(x, y), K.ring_sub(x, 5), K.ring_mul(x, y), K.beaver_combine(x, y, x, e, f),
                        K.random_uint64(n, key=3, counter=11), K.ring_matmul(bt.reshape(2, -1).T.copy(), bt[0])))
    for a, b in zip(*results):
        assert np.array_equal(a, b)
    want = (x + y, x - np.uint64(5), x * y)
    for got, expect in zip(results[0][:3], want):
        assert np.array_equal(got, expect)


def test_crossover_is_the_first_size_where_parallel_wins_twice_in_a_row():
    sizes = (10, 20, 30, 40)
    assert K._crossover(sizes, [False, True, True, True]) == 20
    assert K._crossover(sizes, [True, False, True, True]) == 30  # one win alone does not count
    assert K._crossover(sizes, [False, True, True, False]) == 20  # nor does one loss after two wins
    assert K._crossover(sizes, [True] * 4) == 10
    assert K._crossover(sizes, [False, False, False, True]) == 40
    assert K._crossover(sizes, [False] * 4) == 80  # never: beyond the probes


def test_one_thread_is_always_serial(monkeypatch, path):
    monkeypatch.delenv(K.SERIAL_ENV, raising=False)
    monkeypatch.setattr(K.nb.config, "NUMBA_NUM_THREADS", 1)
    K.serial_below.cache_clear()
    assert K.serial_below("prg") == 1 << 62
