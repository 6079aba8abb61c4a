"""DEAP trees -> sympy expressions, simplified, and counted.

The protected operators become sympy functions of the same name that sympy
treats as opaque (it must not rewrite ``pdiv(a, b)`` as ``a / b``: they differ
where ``|b| <= EPS``), but that fold to a number when all their arguments are
numbers. ``tanh``, ``min`` and ``max`` map to sympy's own ``tanh``, ``Min``
and ``Max``, and arithmetic to sympy arithmetic, so sympy can merge constants,
collect like terms and cancel.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import sympy
from deap import gp

from sentinel_jax.symbolic.gp import is_constant
from sentinel_jax.symbolic.operators import NUMPY_FUNCTIONS, OPERATORS

logger = logging.getLogger(__name__)

# Operators with no sympy equivalent: opaque functions named as in the spec.
PROTECTED = ("pdiv", "plog", "psqrt")


def _make_protected(name: str) -> type[sympy.Function]:
    numeric = NUMPY_FUNCTIONS[name]

    def eval_(cls, *args):
        if all(arg.is_Number for arg in args):
            value = float(numeric(*(np.float64(float(arg)) for arg in args)))
            return sympy.Float(value) if np.isfinite(value) else None
        return None

    def latex(self, printer):
        inner = ", ".join(printer._print(arg) for arg in self.args)
        return rf"\operatorname{{{name}}}\left({inner}\right)"

    return type(name, (sympy.Function,), {
        "nargs": OPERATORS[name].arity, "eval": classmethod(eval_),
        "_latex": latex, "__module__": __name__})


SYMPY_PROTECTED: Mapping[str, type[sympy.Function]] = {
    name: _make_protected(name) for name in PROTECTED}

_SYMPY_OPERATORS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "neg": lambda a: -a,
    "tanh": sympy.tanh,
    "min": sympy.Min,
    "max": sympy.Max,
    **SYMPY_PROTECTED,
}


def tree_to_sympy(tree: gp.PrimitiveTree,
                  symbols: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    """The expression of ``tree``.

    Args:
        tree: a DEAP tree over the operators and arguments ``x<channel>``.
        symbols: argument name (``x5``) -> its sympy symbol.
    """
    stack: list[tuple[object, list[sympy.Expr]]] = []
    for node in tree:
        stack.append((node, []))
        while len(stack[-1][1]) == stack[-1][0].arity:
            node, args = stack.pop()
            if isinstance(node, gp.Primitive):
                value = _SYMPY_OPERATORS[node.name](*args)
            elif is_constant(node):
                value = sympy.Float(float(node.value))
            else:
                value = symbols[node.value]
            if not stack:
                return value
            stack[-1][1].append(value)
    raise ValueError(f"incomplete tree: {tree}")


def count_nodes(expr: sympy.Expr) -> int:
    """Nodes of ``expr`` written as a binary tree.

    An n-ary sum, product, min or max counts ``n - 1`` operators; ``-x``
    (a product with ``-1``) counts one; ``x**n`` counts as the power node,
    its base and its exponent.
    """
    if expr.is_Atom:
        return 1
    args = expr.args
    if isinstance(expr, sympy.Mul) and args[0] == -1:
        rest = args[1:]
        return 1 + sum(map(count_nodes, rest)) + len(rest) - 1
    if isinstance(expr, sympy.Pow):
        return 1 + count_nodes(expr.base) + 1
    if isinstance(expr, sympy.Add | sympy.Mul | sympy.Min | sympy.Max):
        return len(args) - 1 + sum(map(count_nodes, args))
    return 1 + sum(map(count_nodes, args))


def _expand_and_factor(expr: sympy.Expr) -> sympy.Expr:
    return sympy.factor_terms(sympy.expand(expr))


# Bounded rewrites only. sympy.simplify is not among them: its trigonometric
# pass can run for many minutes on sums of tanh terms (seen on a distilled
# ADFA-LD scorer), and distillation must finish.
_SIMPLIFIERS = (sympy.expand, sympy.factor_terms, _expand_and_factor)


def simplify_expression(expr: sympy.Expr) -> sympy.Expr:
    """The shortest of ``expr`` and a few bounded rewrites of it.

    Shortest by :func:`count_nodes`; ties keep the earlier (less rewritten)
    form. A rewrite that fails is skipped with a log line.
    """
    candidates = [expr]
    for simplifier in _SIMPLIFIERS:
        try:
            candidates.append(simplifier(expr))
        except Exception as error:  # sympy raises many types on odd input
            logger.info("sympy %s failed on %s: %s", simplifier.__name__, expr,
                        error)
    return min(candidates, key=count_nodes)
