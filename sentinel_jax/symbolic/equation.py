"""A distilled equation: sympy expression over hist channels, and its renderings.

One printer writes the expression as source for Python (numpy or JAX) and for
Rust. Both dialects share the syntax of function calls and infix ``+``/``*``,
so the two sources differ only in how a channel is read (``h[:, 5]`` against
``h[5]``) and evaluate the same IEEE operations in the same order. Constants
are 17-digit float literals (exact round trip); there are no integer literals.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import chex
import numpy as np
import sympy

from sentinel_jax.symbolic.operators import float_literal, python_prelude
from sentinel_jax.symbolic.simplify import PROTECTED, count_nodes


def _print(expr: sympy.Expr, read: Callable[[int], str],
           channel_of: Mapping[sympy.Symbol, int]) -> str:
    """Source for ``expr``; ``read(channel)`` is how a channel is read."""

    def walk(node: sympy.Expr) -> str:
        if isinstance(node, sympy.Symbol):
            return read(channel_of[node])
        if node.is_Number:
            return float_literal(float(node))
        args = node.args
        if isinstance(node, sympy.Add):
            return "(" + " + ".join(map(walk, args)) + ")"
        if isinstance(node, sympy.Mul):
            if args[0] == -1:
                rest = sympy.Mul(*args[1:], evaluate=False)
                return f"(-{walk(rest)})"
            return "(" + " * ".join(map(walk, args)) + ")"
        if isinstance(node, sympy.Pow):
            exponent = node.exp
            if exponent.is_Integer and 1 <= int(exponent) <= 16:
                base = walk(node.base)
                return "(" + " * ".join([base] * int(exponent)) + ")"
            raise ValueError(f"cannot print power {node}: only small positive "
                             f"integer exponents arise from the operators")
        if isinstance(node, sympy.Min | sympy.Max):
            name = "min" if isinstance(node, sympy.Min) else "max"
            text = walk(args[-1])
            for arg in reversed(args[:-1]):
                text = f"{name}({walk(arg)}, {text})"
            return text
        if isinstance(node, sympy.tanh):
            return f"tanh({walk(args[0])})"
        name = type(node).__name__
        if name in PROTECTED:
            return f"{name}({', '.join(map(walk, args))})"
        raise ValueError(f"cannot print {type(node).__name__} in {expr}")

    return walk(expr)


@dataclass(frozen=True)
class Equation:
    """An equation scoring windows from their hist.

    Attributes:
        expression: sympy expression over the symbols in ``channel_of``.
        channel_of: symbol -> hist channel it reads.
    """

    expression: sympy.Expr
    channel_of: Mapping[sympy.Symbol, int]

    @property
    def nodes(self) -> int:
        """Node count (binary operators, see ``count_nodes``)."""
        return count_nodes(self.expression)

    @property
    def channels(self) -> list[int]:
        """Hist channels the equation reads, ascending."""
        return sorted({self.channel_of[s] for s in self.expression.free_symbols})

    def text(self) -> str:
        """The equation as plain text (sympy's notation)."""
        return str(self.expression)

    def latex(self) -> str:
        """The equation as LaTeX."""
        return sympy.latex(self.expression)

    def python_expression(self) -> str:
        """Expression over ``h`` (``[batch, channels]``) and the operators."""
        text = _print(self.expression, lambda c: f"h[:, {c}]", self.channel_of)
        if not self.expression.free_symbols:
            # A constant must still give one score per window.
            text = f"({text} + xp.zeros(h.shape[0]))"
        return text

    def rust_expression(self) -> str:
        """Expression over ``h: &[f64]`` and the Rust operators."""
        return _print(self.expression, lambda c: f"h[{c}]", self.channel_of)

    def python_source(self) -> str:
        """A self-contained Python module defining ``score(h)`` (numpy)."""
        return (
            '"""Distilled window scorer: score(h), h is float [batch, '
            'channels]."""\n\nimport numpy as xp\n\n\n'
            f"{python_prelude()}\n\n"
            "def score(h):\n"
            f'    """{self.text()}"""\n'
            "    h = xp.asarray(h, dtype=xp.float64)\n"
            f"    return {self.python_expression()}\n")

    def function(self, xp: types.ModuleType = np) -> Callable[[Any], Any]:
        """``score(h)`` over array module ``xp`` (numpy or jax.numpy).

        With JAX, enable 64-bit floats to match numpy and Rust to 1e-9.
        """
        namespace: dict[str, Any] = {"xp": xp}
        exec(compile(python_prelude(), "<operators>", "exec"), namespace)
        body = f"lambda h: {self.python_expression()}"
        return eval(compile(body, "<equation>", "eval"), namespace)

    def score(self, hist: np.ndarray) -> np.ndarray:
        """Scores of windows, ``float64 [batch]``.

        Args:
            hist: ``float [batch, channels]``; float32 hist is widened exactly.
        """
        chex.assert_rank(hist, 2)
        if self.channel_of and hist.shape[1] <= max(self.channel_of.values()):
            raise ValueError(f"hist has {hist.shape[1]} channels; the equation "
                             f"reads channel {max(self.channel_of.values())}")
        with np.errstate(all="ignore"):
            return np.asarray(self.function(np)(hist.astype(np.float64)),
                              dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """Text, LaTeX, srepr and the symbol -> channel map."""
        return {"text": self.text(), "latex": self.latex(),
                "srepr": sympy.srepr(self.expression),
                "channels": {str(s): c for s, c in self.channel_of.items()},
                "nodes": self.nodes}
