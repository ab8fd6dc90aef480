"""Persistence: atomic writes with the user's umask, validating readers, the YAML cache."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from molexp.core.store import files as store
from molexp.errors import CorruptRecordError, SchemaVersionError


def test_atomic_write_uses_umask_and_leaves_no_temp(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        store.write_json(tmp_path / "r.json", {"schema_version": 1}, root=tmp_path)
        store.write_json(tmp_path / "r.json", {"schema_version": 1, "x": 2}, root=tmp_path)
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "r.json").stat().st_mode)
    assert mode == 0o664
    assert store.leftover_temp_files(tmp_path) == []
    assert json.loads((tmp_path / "r.json").read_text())["x"] == 2


def test_create_exclusive_never_replaces(tmp_path: Path) -> None:
    assert store.create_exclusive(tmp_path / "a", b"one", root=tmp_path)
    assert not store.create_exclusive(tmp_path / "a", b"two", root=tmp_path)
    assert (tmp_path / "a").read_bytes() == b"one"
    assert store.leftover_temp_files(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b'{"schema_version": 1, "id": ', "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id": "x"}', "schema_version"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_unreadable_records_name_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(content)
    with pytest.raises(CorruptRecordError, match=problem) as info:
        store.read_json_record(path, "run")
    assert str(path) in str(info.value)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"schema_version": 99}')
    with pytest.raises(SchemaVersionError, match="99"):
        store.read_json_record(path, "run")


def test_older_schema_is_migrated_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store.MIGRATIONS, "run", {1: lambda r: {**r, "new_key": True}})
    path = tmp_path / "run.json"
    path.write_text('{"schema_version": 1}')
    assert store.read_json_record(path, "run") == {"schema_version": 2, "new_key": True}
    assert json.loads(path.read_text()) == {"schema_version": 1}  # not rewritten by a read


def test_yaml_cache_is_content_addressed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = store.load_yaml_cached(b"a: 1\nb: on\n", "x.yaml", cache)
    assert first == {"a": 1, "b": "on"}
    assert len(list(cache.iterdir())) == 1
    # an edit, even of the same size, is a different key: never stale
    assert store.load_yaml_cached(b"a: 2\nb: on\n", "x.yaml", cache) == {"a": 2, "b": "on"}
    shutil.rmtree(cache)
    assert store.load_yaml_cached(b"a: 1\nb: on\n", "x.yaml", cache) == first
    # values JSON cannot carry are parsed correctly, just not cached
    assert store.load_yaml_cached(b"x: .inf\n", "x.yaml", cache) == {"x": float("inf")}


def test_hand_edited_experiment_is_seen(tmp_path: Path) -> None:
    import molexp as mx

    exp = mx.Workspace(tmp_path).project("p").experiment("e", params={"lr": 1})
    assert exp.params == {"lr": 1}
    text = exp.definition_path.read_text().replace("lr: 1", "lr: 2")
    exp.definition_path.write_text(text)
    again = mx.Workspace(tmp_path).project("p").get_experiment("e")
    assert again.params == {"lr": 2}
