"""The genetic program's operators, each defined once as data.

An operator's meaning is a small expression over its arguments (``a``, ``b``)
built from a handful of IEEE primitives: arithmetic, ``abs``, ``tanh``,
``log``, ``sqrt`` and a comparison-select. From that one definition this
module renders

* Python source over an array module (``numpy`` or ``jax.numpy``), used by
  the genetic program, the exported Python function and the JAX scorer;
* Rust source (``fn pdiv(a: f64, b: f64) -> f64``), used by the detector.

Because every backend executes the same IEEE operations in the same order,
they agree to the last bit except inside ``tanh``/``log``/``sqrt``, where the
math libraries differ by at most an ulp. The protected operators give finite,
documented values where the plain ones would not:

* ``pdiv(a, b) = a / b`` if ``|b| > EPS`` else ``1``;
* ``plog(a) = log(|a|)`` if ``|a| > EPS`` else ``0``;
* ``psqrt(a) = sqrt(|a|)``.

``min``/``max`` are selects (``a if a < b else b``), not ``fmin``/``fmax``, so
NaN handling is identical everywhere. Guards are written as a double select
(the division's denominator is itself replaced) so JAX gradients stay finite.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# The protection threshold of pdiv and plog.
EPS = 1e-6

# An expression is a nested tuple: ("arg", i), ("const", value) or
# (primitive, *children) with a primitive from _PRIMITIVE_ARITY.
Expr = tuple
_PRIMITIVE_ARITY = {
    "add": 2, "sub": 2, "mul": 2, "div": 2, "neg": 1, "abs": 1,
    "tanh": 1, "log": 1, "sqrt": 1,
    # select_gt(x, y, then, else) is `then if x > y else else`.
    "select_gt": 4,
}

A, B = ("arg", 0), ("arg", 1)
ONE, ZERO = ("const", 1.0), ("const", 0.0)


def _above_eps(x: Expr) -> tuple[Expr, Expr]:
    """The guard ``|x| > EPS`` as (left, right) of a select_gt."""
    return ("abs", x), ("const", EPS)


def _pdiv_body() -> Expr:
    guard = _above_eps(B)
    safe_b = ("select_gt", *guard, B, ONE)
    return ("select_gt", *guard, ("div", A, safe_b), ONE)


def _plog_body() -> Expr:
    guard = _above_eps(A)
    safe_a = ("select_gt", *guard, ("abs", A), ONE)
    return ("select_gt", *guard, ("log", safe_a), ZERO)


@dataclass(frozen=True)
class Operator:
    """One primitive of the genetic program.

    Attributes:
        name: the function name in every backend (``pdiv``, ``tanh``...).
        arity: number of arguments.
        body: the meaning, an expression over ``("arg", i)``.
        symbol: infix symbol for text output, or "" for a function call.
    """

    name: str
    arity: int
    body: Expr
    symbol: str = ""


OPERATORS: Mapping[str, Operator] = {op.name: op for op in (
    Operator("add", 2, ("add", A, B), "+"),
    Operator("sub", 2, ("sub", A, B), "-"),
    Operator("mul", 2, ("mul", A, B), "*"),
    Operator("pdiv", 2, _pdiv_body()),
    Operator("neg", 1, ("neg", A)),
    Operator("tanh", 1, ("tanh", A)),
    Operator("plog", 1, _plog_body()),
    Operator("psqrt", 1, ("sqrt", ("abs", A))),
    # min/max as selects: identical NaN behaviour in every backend.
    Operator("min", 2, ("select_gt", B, A, A, B)),
    Operator("max", 2, ("select_gt", A, B, A, B)),
)}


def _check(expr: Expr, arity: int) -> None:
    kind = expr[0]
    if kind == "arg":
        if not 0 <= expr[1] < arity:
            raise ValueError(f"argument {expr[1]} out of range for arity {arity}")
    elif kind == "const":
        float(expr[1])
    elif _PRIMITIVE_ARITY.get(kind) != len(expr) - 1:
        raise ValueError(f"unknown primitive or wrong arity: {expr!r}")
    else:
        for child in expr[1:]:
            _check(child, arity)


for _operator in OPERATORS.values():
    _check(_operator.body, _operator.arity)


def float_literal(value: float) -> str:
    """A float as 17 significant digits, valid in Python and Rust.

    17 digits round-trip every f64 exactly; the exponent form is never an
    integer literal. Negative values are parenthesised so they can follow a
    binary operator.

    Raises:
        ValueError: for NaN or infinity, which have no literal.
    """
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"cannot write {value!r} as a float literal")
    text = f"{value:.16e}"
    return f"({text})" if text.startswith("-") else text


# ----------------------------------------------------------------- Python


_PYTHON_TEMPLATES = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})",
    "div": "({0} / {1})", "neg": "(-{0})", "abs": "xp.abs({0})",
    "tanh": "xp.tanh({0})", "log": "xp.log({0})", "sqrt": "xp.sqrt({0})",
    "select_gt": "xp.where({0} > {1}, {2}, {3})",
}


def _render_python(expr: Expr, names: tuple[str, ...]) -> str:
    kind = expr[0]
    if kind == "arg":
        return names[expr[1]]
    if kind == "const":
        return float_literal(expr[1])
    return _PYTHON_TEMPLATES[kind].format(
        *(_render_python(child, names) for child in expr[1:]))


def python_source(operator: Operator) -> str:
    """``def name(a, b): return ...`` over an array module called ``xp``."""
    names = ("a", "b")[: operator.arity]
    body = _render_python(operator.body, names)
    return f"def {operator.name}({', '.join(names)}):\n    return {body}\n"


def python_prelude() -> str:
    """Python source defining every operator over ``xp``."""
    return "\n\n".join(python_source(op) for op in OPERATORS.values())


def make_functions(xp: types.ModuleType) -> dict[str, Callable[..., Any]]:
    """Every operator as a Python function over array module ``xp``.

    Args:
        xp: ``numpy`` or ``jax.numpy``.

    Returns:
        name -> function of ``arity`` arrays (broadcasting).
    """
    namespace: dict[str, Any] = {"xp": xp}
    exec(compile(python_prelude(), "<sentinel_jax.symbolic.operators>",
                 "exec"), namespace)
    return {name: namespace[name] for name in OPERATORS}


NUMPY_FUNCTIONS = make_functions(np)


def jax_functions() -> dict[str, Callable[..., Any]]:
    """Every operator over ``jax.numpy`` (imported on first use)."""
    import jax.numpy as jnp

    return make_functions(jnp)


# ------------------------------------------------------------------- Rust


_RUST_TEMPLATES = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})",
    "div": "({0} / {1})", "neg": "(-{0})", "abs": "{0}.abs()",
    "tanh": "{0}.tanh()", "log": "{0}.ln()", "sqrt": "{0}.sqrt()",
    "select_gt": "(if {0} > {1} {{ {2} }} else {{ {3} }})",
}


def _render_rust(expr: Expr, names: tuple[str, ...]) -> str:
    kind = expr[0]
    if kind == "arg":
        return names[expr[1]]
    if kind == "const":
        return float_literal(expr[1])
    return _RUST_TEMPLATES[kind].format(
        *(_render_rust(child, names) for child in expr[1:]))


def rust_source(operator: Operator) -> str:
    """``fn name(a: f64, b: f64) -> f64 { ... }``."""
    names = ("a", "b")[: operator.arity]
    params = ", ".join(f"{name}: f64" for name in names)
    body = _render_rust(operator.body, names)
    return (f"#[inline(always)]\n#[allow(dead_code, unused_parens)]\n"
            f"pub fn {operator.name}({params}) -> f64 {{\n    {body}\n}}\n")


def rust_prelude() -> str:
    """Rust source defining every operator."""
    return "\n".join(rust_source(op) for op in OPERATORS.values())
