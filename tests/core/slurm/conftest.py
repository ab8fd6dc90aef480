"""Fake SLURM client tools on PATH, for the SLURM modules' unit tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

FakeTool = Callable[[str, str], None]


@pytest.fixture
def fake_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTool:
    """``fake_tool(name, sh_body)``: a SLURM command that runs ``sh_body``.

    PATH holds only the fakes (and ``cat`` and ``sleep`` for them), so a real
    SLURM on this machine is never asked and a tool not faked is missing.
    """
    bindir = tmp_path / "fake-bin"
    bindir.mkdir()
    for tool in ("cat", "sleep"):
        found = shutil.which(tool)
        assert found is not None
        (bindir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bindir))

    def make(name: str, body: str) -> None:
        path = bindir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    return make
