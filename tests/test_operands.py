"""The one place operands enter a protocol (``protocols.registry.check_operands``) refuses what cannot mix.

For every registered protocol and every shared operand of its example in turn, the same operand from another
session (another ring, or the same configuration: a session is not its configuration) must be refused with
a one-line error before anything is sent, and neither session's ledger charged.
"""
from __future__ import annotations

import numpy as np
import pytest

import mpsim
import protocols as P
from protocols.registry import REGISTRY, OperandError, _shared_operands

OTHERS = {"K32": dict(ring_bits=32, frac_bits=8), "same-config": dict(ring_bits=64, frac_bits=16)}


def _session(**options):
    return mpsim.Session(parties=2, seed=5, **options)


def _slots(args, kwargs):
    """Positions of shared operands: ("arg", i, j) / ("kw", key, j), j the member of a list argument or None."""
    slots = []
    for where, items in (("arg", enumerate(args)), ("kw", kwargs.items())):
        for key, value in items:
            if isinstance(value, (list, tuple)):
                slots += [(where, key, j) for j, v in enumerate(value) if getattr(v, "session", None) is not None]
            elif getattr(value, "session", None) is not None:
                slots.append((where, key, None))
    return slots


def _replace(args, kwargs, slot, foreign_args, foreign_kwargs):
    args, kwargs = list(args), dict(kwargs)
    where, key, j = slot
    home, away = (args, foreign_args) if where == "arg" else (kwargs, foreign_kwargs)
    if j is None:
        home[key] = away[key]
    else:
        home[key] = type(home[key])(away[key][m] if m == j else v for m, v in enumerate(home[key]))
    return args, kwargs


# ``input`` takes values and its one session: there is nothing to mix (the next test pins that down).
CASES = [(name, other) for name in sorted(REGISTRY) for other in OTHERS if REGISTRY[name].parties(2) and name != "input"]


def test_only_input_has_no_shared_operand():
    s = _session()
    without = {name for name in REGISTRY if REGISTRY[name].parties(2) and not _slots(*REGISTRY[name].example(s))}
    assert without == {"input"}


@pytest.mark.parametrize("name,other", CASES)
def test_an_operand_of_another_session_is_refused(name, other):
    """With two or more shared operands, each in turn from the other session: refused, nothing charged. With
    one, there is nothing to mix: the protocol runs in its operand's session and charges no other (no
    ambient session)."""
    entry = REGISTRY[name]
    home, away = _session(), _session(**OTHERS[other])
    args, kwargs = entry.example(home)
    foreign_args, foreign_kwargs = entry.example(away)
    slots = _slots(args, kwargs)
    marks = home.mark(), away.mark()
    if len(slots) == 1:
        entry.fn(*args, **kwargs)
        assert away.mark() == marks[1] and (home.mark() > marks[0] or entry.rounds == "0")
        return
    for slot in slots:
        mixed_args, mixed_kwargs = _replace(args, kwargs, slot, foreign_args, foreign_kwargs)
        with pytest.raises(OperandError, match="different sessions") as info:
            entry.fn(*mixed_args, **mixed_kwargs)
        assert "\n" not in str(info.value)
        assert (home.mark(), away.mark()) == marks, f"{name}: a ledger was charged before the refusal"


def test_the_issues_examples_are_refused():
    """Found by the audit: P.select, P.beaver_mul, P.beaver_matmul and P.gather took a K = 64 and a K = 32
    tensor and returned garbage, charging one ledger."""
    a, b = _session(), _session(ring_bits=32, frac_bits=8)
    x, y = a.input(np.ones((2, 3))), b.input(np.ones((2, 3)))
    bit = P.share_bits(b, np.array([[1, 0, 1], [0, 1, 1]]), width=1)
    idx = b.input(np.array([0, 2]), frac_bits=0)
    for call in (lambda: P.beaver_mul(x, y), lambda: P.beaver_matmul(x, y.T), lambda: P.select(bit, x),
                 lambda: P.gather(x.T, idx), lambda: P.where(bit, x, 1.0), lambda: P.softmax(x) * y):
        with pytest.raises(ValueError, match="different sessions"):
            call()


def test_a_sharing_of_the_wrong_kind_is_refused():
    s = _session()
    x = s.input(np.array([[1.0, -2.0], [3.0, 0.5]]))
    bits = P.share_bits(s, np.array([[1, 0], [0, 1]]), width=1)
    with pytest.raises(OperandError, match="boolean sharing, got an arithmetic one"):
        P.and_(x, bits)
    with pytest.raises(OperandError, match="must be an arithmetic sharing, got a boolean one"):
        P.beaver_mul(bits, x)
    with pytest.raises(OperandError, match="must be an arithmetic sharing, got a boolean one"):
        P.msb(bits)
    assert P.where(bits, x, 0.0).shape == (2, 2)  # where declares both kinds for its condition


def test_bad_arguments_are_a_one_line_type_error():
    s = _session()
    x = s.input(np.ones(3))
    with pytest.raises(TypeError, match="beaver_mul: missing a required argument"):
        P.beaver_mul(x)


def test_shared_operands_are_found_inside_lists():
    s = _session()
    x = s.input(np.ones(2))
    assert _shared_operands([x, 1.0, x]) == [x, x] and _shared_operands(x) == [x] and _shared_operands(2) == []
