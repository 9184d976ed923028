"""Writing your own protocol: ``assert_declared``, the ``mpc_session`` grid, re-registering a protocol (a
notebook cell run again), protocol plugins (the ``mpsim.protocols`` entry points) and the ``mpsim op``
catalogue read from the registry."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import mpsim
import protocols as P
from mpsim.cli import main
from mpsim.cli.ops import OPS, _ops, registered_ops, run_op
from mpsim.testing import BACKENDS, assert_declared, check_mpc_config, parse_mpc_configs
from protocols.registry import (CELLS, PLUGINS, REGISTRY, PluginError, ProtocolRedefinedWarning, call,
                                declarations, load_plugins, markdown_table, protocol)

HERE = Path(__file__).resolve().parent

# An out-of-tree protocol, as a plugin package ships it: x^3 on the ring (scale 3f), composed from the
# scheme's ring square and ring product, for the additive and ABY3 schemes.
PLUGIN = '''
"""A protocol plugin of the author-kit tests: importing it registers kit_cube."""
import numpy as np

from mpsim import SharedTensor
from protocols.registry import call, protocol


def _example(session):
    return (session.input(np.linspace(-1.5, 1.5, 12).reshape(3, 4)),), {}


@protocol("kit_cube", scheme=("additive", "aby3"), cost=lambda d: d.ring_square + d.ring_mul.at(nx="n", ny="n"),
          dims=lambda x: {"n": x.size}, example=_example, ref="tests/test_author_kit.py", vars_doc="n = elements")
def kit_cube(x: SharedTensor) -> SharedTensor:
    """x^3 on the ring: output scale 3 x.frac, no truncation.

    Steps:
      1. s = x^2 (the scheme's ring square).
      2. c = s x (the scheme's ring product).
    Rounds: 2. Comm: a ring square and a ring product of n elements. Leaks: nothing beyond the output.
    Ref: tests/test_author_kit.py.
    """
    return call("ring_mul", call("ring_square", x), x)
'''


@pytest.fixture
def own_registry():
    """The registry and the loaded-plugin record as they were before the test, afterwards: what a test
    registers must not reach the other tests' tables (docs/complexity.md, test_costs' grid)."""
    saved = dict(CELLS), dict(REGISTRY), dict(PLUGINS)
    yield
    for table, before in zip((CELLS, REGISTRY, PLUGINS), saved):
        table.clear()
        table.update(before)
    for module in [m for m in sys.modules if m.startswith("kit_")]:
        del sys.modules[module]


def _install(root: Path, module: str, source: str) -> None:
    """A fake installed distribution in ``root``: the module and a dist-info declaring it a protocol plugin."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{module.replace('_', '-')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[mpsim.protocols]\n{module.removeprefix('kit_')} = {module}\n")


@pytest.fixture
def plugin(tmp_path, monkeypatch, own_registry):
    """The kit_cube plugin installed (its distribution on sys.path, where importlib.metadata finds it)."""
    _install(tmp_path, "kit_plugin", PLUGIN)
    monkeypatch.syspath_prepend(tmp_path)
    return tmp_path


# -- assert_declared -------------------------------------------------------------------------------------------

def test_assert_declared_runs_every_scheme_and_configuration_a_protocol_runs_with():
    additive = {("additive", n, k, b) for n in (2, 3, 4) for k in (32, 64) for b in BACKENDS}
    aby3 = {("aby3", 3, k, b) for k in (32, 64) for b in BACKENDS}  # replicated sharing: three parties only
    fss = {("fss", 2, k, b) for k in (32, 64) for b in BACKENDS}  # two-party keys
    costs = assert_declared(P.relu)  # the function written once over the primitives: its own cells
    assert set(costs) == additive | aby3
    assert costs[("additive", 2, 64, "share")].rounds == 8  # msb (7 rounds), then the selection (1)
    by_name = assert_declared("relu")  # every cell named relu: the FSS suite's spline gate too
    assert set(by_name) == additive | aby3 | fss and by_name[("fss", 2, 64, "share")].rounds == 1
    assert set(assert_declared("trunc_local")) == {("additive", 2, k, b) for k in (32, 64) for b in BACKENDS}


def test_assert_declared_takes_a_name_a_cell_or_the_function_and_explicit_configurations():
    by_name = assert_declared("beaver_mul", [(3, 32, "count")])
    by_cell = assert_declared(REGISTRY["beaver_mul"], [(3, 32, "count")])
    declared = REGISTRY["beaver_mul"].declared(32, 3, nx=12, ny=12, n=12)  # the example's two 3x4 operands
    assert by_name == by_cell == {("additive", 3, 32, "count"): declared}
    with pytest.raises(ValueError, match="no protocol named 'no_such_protocol' is registered"):
        assert_declared("no_such_protocol")
    with pytest.raises(TypeError, match="registered with @protocol"):
        assert_declared(len)
    with pytest.raises(ValueError, match=r"no cell in the fss scheme; it has \['additive'\]"):
        assert_declared(P.beaver_mul, scheme="fss")
    with pytest.raises(ValueError, match="backend must be one of"):
        assert_declared(P.beaver_mul, [(2, 64, "gpu")])


def test_assert_declared_says_which_quantity_differs(own_registry):
    @protocol("kit_wrong", rounds="2", comm="K*n", offline="K*n", dims=lambda x: {"n": x.size},
              example=lambda s: ((s.input(np.ones(3)),), {}))
    def kit_wrong(x: mpsim.SharedTensor) -> mpsim.SharedTensor:
        """A Beaver square declared with a wrong round count and a wrong bits-per-party formula."""
        return call("ring_square", x)

    # the square sends K(N-1)n bits per party in 1 round; its K n offline bits are declared right
    with pytest.raises(AssertionError) as failure:
        assert_declared(kit_wrong, [(3, 64, "share")])
    message = str(failure.value)
    assert message.startswith("kit_wrong (additive scheme, N=3, K=64, share backend): ")
    assert "rounds: declared 2, measured 1" in message and "channel calls: declared 2, measured 1" in message
    assert "bits sent per party: declared (192, 192, 192), measured (384, 384, 384)" in message
    assert "offline" not in message


def test_assert_declared_catches_a_ledger_that_depends_on_the_backend(own_registry):
    @protocol("kit_leaky", rounds="1", comm="K*(N-1)*n", offline="0", dims=lambda x: {"n": x.size},
              example=lambda s: ((s.input(np.ones(3)),), {}))
    def kit_leaky(x: mpsim.SharedTensor) -> mpsim.SharedTensor:
        """Opens x under a label that depends on the backend: same cost, different messages."""
        session = x.session
        session.scheme.open(session, "open" if session.backend.name == "share" else "open_elsewhere", [x])
        return x

    with pytest.raises(AssertionError, match=r"kit_leaky \(additive scheme, N=2, K=64\): the share and ideal "
                                             r"backends' ledgers differ"):
        assert_declared(kit_leaky, [(2, 64, backend) for backend in BACKENDS])


# -- the mpc_session grid --------------------------------------------------------------------------------------

@pytest.mark.mpc_configs((2, 32, "share"), (4, 32, "count"))
def test_the_marker_sets_parties_ring_and_backend(mpc_session):
    assert mpc_session.ring.bits == 32 and mpc_session.frac_bits == 8
    assert (mpc_session.parties, mpc_session.backend.name) in {(2, "share"), (4, "count")}
    x = mpc_session.input(np.linspace(-2, 2, 9))
    y = x * x
    # K = 32 truncates with the dealer (trunc="auto"): the square's round, then the truncation's
    assert mpc_session.trunc == "dealer" and mpc_session.cost().rounds == 2
    if mpc_session.backend.has_data:
        np.testing.assert_allclose(mpc_session.reveal(y), np.linspace(-2, 2, 9) ** 2, atol=2**-8)


def test_mpc_configs_values_are_parsed_and_checked():
    assert parse_mpc_configs("2:64:share, 4:32:count") == [(2, 64, "share"), (4, 32, "count")]
    for text, problem in [("2:64", "use PARTIES:RING_BITS:BACKEND"), ("two:64:share", "use PARTIES:RING_BITS"),
                          ("1:64:share", "parties must be an integer >= 2"),
                          ("2:48:share", "ring bits must be one of [32, 64]"),
                          ("2:64:gpu", "backend must be one of ['count', 'ideal', 'share']")]:
        with pytest.raises(ValueError, match=re.escape(f"bad --mpc-configs entry '{text}': ") + ".*"
                           + re.escape(problem)):
            parse_mpc_configs(text)
    with pytest.raises(ValueError, match=re.escape("a configuration is (parties, ring_bits, backend), got (2, ")):
        check_mpc_config((2, "share"))


GRID_TESTS = '''
import pytest


def test_grid(mpc_session):
    pass


@pytest.mark.mpc_configs((3, 32, "ideal"))
def test_marked(mpc_session):
    pass
'''


def _collect(tmp_path, *options):
    """Collect GRID_TESTS in a fresh pytest (this suite's conftest loads the plugin in a source tree)."""
    (tmp_path / "test_grid.py").write_text(GRID_TESTS)
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text())
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *options], cwd=tmp_path, capture_output=True, text=True)


def _collected(out: str) -> list[str]:
    return [line.split("::")[1] for line in out.splitlines() if "::" in line]


def test_the_grid_defaults_and_the_command_line_option_and_the_marker_overrides_it(tmp_path):
    default = _collect(tmp_path)
    assert default.returncode == 0, default.stdout + default.stderr
    assert _collected(default.stdout) == ["test_grid[N2-K64-share]", "test_grid[N3-K64-share]",
                                          "test_grid[N2-K64-ideal]", "test_grid[N2-K64-count]",
                                          "test_marked[N3-K32-ideal]"]
    chosen = _collect(tmp_path, "--mpc-configs", "2:64:share,4:32:count")
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert _collected(chosen.stdout) == ["test_grid[N2-K64-share]", "test_grid[N4-K32-count]",
                                         "test_marked[N3-K32-ideal]"]


def test_a_malformed_option_value_is_a_usage_error(tmp_path):
    run = _collect(tmp_path, "--mpc-configs", "2:64:share,4:32")
    assert run.returncode == 4  # pytest's usage error
    assert "bad --mpc-configs entry '4:32': use PARTIES:RING_BITS:BACKEND, e.g. 2:64:share,4:32:count" in run.stderr


# -- re-registering --------------------------------------------------------------------------------------------

CELL = '''
from mpsim import SharedTensor
from protocols.cost import Formula
from protocols.registry import call, protocol


@protocol("kit_scaled", cost=COST, dims=lambda x: {"n": x.size}, scheme=SCHEMES,
          example=lambda s: ((s.input([1.5, -2.0]),), {}))
def kit_scaled(x: SharedTensor) -> SharedTensor:
    """DOC."""
    return BODY
'''
# Two versions of the cell: a free local product, then a ring square (1 round).
DOUBLING = {"COST": 'lambda d: Formula.of("0", "0")', "BODY": "x * 2", "DOC": "x times 2"}
SQUARING = {"COST": "lambda d: d.ring_square", "BODY": 'call("ring_square", x)', "DOC": "x squared on the ring"}


def _run_cell(namespace: dict, version: dict, schemes=("additive",)):
    """Run a notebook cell defining kit_scaled in ``namespace`` (the notebook's module globals)."""
    source = CELL.replace("SCHEMES", repr(schemes))
    for key, text in version.items():
        source = source.replace(key, text)
    exec(compile(source, "<notebook cell>", "exec"), namespace)
    return namespace["kit_scaled"]


def test_re_running_a_cell_replaces_the_protocol_everywhere(own_registry):
    notebook = {"__name__": "kit_notebook"}
    _run_cell(notebook, DOUBLING)

    @protocol("kit_through", cost=lambda d: d.kit_scaled, dims=lambda x: {"n": x.size},
              example=lambda s: ((s.input([1.5, -2.0]),), {}))
    def kit_through(x: mpsim.SharedTensor) -> mpsim.SharedTensor:
        """kit_scaled, reached through the registry as a composed protocol reaches its callees."""
        return call("kit_scaled", x)

    with pytest.warns(ProtocolRedefinedWarning, match="protocol 'kit_scaled' redefined by kit_notebook.kit_scaled"):
        new = _run_cell(notebook, SQUARING)
    assert REGISTRY["kit_scaled"] is CELLS[("additive", "kit_scaled")] is new.protocol
    rows = {(r["scheme"], r["protocol"]): r for r in declarations()}
    assert rows[("additive", "kit_scaled")]["rounds"] == rows[("additive", "kit_through")]["rounds"] == "1"
    assert "x squared on the ring" in OPS["kit_scaled"].doc
    assert_declared(kit_through, [(2, 64, "share"), (3, 32, "count")])  # composed from the replacement
    s = mpsim.Session(parties=2, seed=0)
    np.testing.assert_array_equal(s.reveal(kit_through(s.input([1.5, -2.0]))), [2.25, 4.0])


def test_a_redefinition_for_fewer_schemes_drops_the_old_cells(own_registry):
    notebook = {"__name__": "kit_notebook"}
    _run_cell(notebook, DOUBLING, schemes=("additive", "aby3"))
    assert ("aby3", "kit_scaled") in CELLS
    with pytest.warns(ProtocolRedefinedWarning, match="in the additive and aby3 schemes"):
        _run_cell(notebook, DOUBLING, schemes=("additive",))
    assert ("aby3", "kit_scaled") not in CELLS and ("additive", "kit_scaled") in CELLS


def test_another_function_of_the_same_name_is_still_refused(own_registry):
    original = _run_cell({"__name__": "kit_notebook"}, DOUBLING)
    with pytest.raises(ValueError, match=r"protocol 'kit_scaled' registered twice for the additive scheme \(by "
                                         r"kit_notebook.kit_scaled and by kit_other.kit_scaled\)"):
        _run_cell({"__name__": "kit_other"}, SQUARING)
    assert CELLS[("additive", "kit_scaled")] is original.protocol


# -- plugins ---------------------------------------------------------------------------------------------------

def test_an_installed_plugin_registers_its_protocols_once(plugin):
    assert "kit_cube" not in REGISTRY
    assert load_plugins() == {"plugin": "kit_plugin"}
    module = sys.modules["kit_plugin"]
    assert {s for (s, n) in CELLS if n == "kit_cube"} == {"additive", "aby3"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second import would re-register: ProtocolRedefinedWarning
        assert load_plugins() == {"plugin": "kit_plugin"}
    assert sys.modules["kit_plugin"] is module and CELLS[("additive", "kit_cube")] is module.kit_cube.protocol


def test_a_plugins_protocol_is_in_the_tables_and_runs_with_its_declared_cost(plugin):
    rows = {(r["scheme"], r["protocol"]): r for r in declarations()}  # loads the plugin
    assert rows[("additive", "kit_cube")]["rounds"] == "2"
    assert rows[("additive", "kit_cube")]["comm"] == "K * (N - 1) * n + K * (N - 1) * (n + n)"
    assert rows[("aby3", "kit_cube")]["comm"] == "K * n + K * n"
    assert "| `kit_cube` | 2 |" in markdown_table()
    costs = assert_declared(sys.modules["kit_plugin"].kit_cube)
    assert costs[("aby3", 3, 64, "share")].sent_bits == (2 * 64 * 12,) * 3


def test_mpsim_op_lists_and_runs_a_plugins_protocol(plugin, capsys):
    assert main(["op", "--list"]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert listed["kit_cube"] == "unary"
    assert main(["op", "kit_cube", "--shape", "3x4", "--parties", "3", "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    declared = CELLS[("additive", "kit_cube")].declared(64, 3, n=12)
    assert totals["rounds"] == declared.rounds == 2
    assert totals["sent_bytes"] == list(declared.sent) and totals["offline_bytes"] == declared.offline_bytes


def test_a_failing_plugin_is_reported_every_time(tmp_path, monkeypatch, own_registry, capsys):
    _install(tmp_path, "kit_broken", "raise RuntimeError('the plugin cannot start')\n")
    monkeypatch.syspath_prepend(tmp_path)
    for _ in range(2):  # not remembered as loaded: the next call reports it again
        with pytest.raises(PluginError, match=r"protocol plugin 'broken' = 'kit_broken' \(from distribution "
                                              r"'kit-broken'\) failed to load: RuntimeError: the plugin cannot start"):
            load_plugins()
    assert "broken" not in PLUGINS
    # the table would silently lack the plugin's protocols: the command refuses, in one line
    assert main(["table"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpsim table: error: protocol plugin 'broken'") and err.count("\n") == 1


def test_a_plugin_taking_a_registered_name_fails_clearly(tmp_path, monkeypatch, own_registry):
    _install(tmp_path, "kit_clash", PLUGIN.replace('"kit_cube"', '"relu"'))
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(PluginError, match=r"'clash' = 'kit_clash'.*ValueError: protocol 'relu' registered twice"):
        load_plugins()


# -- the op catalogue ------------------------------------------------------------------------------------------

def test_every_protocol_the_catalogue_finds_in_the_registry_runs_at_its_declared_cost():
    """Ops read off the registry (not hand-written): each runs on its scheme, inputs of its sharing kind, and
    costs (within its own scope) what its cell declares for those inputs."""
    found = {name: op for name, op in registered_ops().items() if name not in _ops()}
    assert {"beaver_square", "b2a_bit", "rep_mul", "shuffle"} <= set(found)
    shape = (2, 4, 3)  # the shuffle permutes axis 1 of (rows, m, w)
    for name, op in found.items():
        cell = next(c for (scheme, n), c in CELLS.items() if n == name)
        s = mpsim.Session(parties=3 if cell.scheme == "aby3" else 2, scheme=cell.scheme, backend="count", seed=0)
        run_op(s, name, shape)
        operand = P.share_bits(s, np.zeros(shape, np.int64)) if op.inputs.startswith("bool") else s.placeholder(shape)
        operands = (operand,) * (2 if op.inputs.endswith("binary") else 1)
        messages = [m for m in s.ledger.messages if name in m.scope.split("/")]
        assert s.cost(scope=f"/{name}") == cell.declared_for(s, *operands, messages=messages), name
