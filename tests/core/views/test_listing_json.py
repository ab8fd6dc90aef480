"""`ls --format json` prints records the index vouches for as their bytes: the
same output as parsing them, and never a record that changed behind its back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from molexp.core.records import index
from molexp.core.records.workspace import Workspace
from molexp.core.views.listing import select
from tests.conftest import Cli


@pytest.fixture
def lab(workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(index, "RACY_NS", 0)  # records written just now count as settled
    assert cli("project", "create", "p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--replicas", "3", "--command", "true").exit_code == 0
    assert cli("run", "p/e").exit_code == 0
    assert cli("ls", "--format", "ids").exit_code == 0  # the index is written
    return workspace


def test_bytes_and_parsed_records_print_the_same(lab: Path, cli: Cli) -> None:
    sel = select(Workspace(lab))
    items = list(sel.records_json())
    assert items and all(isinstance(i, bytes) for i in items)  # the fast path is taken
    assert [json.loads(i) for i in items] == list(select(Workspace(lab)).records())
    printed = cli("ls", "--format", "json").stdout
    assert (
        printed
        == json.dumps(list(select(Workspace(lab)).records()), indent=2, ensure_ascii=False) + "\n"
    )


def _a_run_json(lab: Path) -> Path:
    return sorted((lab / "projects/p/experiments/e/runs").glob("*/run.json"))[0]


def test_an_edit_in_place_keeping_size_and_mtime_is_seen(lab: Path, cli: Cli) -> None:
    path = _a_run_json(lab)
    st = path.stat()
    text = path.read_text()
    edited = text.replace('"succeeded"', '"failed"   ', 1)  # same length
    assert len(edited) == len(text) and edited != text
    with open(path, "r+") as fh:  # the same inode, like an editor saving in place
        fh.write(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    records = json.loads(cli("ls", "--format", "json").stdout)
    assert sorted(r["status"] for r in records) == ["failed", "succeeded", "succeeded"]


def test_a_hand_formatted_record_is_parsed_and_printed_like_the_others(lab: Path, cli: Cli) -> None:
    path = _a_run_json(lab)
    path.write_text(json.dumps(json.loads(path.read_text())))  # one line, valid
    assert cli("ls", "--format", "ids").exit_code == 0  # validated again
    items = list(select(Workspace(lab)).records_json())
    assert sum(isinstance(i, dict) for i in items) == 1
    printed = cli("ls", "--format", "json").stdout
    assert (
        printed
        == json.dumps(list(select(Workspace(lab)).records()), indent=2, ensure_ascii=False) + "\n"
    )
