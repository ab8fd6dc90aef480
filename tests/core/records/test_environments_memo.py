"""The environment cache a batch's attempts share: read once per process, and
what it says is still checked against the interpreter and its package folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from molexp.core.records import environments


def test_later_attempts_of_a_process_do_not_read_the_cache_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environments, "_RECENT", {})
    argv = [sys.executable, "-c", "pass"]
    first = environments.capture(tmp_path, argv, tmp_path, os.environ)
    assert first is not None and first["packages"]
    (cache,) = (tmp_path / environments.CACHE_DIR).iterdir()
    cache.write_text("not json")  # what a later attempt would trip over, were it read
    again = environments.capture(tmp_path, argv, tmp_path, os.environ)
    assert again == first
    assert cache.read_text() == "not json"  # not read, not rewritten
    monkeypatch.setattr(environments, "_RECENT", {})  # another process reads and repairs it
    assert environments.capture(tmp_path, argv, tmp_path, os.environ) == first
    assert cache.read_text() != "not json"


def test_a_package_list_gone_meanwhile_is_stored_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environments, "_RECENT", {})
    argv = [sys.executable, "-c", "pass"]
    first = environments.capture(tmp_path, argv, tmp_path, os.environ)
    assert first is not None
    listed = environments.env_file(tmp_path, first["packages"])
    listed.unlink()
    assert environments.capture(tmp_path, argv, tmp_path, os.environ) == first
    assert listed.exists()
