"""Cost expressions: declared costs that compose, so a cheaper primitive makes its callers cheaper.

An :class:`Expr` is an arithmetic expression over the ring bits ``K``, the party count ``N``, the party
index ``p`` and shape variables, kept as a Python expression tree: it adds, multiplies, takes ``max`` and
substitutes variables (``e.at(n="R*n")``), prints with the fewest parentheses (``ast.unparse``) and
evaluates exactly in integers where the formula is integral. A :class:`Formula` is one protocol call's
declared cost, four expressions: ``rounds`` (critical-path depth), ``calls`` (sequential channel calls),
``comm`` (online bits sent by party ``p``) and ``offline`` (correlated-randomness bits). Composite protocols
build theirs from their callees' formulas: ``a + b`` runs b after a, ``a | b`` runs them side by side in the
same rounds (rounds: the larger; calls and bits add), ``a * k`` runs a k times one after another.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

NAMESPACE = {
    "__builtins__": {},
    "ceil": math.ceil,
    "floor": math.floor,
    "log2": math.log2,
    "min": min,
    "max": max,
    "int": int,
}


def _node(value) -> ast.expr:
    if isinstance(value, Expr):
        return value.tree
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a cost expression is built from ints, strings and Exprs, got {value!r}")
    if isinstance(value, int):
        return ast.Constant(value)
    return ast.parse(value, mode="eval").body


def _constant(node: ast.expr):
    return node.value if isinstance(node, ast.Constant) else None


class Expr:
    """An integer-valued cost expression (see the module docstring)."""

    __slots__ = ("tree",)

    def __init__(self, value="0"):
        self.tree = _node(value)

    # -- building --------------------------------------------------------------------------------------------
    @staticmethod
    def _binary(op, left, right) -> "Expr":
        a, b = _node(left), _node(right)
        ca, cb = _constant(a), _constant(b)
        if ca is not None and cb is not None:
            value = {ast.Add: ca + cb, ast.Sub: ca - cb, ast.Mult: ca * cb}.get(type(op))
            if value is not None:
                return Expr(int(value))
        if isinstance(op, ast.Add):
            if ca == 0:
                return Expr._wrap(b)
            if cb == 0:
                return Expr._wrap(a)
        if isinstance(op, ast.Sub) and cb == 0:
            return Expr._wrap(a)
        if isinstance(op, ast.Mult):
            if ca == 0 or cb == 0:
                return Expr(0)
            if ca == 1:
                return Expr._wrap(b)
            if cb == 1:
                return Expr._wrap(a)
        return Expr._wrap(ast.BinOp(a, op, b))

    @staticmethod
    def _wrap(tree: ast.expr) -> "Expr":
        e = Expr.__new__(Expr)
        e.tree = tree
        return e

    def __add__(self, other):
        return Expr._binary(ast.Add(), self, other)

    def __radd__(self, other):
        return Expr._binary(ast.Add(), other, self)

    def __sub__(self, other):
        return Expr._binary(ast.Sub(), self, other)

    def __rsub__(self, other):
        return Expr._binary(ast.Sub(), other, self)

    def __mul__(self, other):
        return Expr._binary(ast.Mult(), self, other)

    def __rmul__(self, other):
        return Expr._binary(ast.Mult(), other, self)

    @staticmethod
    def max(*terms) -> "Expr":
        nodes = [_node(t) for t in terms]
        constants = [_constant(n) for n in nodes]
        if all(c is not None for c in constants):
            return Expr(max(constants))
        distinct = []
        for n in nodes:
            if not any(ast.dump(n) == ast.dump(d) for d in distinct):
                distinct.append(n)
        if len(distinct) == 1:
            return Expr._wrap(distinct[0])
        return Expr._wrap(ast.Call(ast.Name("max", ast.Load()), distinct, []))

    def at(self, **values) -> "Expr":
        """This expression with variables replaced (``e.at(n="R*n")``: a callee's n in the caller's terms)."""
        replace = {name: _node(value) for name, value in values.items()}

        class Substitute(ast.NodeTransformer):
            def visit_Name(self, node):
                return replace.get(node.id, node)

        return Expr._wrap(Substitute().visit(ast.parse(ast.unparse(self.tree), mode="eval").body))

    # -- reading ---------------------------------------------------------------------------------------------
    def names(self) -> set[str]:
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)} - set(NAMESPACE)

    def evaluate(self, env: dict) -> int:
        value = eval(compile(ast.Expression(ast.fix_missing_locations(self.tree)), "<cost>", "eval"),
                     dict(NAMESPACE), dict(env))
        if value != int(value):
            raise ValueError(f"cost expression {self} gave non-integer {value}")
        return int(value)

    def __str__(self) -> str:
        return ast.unparse(self.tree)

    def __repr__(self) -> str:
        return f"Expr({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Expr) and ast.dump(self.tree) == ast.dump(other.tree)

    def __hash__(self):
        return hash(ast.dump(self.tree))


def expr(value) -> Expr:
    return value if isinstance(value, Expr) else Expr(value)


@dataclass(frozen=True)
class Formula:
    """One call's declared cost as expressions (see the module docstring). ``offline`` is what a dealer ships
    to party 0; ``shipped`` what party ``p`` receives besides (correlations made by the parties, or a
    dealer's keys that every party needs)."""

    rounds: Expr
    comm: Expr
    offline: Expr
    calls: Expr
    shipped: Expr = field(default_factory=Expr)

    @classmethod
    def of(cls, rounds="0", comm="0", offline="0", calls=None, shipped="0") -> "Formula":
        rounds = expr(rounds)
        return cls(rounds, expr(comm), expr(offline), rounds if calls is None else expr(calls), expr(shipped))

    def __add__(self, other: "Formula") -> "Formula":
        return Formula(self.rounds + other.rounds, self.comm + other.comm, self.offline + other.offline,
                       self.calls + other.calls, self.shipped + other.shipped)

    def __or__(self, other: "Formula") -> "Formula":
        """Side by side in the same rounds, in channel calls of their own (so calls add)."""
        return Formula(Expr.max(self.rounds, other.rounds), self.comm + other.comm, self.offline + other.offline,
                       self.calls + other.calls, self.shipped + other.shipped)

    def __mul__(self, times) -> "Formula":
        return Formula(self.rounds * times, self.comm * times, self.offline * times, self.calls * times,
                       self.shipped * times)

    __rmul__ = __mul__

    def levels(self, count) -> "Formula":
        """The same work spread over ``count`` sequential levels: rounds and calls times ``count``, bits as
        they are (a tournament whose per-element cost is this formula over all its pairs)."""
        return Formula(self.rounds * count, self.comm, self.offline, self.calls * count, self.shipped)

    def at(self, **values) -> "Formula":
        return Formula(self.rounds.at(**values), self.comm.at(**values), self.offline.at(**values),
                       self.calls.at(**values), self.shipped.at(**values))

    def names(self) -> set[str]:
        return set().union(*(e.names() for e in (self.rounds, self.comm, self.offline, self.calls, self.shipped)))


ZERO = Formula.of()
