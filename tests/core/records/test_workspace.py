"""Finding the workspace: its workspace.yaml, first key ``kind: molexp.workspace``."""

from __future__ import annotations

from pathlib import Path

import pytest

from molexp.core.model.yaml12 import load_yaml
from molexp.core.records.workspace import find_workspace_root
from molexp.errors import WorkspaceNotFoundError


@pytest.mark.parametrize(
    ("text", "ours"),
    [
        ("kind: molexp.workspace\n", True),
        ("kind: molexp.workspace  # marks the root\n", True),
        ("kind: 'molexp.workspace'  # quoted\n", True),
        ('kind: "molexp.workspace"\n', True),
        ("# a header comment\n---\nkind: molexp.workspace # c\nname: lab\n", True),
        ("kind: molexp.workspace#not-a-comment\n", False),
        ("kind: other  # molexp.workspace\n", False),
        ("name: lab\nkind: molexp.workspace\n", False),  # not the first key: another tool's
    ],
)
def test_the_kind_is_read_as_yaml_reads_it(tmp_path: Path, text: str, ours: bool) -> None:
    (tmp_path / "workspace.yaml").write_text(text)
    if ours:
        assert find_workspace_root(None, tmp_path / "a" / "b") == tmp_path
        assert load_yaml(text, "workspace.yaml")["kind"] == "molexp.workspace"
    else:
        with pytest.raises(WorkspaceNotFoundError):
            find_workspace_root(None, tmp_path)
