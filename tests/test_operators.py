"""Protected operators: one meaning in numpy, JAX and compiled Rust."""

import itertools
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.symbolic.operators import (
    EPS,
    NUMPY_FUNCTIONS,
    OPERATORS,
    float_literal,
    jax_functions,
    rust_prelude,
)

# Edge cases: both sides of the EPS guard, signed zeros, negatives, big values.
EDGES = np.array([-3.5, -1.0, -EPS * 1.5, -EPS, -EPS / 2, -0.0, 0.0, EPS / 2,
                  EPS, EPS * 1.5, 1e-3, 0.25, 1.0, 7.0, 1e12], dtype=np.float64)
# Where libm implementations may differ by an ulp.
TRANSCENDENTAL = {"tanh", "plog", "psqrt"}


def _argument_grid(arity):
    rows = np.array(list(itertools.product(EDGES, repeat=arity)))
    return [rows[:, i].copy() for i in range(arity)]


def _assert_agree(name, expected, actual):
    if name in TRANSCENDENTAL:
        np.testing.assert_allclose(actual, expected, rtol=4e-16, atol=0)
    else:
        np.testing.assert_array_equal(actual, expected)


def test_protected_values_at_the_guards():
    f = NUMPY_FUNCTIONS
    assert f["pdiv"](np.float64(3.0), np.float64(0.0)) == 1.0
    assert f["pdiv"](np.float64(3.0), np.float64(EPS)) == 1.0  # not above EPS
    assert f["pdiv"](np.float64(3.0), np.float64(-2 * EPS)) == pytest.approx(
        -1.5 / EPS)
    assert f["plog"](np.float64(0.0)) == 0.0
    assert f["plog"](np.float64(-np.e)) == pytest.approx(1.0)
    assert f["psqrt"](np.float64(-4.0)) == 2.0
    assert f["min"](np.float64(2.0), np.float64(-1.0)) == -1.0
    assert f["max"](np.float64(2.0), np.float64(-1.0)) == 2.0


def test_numpy_raises_no_warnings_on_edges(recwarn):
    for name, operator in OPERATORS.items():
        NUMPY_FUNCTIONS[name](*_argument_grid(operator.arity))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_jax_matches_numpy(name):
    jax = pytest.importorskip("jax")
    arguments = _argument_grid(OPERATORS[name].arity)
    expected = NUMPY_FUNCTIONS[name](*arguments)
    with jax.enable_x64(True):
        function = jax.jit(jax_functions()[name])
        actual = np.asarray(function(*arguments))
    assert actual.dtype == np.float64
    _assert_agree(name, expected, actual)


def test_jax_gradients_finite_at_guards():
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        functions = jax_functions()
        grad_div = jax.grad(lambda b: functions["pdiv"](1.0, b))(0.0)
        grad_log = jax.grad(functions["plog"])(0.0)
    assert np.isfinite(grad_div) and np.isfinite(grad_log)


_RUST_MAIN = """
use std::io::{self, Read};

fn main() {
    let mut text = String::new();
    io::stdin().read_to_string(&mut text).unwrap();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let name = fields.next().unwrap();
        let v: Vec<f64> = fields
            .map(|f| f64::from_bits(u64::from_str_radix(f, 16).unwrap()))
            .collect();
        let r = match name {
            "add" => add(v[0], v[1]), "sub" => sub(v[0], v[1]),
            "mul" => mul(v[0], v[1]), "pdiv" => pdiv(v[0], v[1]),
            "neg" => neg(v[0]), "tanh" => tanh(v[0]), "plog" => plog(v[0]),
            "psqrt" => psqrt(v[0]), "min" => min(v[0], v[1]),
            "max" => max(v[0], v[1]),
            _ => panic!("unknown operator"),
        };
        println!("{:016x}", r.to_bits());
    }
}
"""


def test_rust_matches_numpy(tmp_path):
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("rustc not installed")
    assert set(OPERATORS) == {"add", "sub", "mul", "pdiv", "neg", "tanh", "plog",
                              "psqrt", "min", "max"}, "extend _RUST_MAIN"
    source = tmp_path / "operators.rs"
    source.write_text(rust_prelude() + _RUST_MAIN)
    binary = tmp_path / "operators"
    subprocess.run([rustc, "-O", "-o", str(binary), str(source)], check=True,
                   capture_output=True)

    lines, expected = [], []
    for name, operator in OPERATORS.items():
        arguments = _argument_grid(operator.arity)
        expected.append((name, NUMPY_FUNCTIONS[name](*arguments)))
        for row in zip(*arguments, strict=True):
            bits = " ".join(f"{np.float64(v).view(np.uint64):016x}" for v in row)
            lines.append(f"{name} {bits}")
    output = subprocess.run([str(binary)], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, check=True).stdout
    results = np.array([int(word, 16) for word in output.split()],
                       dtype=np.uint64).view(np.float64)
    offset = 0
    for name, values in expected:
        _assert_agree(name, values, results[offset:offset + len(values)])
        offset += len(values)
    assert offset == len(results)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(finite, finite)
def test_protected_operators_are_finite_and_exact_away_from_guards(a, b):
    a, b = np.float64(a), np.float64(b)
    f = NUMPY_FUNCTIONS
    for value in (f["pdiv"](a, b), f["plog"](a), f["psqrt"](a)):
        assert np.isfinite(value)
    if abs(b) > EPS:
        assert f["pdiv"](a, b) == a / b
    if abs(a) > EPS:
        assert f["plog"](a) == np.log(abs(a))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_literal_round_trips(value):
    text = float_literal(value)
    assert "e" in text and "." in text
    assert float(text.strip("()")) == value
    if value < 0 or text.startswith("(-"):
        assert text.startswith("(") and text.endswith(")")


def test_float_literal_rejects_non_finite():
    with pytest.raises(ValueError, match="literal"):
        float_literal(float("inf"))
