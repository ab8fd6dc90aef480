"""Fixtures for the bundle modules: a source workspace with finished runs and
assets, an empty destination, and hand-made archives for what ``molexp export``
would never write."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from molexp.core.bundle.manifest import BUNDLE_VERSION, FORMAT, Hasher
from molexp.core.records.workspace import Workspace
from tests.conftest import Cli

RID = "0123456789abcdef"
RUN = f"projects/lj/experiments/mc/runs/{RID}"

SCRIPT = """\
import json, os
json.dump({"loss": 0.5}, open(os.environ["MOLEXP_RESULTS_FILE"], "w"))
open(os.path.join(os.environ["MOLEXP_RUN_DIR"], "artifacts", "out.txt"), "w").write("data\\n")
print("ran", os.environ["MOLEXP_REPLICA"])
"""


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Workspace:
    """A workspace with a project, two experiments (3 finished runs) and an
    asset at each scope."""
    root = tmp_path / "source"
    root.mkdir()
    monkeypatch.chdir(root)
    assert cli("init . --name source").exit_code == 0
    (root / "train.py").write_text(SCRIPT)
    assert cli("project create lj").exit_code == 0
    for name, replicas in (("mc", 2), ("md", 1)):
        r = cli(
            "experiment", "create", f"lj/{name}", "-p", "temperature=1.0",
            "--replicas", str(replicas), "--command", "python train.py",
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        assert cli(f"run lj/{name}").exit_code == 0, name
    (root / "data.csv").write_text("x,y\n1,2\n")
    for scope in (".", "lj", "lj/mc"):
        r = cli("assets", "add", scope, "data", "data.csv")
        assert r.exit_code == 0, r.output
    return Workspace(root)


@pytest.fixture
def dest(tmp_path: Path, cli: Cli) -> Workspace:
    root = tmp_path / "dest"
    assert cli("init", str(root), "--name", "dest").exit_code == 0
    return Workspace(root)


def run_dirs(ws: Workspace) -> list[Path]:
    return sorted(ws.root.glob("projects/*/experiments/*/runs/*"))


def member(tar: tarfile.TarFile, name: str, data: bytes = b"x", **attrs: Any) -> None:
    """Add ``name`` to ``tar``: a regular file of ``data`` unless ``attrs`` say otherwise."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def header_member(tar: tarfile.TarFile, version: Any = BUNDLE_VERSION) -> None:
    member(tar, "bundle.json", json.dumps({"format": FORMAT, "bundle_version": version}).encode())


def digest(data: bytes) -> str:
    hasher = Hasher()
    hasher.update(data)
    return hasher.digest


def make_bundle(
    files: dict[str, bytes],
    links: dict[str, str] | None = None,
    dirs: Iterable[str] = (),
    refs: list[str] | None = None,
) -> io.BytesIO:
    """A well-formed bundle (header, members, a manifest that matches them) of
    whatever paths it is given, in the order given."""
    buf = io.BytesIO()
    links = links or {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        header_member(tar)
        for name in dirs:
            member(tar, name, type=tarfile.DIRTYPE, mode=0o755)
        for name, data in files.items():
            member(tar, name, data, mode=0o644)
        for name, target in links.items():
            member(tar, name, type=tarfile.SYMTYPE, linkname=target)
        manifest = {
            "format": FORMAT,
            "bundle_version": BUNDLE_VERSION,
            "molexp_version": "test",
            "refs": refs or [],
            "source": {"workspace": "hand-made"},
            "files": [{"path": p, "size": len(d), "hash": digest(d)} for p, d in files.items()],
            "links": [{"path": p, "target": t} for p, t in links.items()],
        }
        member(tar, "manifest.json", json.dumps(manifest).encode())
    buf.seek(0)
    return buf
