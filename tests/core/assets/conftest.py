"""What the asset tests share: a workspace with one experiment, and a folder to add."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash

from molexp.api.workspace import Workspace


def reference_dir_hash(root: Path) -> str:
    """SPEC §11 folder hash, written independently of molexp (os.walk, whole reads)."""
    entries = []
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            full = Path(dirpath) / fname
            rel = full.relative_to(root).as_posix().encode("utf-8")
            entries.append((rel, full.read_bytes()))
    stream = b"".join(
        rel + b"\x00" + len(data).to_bytes(8, "big") + data for rel, data in sorted(entries)
    )
    return "xxh3_128:" + xxhash.xxh3_128(stream).hexdigest()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "lab")
    w.init("lab")
    w.project("qm9").experiment("base", command="true", git_cwd=tmp_path)
    return w


def tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a-b").write_bytes(b"dash")
    (root / "a").mkdir()
    (root / "a" / "b").write_bytes(b"slash")
    (root / "sub" / "x.bin").write_bytes(bytes(range(256)) * 5000)  # more than one chunk
    (root / "sub" / "deeper" / "é.txt").write_text("unicode name\n")
    (root / "z").write_bytes(b"")
    return root
