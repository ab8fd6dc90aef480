"""Fixtures of the core's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from molexp.core.records.workspace import Experiment, Workspace


@pytest.fixture
def experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Experiment:
    """``p/e`` (command ``echo {replica}``) in a fresh workspace, the current directory."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    return Workspace(root).project("p").experiment("e", command="echo {replica}")
