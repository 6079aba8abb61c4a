"""Genetic programming, constant fitting, Pareto choice and sympy output."""

import numpy as np
import pytest
import sympy

from sentinel_jax.symbolic import NeuralToSymbolic
from sentinel_jax.symbolic.equation import Equation
from sentinel_jax.symbolic.fitting import fit_linear, r2_score, refine_constants
from sentinel_jax.symbolic.gp import GPSettings, evolve
from sentinel_jax.symbolic.pareto import FrontEntry, ParetoArchive, choose
from sentinel_jax.symbolic.simplify import (
    SYMPY_PROTECTED,
    count_nodes,
    simplify_expression,
)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    hist = rng.uniform(0.0, 1.0, size=(1500, 10)).astype(np.float32)
    target = hist[:, 3].astype(np.float64) * hist[:, 7] - 0.5
    return hist, target


def test_recovers_planted_formula(planted):
    hist, target = planted
    compressor = NeuralToSymbolic(max_complexity=15, population=60,
                                  generations=15, seed=3)
    compressed = compressor.compress_model(
        lambda h: h[:, 3].astype(np.float64) * h[:, 7] - 0.5, hist)
    equation = compressed.equation
    assert r2_score(equation.score(hist), target) > 0.99
    assert equation.channels == [3, 7]
    assert compressed.heldout_r2 > 0.99
    assert all(entry["complexity"] <= 15 for entry in compressed.front)


def test_same_seed_same_front(planted):
    hist, target = planted
    settings = GPSettings(population=30, generations=4, seed=11)
    first = evolve(hist, target, list(range(10)), settings)
    second = evolve(hist, target, list(range(10)), settings)
    assert [str(e.expression) for e in first.front] == [
        str(e.expression) for e in second.front]
    assert first.best_error == second.best_error


def test_process_pool_matches_single_process(planted):
    hist, target = planted
    single = evolve(hist, target, list(range(10)),
                    GPSettings(population=30, generations=3, seed=5))
    pooled = evolve(hist, target, list(range(10)),
                    GPSettings(population=30, generations=3, seed=5, processes=2))
    assert [e.error for e in single.front] == [e.error for e in pooled.front]


def test_front_respects_limits_and_improves(planted):
    hist, target = planted
    result = evolve(hist, target, list(range(10)),
                    GPSettings(population=40, generations=6, seed=2,
                               max_complexity=9, max_height=4))
    complexities = [e.complexity for e in result.front]
    errors = [e.error for e in result.front]
    assert complexities == sorted(complexities) and max(complexities) <= 9
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
    assert all(tree.height <= 4 for tree in (e.expression for e in result.front))
    assert np.all(np.diff(result.best_error) <= 1e-12)  # elitism: never worse


def test_fit_linear_is_exact_for_affine_targets():
    x = np.linspace(-1.0, 2.0, 50)
    fit = fit_linear(x, 3.0 * x - 2.0)
    assert fit.scale == pytest.approx(3.0) and fit.offset == pytest.approx(-2.0)
    assert fit.error < 1e-20
    assert fit_linear(np.ones(50), x).error == 1.0  # constant: no information
    assert fit_linear(np.full(50, np.nan), x).error == 1.0


def test_refine_constants_finds_inner_constant():
    x = np.linspace(-1.0, 1.0, 200)
    target = np.tanh(2.5 * x)
    constants, fit = refine_constants(lambda c: np.tanh(c[0] * x),
                                      np.array([1.0]), target, steps=30)
    assert constants[0] == pytest.approx(2.5, rel=1e-4)
    assert fit.error < 1e-8


def test_archive_front_and_choice_rule():
    archive = ParetoArchive()
    for complexity, error in [(1, 0.5), (3, 0.1), (3, 0.2), (5, 0.15), (7, 0.05)]:
        archive.offer(FrontEntry(complexity, error, None, 1.0, 0.0))
    front = archive.front()
    assert [(e.complexity, e.error) for e in front] == [(1, 0.5), (3, 0.1),
                                                          (7, 0.05)]
    # Simplest within 0.01 of the best held-out R^2 wins.
    assert choose(front, [0.5, 0.945, 0.95], tolerance=0.01) == 1
    assert choose(front, [0.5, 0.90, 0.95], tolerance=0.01) == 2
    with pytest.raises(ValueError):
        choose(front, [0.5])


def test_protected_functions_fold_and_stay_opaque():
    x, y = sympy.symbols("x y", real=True)
    pdiv, plog = SYMPY_PROTECTED["pdiv"], SYMPY_PROTECTED["plog"]
    assert pdiv(sympy.Float(3.0), sympy.Float(0.0)) == 1.0
    assert float(plog(sympy.Float(-np.e))) == pytest.approx(1.0)
    assert simplify_expression(pdiv(x, x)) == pdiv(x, x)  # not 1: x may be ~0
    assert simplify_expression(x * 2 - x) == x
    assert count_nodes(x * y + 2) == 5
    assert count_nodes(-x) == 2


def test_equation_renderings_agree():
    x3, x7 = sympy.symbols("read tag_cred_read", real=True)
    pdiv, psqrt = SYMPY_PROTECTED["pdiv"], SYMPY_PROTECTED["psqrt"]
    expr = (sympy.Float(0.5) * sympy.tanh(x3) - pdiv(x7, x3 - sympy.Float(0.25))
            + sympy.Max(x3, psqrt(x7)) + x3**2)
    equation = Equation(expr, {x3: 3, x7: 7})
    hist = np.random.default_rng(1).uniform(0, 1, (64, 9)).astype(np.float32)
    hist[:5, 3] = 0.25  # the protected denominator is 0 there
    scores = equation.score(hist)
    namespace = {}
    exec(equation.python_source(), namespace)
    np.testing.assert_array_equal(namespace["score"](hist), scores)

    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        jax_scores = np.asarray(jax.jit(equation.function(jax.numpy))(
            hist.astype(np.float64)))
    np.testing.assert_allclose(jax_scores, scores, rtol=1e-14, atol=1e-14)
    assert "tanh" in equation.latex() and "pdiv" in equation.text()
    assert equation.channels == [3, 7]
    with pytest.raises(ValueError, match="channel"):
        equation.score(hist[:, :5])


def test_compress_rejects_bad_input():
    compressor = NeuralToSymbolic(population=10, generations=1)
    hist = np.zeros((20, 4), np.float32)
    with pytest.raises(ValueError, match="constant"):
        compressor.compress_model(None, hist, np.ones(20))
    with pytest.raises(ValueError, match="targets"):
        compressor.compress_model(None, hist, np.arange(5.0))


def test_simplification_keeps_the_value_of_tanh_heavy_equations():
    # Sums of tanh terms once sent sympy.simplify into minutes of rewriting;
    # the bounded rewrites must return the same function, quickly.
    x = sympy.symbols("x0:4")
    expr = (0.63 * sympy.tanh(x[0] - x[1]) * sympy.tanh(x[2])
            + 1.27 * sympy.tanh(x[1] + 0.5 * x[3]) - 0.63 * sympy.tanh(x[2])
            + 0.81 * (x[0] + x[1]) * (x[2] - x[3]))
    simpler = simplify_expression(expr)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 4))
    before = sympy.lambdify(x, expr, "numpy")(*points.T)
    after = sympy.lambdify(x, simpler, "numpy")(*points.T)
    np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12)
