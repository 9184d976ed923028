"""Issue 10, items 3 and 4: safe defaults (no silent wrong answers) and bad input refused with one clear line.

One test per finding, named for the behaviour it pins down; each asserts the exact error type and a fragment
of its message, or the now-correct result. Bounds are derived in the docstrings, never tuned.
"""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import mpsim
import protocols as P
from mpsim.cli import commands as cli
from protocols.topk import choose_method
from protocols.nonlinear import Twin, twin_exp, twin_reciprocal
from protocols.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def _one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1 and "Traceback" not in text


# -- 3a: trunc="auto" at K = 32 ------------------------------------------------------------------------------
def test_k32_default_session_softmax_rows_sum_to_one():
    """The issue's case: K = 32 (f = 8), trunc "auto", softmax of uniform(-4, 4) rows of 512. With local
    truncation rows summed to ~300,000; "auto" now resolves to dealer truncation at K = 32.

    Bound on |sum_i out_i - 1|, derived from softmax's steps (protocols/nonlinear/softmaxes.py: out_i = e_i * r with
    r = reciprocal(S), S = sum_i e_i the MPC's own exps, so exp's own error cancels) and the documented errors:
    sum_i out_i - 1 = sum_i (out_i - e_i r) + (S r - 1). Each out_i truncates the exact product e_i r once
    (floor or floor + 1): n ULPs in all. S r - 1 = S (r - 1/S), where r is within the twin's documented slack
    (``Twin.err``) of ``twin_reciprocal(S)``, whose distance to 1/S is computed exactly (not taken from
    ``reciprocal_bound``, whose relative term is f = 16's); S is a ring value at scale f in [1, S_hi] (e of the
    row's maximum is exactly 1, every e_i >= 0; S_hi sums the exp twin's values plus their slack), so the
    largest S |r - 1/S| over every such S bounds the second term."""
    f, K = 8, 32
    v = np.random.default_rng(0).uniform(-4, 4, (16, 512))
    s = mpsim.Session(parties=2, ring_bits=K, seed=0)
    assert s.trunc == "dealer" and s.frac_bits == f
    got = s.reveal(P.softmax(s.input(v)))
    x = Twin.encode(v, f)
    e = twin_exp(x - Twin(x.v.max(axis=-1), f).expand())
    s_hi = int(np.ceil(((e.v + e.err).sum(axis=-1)).max()))
    grid = np.arange(2**f, s_hi + 1)  # every S at scale f in [1, S_hi]
    r = twin_reciprocal(Twin(grid, f), K=K)
    sr = grid * 2.0**-f
    recip_term = np.max(sr * (np.abs(r.real() - 1 / sr) + r.err * 2.0**-f))
    bound = v.shape[-1] * 2.0**-f + recip_term
    assert bound < 10  # the derived bound is meaningful: a failed local truncation is off by ~2^(K-2f) = 2^16
    assert np.all(np.abs(got.sum(axis=-1) - 1) <= bound), (np.abs(got.sum(axis=-1) - 1).max(), bound)
    dealer = mpsim.Session(parties=2, ring_bits=K, seed=0, trunc="dealer")
    np.testing.assert_array_equal(got, dealer.reveal(P.softmax(dealer.input(v))))  # auto is dealer, exactly


def test_auto_truncation_is_local_only_for_two_parties_at_k64():
    assert mpsim.Session(parties=2, ring_bits=64).trunc == "local"
    assert mpsim.Session(parties=2, ring_bits=32).trunc == "dealer"
    assert mpsim.Session(parties=3, ring_bits=64).trunc == "dealer"
    assert mpsim.Session(parties=3, ring_bits=32).trunc == "dealer"


def test_explicit_local_truncation_at_k32_warns_with_its_failure_probability():
    """trunc_local's bound 2^(m + 2f + 1 - K): for |x| <= 1 (m = 0) at K = 32, f = 8 that is 2^-15; with
    max_abs = 16 (m = 4) 2^-11. At K = 64, f = 16 and |x| <= 1 it is 2^-31, below the 2^-20 threshold."""
    with pytest.warns(mpsim.TruncationWarning, match=r"2\^-15\.0 per element for \|x\| <= 1 \(no max_abs declared\)"):
        s = mpsim.Session(parties=2, ring_bits=32, trunc="local")
    assert s.trunc == "local" and s.truncation_failure_log2() == -15
    with pytest.warns(mpsim.TruncationWarning, match=r"2\^-11\.0 per element for values up to 16"):
        mpsim.Session(parties=2, ring_bits=32, trunc="local", max_abs=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mpsim.Session(parties=2, ring_bits=64, trunc="local").truncation_failure_log2() == -31
        mpsim.Session(parties=2, ring_bits=32)  # auto: dealer, nothing to warn about


# -- 3b: topk "auto" never leaves its domain -----------------------------------------------------------------
def _grid(rng, shape, bound, f):
    return np.rint(rng.uniform(-bound, bound, shape) * 2**f) / 2**f


def test_auto_topk_at_k32_picks_a_method_whose_domain_holds():
    """(1, 512) rows at K = 32, f = 8: the shuffle's packed keys x 2^9 + low need |x| < 2^(32-2-9-8) = 8192;
    values up to 12000 (inside the session's product range 2^(K-2-2f) = 16384) used to come back as the
    smallest ones. auto now falls back to max, the one method whose domain covers that range."""
    s = mpsim.Session(parties=2, ring_bits=32, seed=0, backend="ideal")
    xv = _grid(np.random.default_rng(0), (1, 512), 12000.0, 8)
    values, onehot, index = P.topk(s.input(xv), 8, sorted=True, return_index=True)
    np.testing.assert_array_equal(s.reveal(values), -np.sort(-xv, axis=1)[:, :8])
    np.testing.assert_array_equal(s.reveal(index), np.argsort(-xv, axis=1, kind="stable")[:, :8])
    assert choose_method(1, 512, 8, K=32, N=2, f=8) == "max"
    assert choose_method(32, 256, 50, K=32, N=2, f=8) == "shuffle"  # b = 8 <= f: in its domain
    assert choose_method(32, 512, 50) == "shuffle"  # K = 64: unchanged


@pytest.mark.parametrize("method", ["sort", "shuffle"])
def test_explicit_topk_method_outside_its_domain_raises_with_the_bound(method):
    s = mpsim.Session(parties=2, ring_bits=32, seed=0, backend="count")
    x = s.placeholder((1, 512))
    with pytest.raises(ValueError, match=rf"method='{method}' on rows of n=512 is exact only for \|x\| < 2\^13 .*"
                                         r"product range \|x\| < 2\^14 .*n <= 256"):
        P.topk(x, 8, method=method)
    with pytest.raises(ValueError, match=rf"method='{method}' on rows of n=512"):
        {"sort": P.topk_sort, "shuffle": P.topk_shuffle}[method](x, 8)  # the registered protocol itself too
    assert P.topk(x, 8, method="max")[0].shape == (1, 8)
    assert P.topk(s.placeholder((1, 256)), 8, method=method)[0].shape == (1, 8)  # b = 8 <= f = 8


# -- 3c: per-input frac_bits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("frac,match", [
    (40, r"frac_bits=40 leaves no room for products in a 64-bit ring: .* 2f <= K - 2"),
    (2.7, r"frac_bits must be an integer in \[0, 62\], got 2\.7"),
    (-1, r"frac_bits must be an integer in \[0, 62\], got -1"),
    (True, r"frac_bits must be an integer in \[0, 62\], got True"),
])
def test_input_frac_bits_are_validated_like_the_session_s(frac, match):
    s = mpsim.Session(parties=2, seed=0)
    with pytest.raises(ValueError, match=match) as per_input:
        s.input(np.array([1.5, -2.0]), frac_bits=frac)
    with pytest.raises(ValueError) as per_session:
        mpsim.Session(parties=2, frac_bits=frac)
    assert str(per_input.value) == str(per_session.value)  # one check, one message
    with pytest.raises(ValueError, match=match):
        mpsim.Session(parties=2, backend="count").placeholder((2, 2), frac_bits=frac)  # no values, same check
    x = s.input(np.array([1.5, -2.0]), frac_bits=20)  # a valid per-input scale: products at 2^40
    got = s.reveal(x * x)
    assert np.all((got - [2.25, 4.0] >= 0) & (got - [2.25, 4.0] <= 2.0**-20))  # floor or floor + 1 ULP


def test_input_owner_must_be_a_party_index_not_a_bool():
    s = mpsim.Session(parties=2, seed=0)
    with pytest.raises(ValueError, match=r"owner must be a party index in 0\.\.1, got True"):
        s.input(np.ones(2), owner=True)


# -- 3d: ties in the bitonic network -------------------------------------------------------------------------
MIXED = np.array([[3, 1, 3, 2, 1, 3, 2, 2], [2, 2, 1, 1, 3, 3, 0, 0], [0, 0, 0, 1, 1, 1, 1, 0]], dtype=np.float64)


@pytest.mark.parametrize("backend", ["share", "ideal"])
def test_sort_breaks_mixed_ties_to_the_lower_index(backend):
    """Expected: a stable descending argsort (ties to the lower index), as the max and shuffle methods (checked
    on the ideal backend) and the policies' plaintext twins do. Rows of 8 (a power of two) and 13 (padded),
    random rows with repeats."""
    rng = np.random.default_rng(7)
    cases = [(MIXED, (1, 2, 3, 4, 5, 6, 7, 8)),
             (rng.integers(0, 4, (6, 13)).astype(np.float64), (1, 3, 5, 8, 13)),
             (rng.integers(-2, 2, (4, 16)).astype(np.float64) / 4, (2, 7, 16))]
    s = mpsim.Session(parties=2, seed=3, backend=backend)
    others = ("max", "shuffle") if backend == "ideal" else ()
    for xv, ks in cases:
        order = np.argsort(-xv, axis=1, kind="stable")
        for k in ks:
            values, onehot, index = P.topk(s.input(xv), k, method="sort", return_index=True)
            got_i = s.reveal(index)
            np.testing.assert_array_equal(got_i, order[:, :k], err_msg=f"k={k}")
            np.testing.assert_array_equal(s.reveal(values), np.take_along_axis(xv, order[:, :k], axis=1))
            np.testing.assert_array_equal(s.reveal(onehot), np.eye(xv.shape[1], dtype=np.int64)[got_i])
            twins = [P.topk(s.input(xv), k, method=m, sorted=True, return_index=True)[2] for m in others]
            for twin in twins:
                np.testing.assert_array_equal(s.reveal(twin), got_i)


@pytest.mark.parametrize("method", ["max", "sort", "shuffle"])
@pytest.mark.parametrize("shape,k", [((3, 13), 5), ((2, 8), 8), ((3, 1), 1)])
def test_topk_declared_cost_stays_exact_with_ties_and_single_positions(method, shape, k):
    """The tie fix keeps sort's cost (one MSB and one two-element select per comparator, one rotation
    one-hot); rows of a single position need no one-hot round (sort and shuffle declared one)."""
    s = mpsim.Session(parties=2, seed=1, backend="ideal")
    x = s.input(np.zeros(shape))  # all ties
    mark = s.mark()
    P.topk(x, k, method=method)
    messages = s.ledger.messages[mark:]
    assert s.cost(since=mark) == REGISTRY["topk"].declared_for(s, x, k, method=method, messages=messages)


# -- 4e: == and != on secrets ---------------------------------------------------------------------------------
def test_comparison_operators_on_shared_tensors_raise_and_point_to_the_protocols():
    s = mpsim.Session(parties=2, seed=0)
    x = s.input(np.array([0.0, 1.0]))
    for call, fragment in [(lambda: x == 0.0, r"'==' .* protocols\.eq\(x, y\)"),
                           (lambda: 0.0 == x, r"'==' .* protocols\.eq\(x, y\)"),
                           (lambda: np.zeros(2) == x, r"'==' .* protocols\.eq\(x, y\)"),
                           (lambda: x != x, r"'!=' .* protocols\.not_\(protocols\.eq\(x, y\)\)"),
                           (lambda: x < 0, r"'<' .* protocols\.lt\(x, y\)"),
                           (lambda: x >= x, r"'>=' .* protocols\.ge\(x, y\)")]:
        with pytest.raises(TypeError, match=fragment):
            call()
    assert {x: 1}[x] == 1 and x in [x] and len({x, x}) == 1  # hashable and found by identity
    with pytest.raises(TypeError, match=r"'==' on a MaskedOperand"):
        s.reusable(s.input(np.ones((2, 2)))) == 0


# -- 4f: complex values ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["share", "count"])
def test_complex_input_and_operands_are_refused(backend):
    s = mpsim.Session(parties=2, seed=0, backend=backend)
    with pytest.raises(TypeError, match=r"input expects real values, got dtype complex128"):
        s.input(np.array([1 + 2j, 3.0]))
    with pytest.raises(TypeError, match=r"input expects real values"):
        s.input(1 + 0j)  # even without an imaginary part: the dtype is complex
    x = s.input(np.array([1.0, 2.0]))
    for call in (lambda: x + np.array([1j, 0]), lambda: x - 1j, lambda: x * (1 + 0j), lambda: np.array([2j, 1]) * x,
                 lambda: x @ np.ones((2, 2), complex), lambda: np.ones((2, 2), complex) @ x):
        with pytest.raises(TypeError, match=r"public operands must be real, got complex"):
            call()


# -- 4g: one-hot sizes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2.5, 0, -3, True, "4"])
def test_onehot_refuses_non_integer_and_non_positive_sizes(n):
    s = mpsim.Session(parties=2, seed=0)
    idx = s.input(np.array([0, 1]), frac_bits=0)
    fidx = s.input(np.array([0.0, 1.0]))
    for call in (lambda: P.onehot(idx, n), lambda: P.onehot(idx, n, method="equality"), lambda: P.onehot(fidx, n),
                 lambda: P.onehot_rotation(idx, n), lambda: P.onehot_equality(idx, n)):
        with pytest.raises(ValueError, match=rf"one-hot range n must be a positive integer \(positions 0\.\.n-1\), "
                                             rf"got {repr(n).replace('.', '[.]')}"):
            call()
    with pytest.raises(ValueError, match=r"scatter range n must be a positive integer"):
        P.scatter_rotated(s.input(np.ones((2, 3))), idx, n)


# -- 4h: a public condition ------------------------------------------------------------------------------------
def test_where_with_a_public_condition_is_a_clear_type_error():
    """A public condition selects locally (no protocol): the error says how, and that way is exact."""
    s = mpsim.Session(parties=2, seed=0)
    a, b = s.input(np.array([1.5, -2.0, 3.0])), s.input(np.array([0.25, 4.0, -1.0]))
    c = np.array([1, 0, 1])
    with pytest.raises(TypeError, match=r"where takes a secret condition, got a public ndarray; .*b \+ \(a - b\) \* c"):
        P.where(c, a, b)
    with pytest.raises(TypeError, match=r"select takes a secret bit, got a public ndarray; .* y \* c"):
        P.select(c, a)
    with pytest.raises(TypeError, match=r"select multiplies a SharedTensor, got a public ndarray"):
        P.select(P.lt(a, b), np.ones(3))
    np.testing.assert_array_equal(s.reveal(b + (a - b) * c), [1.5, 4.0, 3.0])


# -- 4i: topk's k, axis and empty inputs -------------------------------------------------------------------------
@pytest.mark.parametrize("shape,k,kwargs,error,match", [
    ((0, 8), 2, {}, ValueError, r"topk of an empty tensor \(shape \(0, 8\)\): nothing to select"),
    ((0, 8), 2, {"method": "max"}, ValueError, r"topk of an empty tensor"),
    ((4, 0), 1, {}, ValueError, r"topk of an empty tensor \(shape \(4, 0\)\)"),
    ((2, 8), 0, {}, ValueError, r"k must be an integer in \[1, 8\], got 0"),
    ((2, 8), 9, {}, ValueError, r"k must be an integer in \[1, 8\], got 9"),
    ((2, 8), 2.5, {}, ValueError, r"k must be an integer in \[1, 8\], got 2\.5"),
    ((2, 8), True, {}, ValueError, r"k must be an integer in \[1, 8\], got True"),
    ((2, 8), 2, {"axis": 1.5}, ValueError, r"topk: axis must be an integer in \[-2, 1\] for shape \(2, 8\), got 1\.5"),
    ((2, 8), 2, {"axis": 2}, ValueError, r"topk: axis must be an integer in \[-2, 1\]"),
    ((), 1, {}, ValueError, r"topk needs a tensor with at least one axis, got a 0-d one"),
])
def test_topk_refuses_empty_inputs_bad_k_and_bad_axes(shape, k, kwargs, error, match):
    s = mpsim.Session(parties=2, seed=0)
    with pytest.raises(error, match=match):
        P.topk(s.input(np.zeros(shape)), k, **kwargs)


@pytest.mark.parametrize("method", ["max", "sort", "shuffle"])
def test_topk_methods_called_directly_check_their_arguments(method):
    s = mpsim.Session(parties=2, seed=0)
    fn = {"max": P.topk_max, "sort": P.topk_sort, "shuffle": P.topk_shuffle}[method]
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\], got 0"):
        fn(s.input(np.zeros((2, 4))), 0)
    with pytest.raises(ValueError, match=rf"topk_{method} takes a non-empty \(rows, n\) tensor, got shape \(4,\)"):
        fn(s.input(np.zeros(4)), 2)


def test_reductions_and_softmax_refuse_non_integer_axes():
    s = mpsim.Session(parties=2, seed=0)
    x = s.input(np.zeros((2, 3)))
    for fn in (P.max, P.min, P.argmax, P.argmin):
        with pytest.raises(ValueError, match=r"a reduction: axis must be an integer in \[-2, 1\] .* got 1\.5"):
            fn(x, axis=1.5)
        with pytest.raises(ValueError, match=r"a reduction needs a tensor with at least one axis"):
            fn(s.input(np.float64(1.0)))
    with pytest.raises(ValueError, match=r"axis must be an integer in \[-2, 1\], got 1\.5"):
        P.softmax(x, axis=1.5)


# -- 4j: truncation shifts -------------------------------------------------------------------------------------
def test_truncation_shifts_are_validated():
    s = mpsim.Session(parties=2, seed=0)
    x = s.input(np.array([1.5, -2.25]))  # scale 2^16
    cases = [(lambda: P.trunc_pr(x, 70), r"trunc_pr: the shift must be an integer in \[0, 62\] for a 64-bit ring, got 70"),
             (lambda: P.trunc_pr(x, -1), r"trunc_pr: the shift must be an integer in \[0, 62\] .* got -1"),
             (lambda: P.trunc_pr(x, 2.5), r"trunc_pr: the shift must be an integer .* got 2\.5"),
             (lambda: P.trunc_local(x, 70), r"trunc_local: the shift must be an integer in \[0, 63\] .* got 70"),
             (lambda: P.truncate(x, 2.5), r"truncate: the shift must be an integer in \[0, 62\] .* got 2\.5"),
             (lambda: P.trunc_pr(x, 17), r"trunc_pr: cannot shift a tensor at scale 2\^16 by 17 bits .* \[0, 16\]"),
             (lambda: P.trunc_local(x, 17), r"trunc_local: cannot shift a tensor at scale 2\^16 by 17 bits")]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    for y in (P.trunc_pr(x, 0), P.trunc_local(x, 0), P.truncate(x, 0)):
        np.testing.assert_array_equal(s.reveal(y), [1.5, -2.25])
    y = P.trunc_pr(x, 16)
    assert y.frac == 0 and set(s.reveal(y)) <= {1, 2, -3, -2}  # floor or floor + 1 of 1.5 and -2.25


# -- 4k, 4l: the command line ----------------------------------------------------------------------------------
def _cli(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_refuses_unwritable_output_files_in_one_line(tmp_path, capsys):
    cases = [
        (["op", "softmax", "--shape", "4x8", "--save", "/no/such/dir/x.json"],
         "mpsim op: error: --save /no/such/dir/x.json: '/no/such/dir' is not a directory (create it first)"),
        (["op", "softmax", "--shape", "4x8", "--save", str(tmp_path)],
         f"mpsim op: error: --save {tmp_path}: is a directory; give a file name"),
        (["op", "max", "--shape", "2xN", "--sweep", "N=4,8", "--plot", "/no/such/dir/x.png"],
         "mpsim op: error: --plot /no/such/dir/x.png: '/no/such/dir' is not a directory (create it first)"),
        (["op", "max", "--shape", "2x8", "--plot", str(tmp_path / "x.png")],
         "mpsim op: error: --plot draws the curve of a sweep: add --sweep VAR=V1,V2,... (e.g. N=128,256,512)"),
        (["sweep", "--model", "gpt2", "--seq", "64", "--plot", "/no/such/dir/x.png"],
         "mpsim sweep: error: --plot /no/such/dir/x.png: '/no/such/dir' is not a directory (create it first)"),
    ]
    for argv, message in cases:
        code, out, err = _cli(argv, capsys)
        assert (code, out, err) == (2, "", message + "\n"), argv
    assert not (tmp_path / "x.png").exists()


def test_cli_write_failures_after_the_run_are_one_line_errors(tmp_path):
    """A file that cannot be written when the report is ready (permissions, a directory removed meanwhile)."""
    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    with pytest.raises(ValueError, match=r"^--save /x/y\.json: cannot write: Permission denied$"):
        cli._write_output("/x/y.json", refuse, "--save")
    target = tmp_path / "ok.json"
    cli._write_output(str(target), lambda path: Path(path).write_text("{}"), "--save")
    assert target.read_text() == "{}"


def test_python_dash_m_mpsim_behaves_like_the_script(capsys):
    for argv in (["table"], ["profiles", "--json"], ["op", "softmax", "--shape", "4x8", "--save", "/no/such/x.json"],
                 []):
        proc = subprocess.run([sys.executable, "-m", "mpsim", *argv], capture_output=True, text=True, cwd=ROOT)
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        out = capsys.readouterr()
        assert (proc.returncode, proc.stdout, proc.stderr) == (code, out.out, out.err), argv
        if code:
            assert code == 2 and _one_line(proc.stderr), argv
