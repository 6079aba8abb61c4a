"""Building the Rust crates: cargo, offline; the monitor's reader, cached.

The native reader of the live monitor is built once per version of its
sources: the crate is rendered (templates plus the tables of
:mod:`.tables` and :mod:`.rust_tags`), hashed, and built with
``cargo build --release --offline`` into ``$SENTINEL_CACHE_DIR`` (default
``~/.cache/sentinel_jax``) as ``sentinel_reader-HASH``, written under a
temporary name and renamed, so concurrent builds never see half a binary.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from sentinel_jax.atomic import write_text_atomic
from sentinel_jax.data.native.rust_tags import render_tags
from sentinel_jax.data.native.tables import render_tables
from sentinel_jax.data.syscalls import OTHER, PAD, Vocabulary

logger = logging.getLogger(__name__)

# The strace reader: a port of the Python reader, shared by both crates.
READER_TEMPLATES = ("names.rs", "strace.rs", "straceargs.rs", "fdtable.rs",
                    "tagger.rs")
READER_CRATE = "sentinel_reader"
RELEASE_PROFILE = """
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
debug = false
"""


class RustUnavailableError(RuntimeError):
    """No Rust toolchain (cargo) on this machine."""


class RustBuildError(RuntimeError):
    """cargo failed to build the crate; the message holds its output."""


def cargo_toml(name: str) -> str:
    """A dependency-free ``Cargo.toml`` with the release profile."""
    return (f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n'
            f"publish = false\n\n[dependencies]\n{RELEASE_PROFILE}")


def template(name: str) -> str:
    """The text of one Rust template of the native readers."""
    folder = resources.files("sentinel_jax.data.native") / "templates"
    return (folder / name).read_text(encoding="utf-8")


def cargo_path() -> str:
    """The cargo executable.

    Raises:
        RustUnavailableError: if cargo is not on PATH or in ~/.cargo/bin.
    """
    found = shutil.which("cargo")
    if found is None:
        candidate = Path.home() / ".cargo" / "bin" / "cargo"
        found = str(candidate) if candidate.exists() else None
    if found is None:
        raise RustUnavailableError(
            "no Rust toolchain: cargo is not on PATH (install rustup, or skip "
            "the Rust build); the crate was written but not built")
    return found


def build_crate(folder: str | os.PathLike[str], *, timeout: float = 600.0,
                name: str | None = None) -> Path:
    """``cargo build --release --offline``; returns the binary's path.

    Args:
        folder: the crate.
        timeout: seconds cargo may take.
        name: the binary's name (the folder's ``Cargo.toml`` package name;
            ``sentinel_detector`` when ``None``).

    Raises:
        RustUnavailableError: without cargo.
        RustBuildError: when the build fails, with cargo's output.
    """
    folder = Path(folder)
    command = [cargo_path(), "build", "--release", "--offline", "--quiet"]
    completed = subprocess.run(command, cwd=folder, capture_output=True,
                               text=True, timeout=timeout, check=False)
    if completed.returncode != 0:
        raise RustBuildError(f"cargo build failed in {folder}:\n"
                             f"{completed.stderr[-4000:]}")
    binary = folder / "target" / "release" / (name or "sentinel_detector")
    if not binary.exists():
        raise RustBuildError(f"cargo succeeded but {binary} is missing")
    return binary


def reader_sources() -> dict[str, str]:
    """The monitor reader's crate: relative path -> text."""
    sources = {"Cargo.toml": cargo_toml(READER_CRATE),
               "src/main.rs": template("reader.rs"),
               "src/tags.rs": render_tags(),
               # The reader sends raw names; the monitor maps them to channels.
               "src/tables.rs": render_tables(Vocabulary((PAD, OTHER)))}
    for name in READER_TEMPLATES:
        sources[f"src/{name}"] = template(name)
    return sources


def cache_dir() -> Path:
    """``$SENTINEL_CACHE_DIR``, or ``~/.cache/sentinel_jax``."""
    configured = os.environ.get("SENTINEL_CACHE_DIR")
    return (Path(configured) if configured
            else Path.home() / ".cache" / "sentinel_jax")


def reader_binary(*, timeout: float = 600.0) -> Path:
    """The monitor's native reader, built on first use.

    Raises:
        RustUnavailableError: without cargo (and no binary built before).
        RustBuildError: when the build fails.
    """
    sources = reader_sources()
    digest = hashlib.sha256()
    for path in sorted(sources):
        digest.update(path.encode() + b"\0" + sources[path].encode() + b"\0")
    cache = cache_dir()
    binary = cache / f"{READER_CRATE}-{digest.hexdigest()[:16]}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    cargo_path()  # fail before writing anything
    cache.mkdir(parents=True, exist_ok=True)
    logger.info("building the native strace reader into %s (once per "
                "version of its sources)", binary)
    with tempfile.TemporaryDirectory(prefix="reader-build-", dir=cache) as work:
        for path, text in sources.items():
            write_text_atomic(Path(work) / path, text)
        built = build_crate(work, timeout=timeout, name=READER_CRATE)
        temporary = binary.with_name(f"{binary.name}.tmp-{os.getpid()}")
        shutil.copy2(built, temporary)
        os.replace(temporary, binary)
    return binary
