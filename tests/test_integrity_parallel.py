"""The integrity scan gives the same records in one process or several."""

from __future__ import annotations

import os

from sentinel_jax.monitor.integrity import IntegrityValidator
from sentinel_jax.monitor.integrity_scan import ScanOptions, scan_paths
from sentinel_jax.monitor.integrity_store import read_baseline


def _without_atime(entries: dict) -> dict:
    # Listing a folder moves its atime; nothing else may differ.
    return {path: entry._replace(atime_ns=0) for path, entry in entries.items()}


def _tree(root, files: int) -> None:
    for index in range(files):
        folder = root / f"d{index // 200}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}").write_bytes(index.to_bytes(4, "little") * 50)
    os.symlink("d0/f0", root / "link")
    os.mkfifo(root / "fifo")
    (root / "big").write_bytes(os.urandom((1 << 20) + 5))


def test_forked_children_record_exactly_what_one_process_does(tmp_path):
    _tree(tmp_path / "tree", 1500)
    alone = scan_paths([tmp_path / "tree"], ScanOptions(processes=1))
    split = scan_paths([tmp_path / "tree"],
                       ScanOptions(processes=3, parallel_after=0))
    assert len(alone.entries) == 1500 + 8 + 3 + 1
    assert _without_atime(split.entries) == _without_atime(alone.entries)
    assert list(split.entries) == sorted(split.entries)
    assert split.errors == alone.errors == []
    assert split.bytes_hashed == alone.bytes_hashed


def test_baseline_written_while_scanning_matches_the_scan(tmp_path):
    _tree(tmp_path / "tree", 300)
    validator = IntegrityValidator([tmp_path / "tree"], tmp_path / "db.sqlite",
                                   hmac_key=b"k")
    report = validator.build_baseline()
    meta, stored = read_baseline(tmp_path / "db.sqlite", b"k")
    assert report.entries == len(stored) == int(meta["entry_count"])
    rescanned = scan_paths([tmp_path / "tree"]).entries
    assert _without_atime(stored) == _without_atime(rescanned)
    assert validator.run_integrity_check().exit_status == 0
