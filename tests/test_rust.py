"""The generated Rust detector: builds, and agrees with Python.

One crate is built per test session (about 10 s) and shared by every test.
"""

import json
import re

import numpy as np
import pytest
import sympy

from sentinel_jax.data.encode import encode_traces
from sentinel_jax.data.syscalls import (
    Vocabulary,
    canonical_name,
    names_from_numbers,
    syscall_table,
)
from sentinel_jax.data.traces import Trace
from sentinel_jax.symbolic import rust
from sentinel_jax.symbolic.equation import Equation
from sentinel_jax.symbolic.simplify import SYMPY_PROTECTED

TIME, STRIDE, CHANNELS = 16, 5, 128
NAMES = ["read", "write", "openat", "close", "mmap", "fstat", "execve",
         "connect", "socket", "lseek", "stat", "clone"]


def _equation(vocabulary):
    """An equation touching every operator and a tag channel."""
    index = vocabulary.index
    read, write, mmap = (sympy.Symbol(n, real=True) for n in ("read", "write",
                                                              "mmap"))
    other, tag = sympy.Symbol("OTHER", real=True), sympy.Symbol("tag0", real=True)
    p = SYMPY_PROTECTED
    expr = (sympy.Float(1.75) * sympy.tanh(read - write)
            - p["pdiv"](mmap, write - sympy.Float(0.125))
            + p["plog"](other) * sympy.Float(0.3) + p["psqrt"](read * mmap)
            + sympy.Min(read, other) - sympy.Max(write, tag) + tag + read**2)
    channel_of = {read: index["read"], write: index["write"],
                  mmap: index["mmap"], other: 1, tag: len(vocabulary)}
    return Equation(expr, channel_of)


@pytest.fixture(scope="session")
def detector(tmp_path_factory):
    try:
        rust.cargo_path()
    except rust.RustUnavailableError:
        pytest.skip("cargo not installed")
    vocabulary = Vocabulary.build([NAMES * 2 + NAMES[:6]], name_channels=10)
    equation = _equation(vocabulary)
    spec = rust.DetectorSpec(vocabulary, CHANNELS, TIME, STRIDE,
                             threshold=0.5, arch="i386")
    folder = rust.write_crate(equation, spec, tmp_path_factory.mktemp("crate"))
    return {"binary": rust.build_crate(folder), "folder": folder,
            "equation": equation, "vocabulary": vocabulary, "spec": spec}


def _window_lines(output):
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[-1]["summary"] is True
    return lines[:-1], lines[-1]


def _python_windows(detector, names):
    # Sources hand the encoder canonical names; the detector folds them itself.
    canonical = [canonical_name(name) for name in names]
    windows = encode_traces([Trace.from_names(canonical)], detector["vocabulary"],
                            TIME, STRIDE, CHANNELS)
    return windows.starts, detector["equation"].score(windows.hist)


def test_hist_scores_equal_python(detector):
    rng = np.random.default_rng(0)
    hist = rng.dirichlet(np.ones(CHANNELS), size=300).astype(np.float32)
    hist[:20, :] = 0.0  # zero denominators hit the protected operators
    hist[20:40, 4] = 0.125
    report = rust.verify(detector["binary"], detector["equation"], hist)
    assert report["windows"] == 300
    assert report["max_abs_diff"] <= 1e-9
    assert 0 < report["binary_bytes"] < 1_000_000


@pytest.mark.parametrize("length", [1, 7, TIME, TIME + STRIDE * 3, 61])
def test_name_stream_windows_equal_python(detector, length):
    rng = np.random.default_rng(length)
    names = list(rng.choice(NAMES + ["ptrace", "mmap2", "stat64"], size=length))
    output = rust.run_binary(detector["binary"], ["--format", "names", "--all"],
                             ("\n".join(names) + "\n").encode())
    windows, summary = _window_lines(output)
    starts, scores = _python_windows(detector, names)
    assert [w["start"] for w in windows] == list(starts)
    np.testing.assert_allclose([w["score"] for w in windows], scores,
                               rtol=0, atol=1e-9)
    assert summary["events"] == length and summary["windows"] == len(starts)
    assert summary["alerts"] == int((scores >= 0.5).sum())


def test_number_stream_uses_i386_table(detector):
    rng = np.random.default_rng(7)
    numbers = rng.choice([3, 4, 5, 6, 11, 90, 192, 195, 102, 999], size=80)
    names = names_from_numbers(numbers.tolist(), arch="i386")
    text = " ".join(map(str, numbers)) + "\n"
    output = rust.run_binary(detector["binary"], ["--all"], text.encode())
    windows, summary = _window_lines(output)
    assert summary["format"] == "numbers"
    _, scores = _python_windows(detector, names)
    np.testing.assert_allclose([w["score"] for w in windows], scores, atol=1e-9)


def test_only_alerting_windows_by_default(detector):
    names = ["read", "write"] * 30
    output = rust.run_binary(detector["binary"], ["--format", "names"],
                             " ".join(names).encode())
    windows, summary = _window_lines(output)
    _, scores = _python_windows(detector, names)
    assert len(windows) == summary["alerts"] == int((scores >= 0.5).sum())
    assert all(w["alert"] for w in windows)


def test_name_folding_matches_python(detector):
    spellings = ["mmap2", "stat64", "SYS_read", "_llseek", "getuid32",
                 "clock_gettime64", "fork", "open", "9bad", "", "pwrite",
                 "OTHER", "nonexistent_call", "write", "socketcall"]
    tokens = [s for s in spellings if s]
    output = rust.run_binary(detector["binary"], ["--format", "names", "--events"],
                             "\n".join(tokens).encode())
    ids = [int(line.split()[0]) for line in output.splitlines()
           if not line.startswith("{")]
    expected = detector["vocabulary"].lookup([canonical_name(t) for t in tokens])
    assert ids == expected.tolist()


def test_number_tables_cover_every_call(detector):
    numbers = sorted(syscall_table("x86_64"))
    output = rust.run_binary(
        detector["binary"], ["--format", "numbers", "--arch", "x86_64", "--events"],
        " ".join(map(str, numbers)).encode())
    ids = [int(line.split()[0]) for line in output.splitlines()
           if not line.startswith("{")]
    names = names_from_numbers(numbers, arch="x86_64")
    assert ids == detector["vocabulary"].lookup(names).tolist()


def test_generated_source_has_only_float_literals(detector):
    model = (detector["folder"] / "src" / "model.rs").read_text()
    body = model.split("pub fn score(h: &[f64]) -> f64 {")[1]
    body = re.sub(r"h\[\d+\]", "h[]", body)  # channel indices are usize
    literals = re.findall(r"(?<![\w.])\d[\w.+-]*", body)
    assert literals, "the equation has constants"
    assert all(re.fullmatch(r"\d\.\d{16}e[+-]\d\d", lit) for lit in literals)


def test_bad_arguments_exit_2(detector):
    import subprocess

    completed = subprocess.run([str(detector["binary"]), "--format", "xml"],
                               input=b"", capture_output=True, check=False)
    assert completed.returncode == 2 and b"--format" in completed.stderr
    completed = subprocess.run([str(detector["binary"]), "--format", "hist"],
                               input=b"0.5 0.5\n", capture_output=True, check=False)
    assert completed.returncode == 2 and b"channels" in completed.stderr


def test_equation_module_compiles_alone(detector, tmp_path):
    import shutil
    import subprocess

    path = rust.write_equation_module(detector["equation"], tmp_path / "model.rs")
    rustc = shutil.which("rustc")
    completed = subprocess.run(
        [rustc, "--crate-type", "lib", "--edition", "2021", "-o",
         str(tmp_path / "libmodel.rlib"), str(path)], capture_output=True,
        text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_missing_cargo_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(rust.shutil, "which", lambda name: None)
    monkeypatch.setattr(rust.Path, "home", staticmethod(lambda: tmp_path))
    with pytest.raises(rust.RustUnavailableError, match="cargo"):
        rust.build_crate(tmp_path)
