"""Walking, hashing and copying (SPEC §11 content hash)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import xxhash

from molexp.core import assets
from molexp.core.assets.content import CHUNK, copy_hashing, walk
from molexp.errors import UsageError
from tests.conftest import snapshot
from tests.core.assets.conftest import reference_dir_hash, tree


def test_file_hash_is_xxh3_128_of_the_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 123)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    seen: list[int] = []

    def hook(label: str, total: int) -> Any:
        assert total == len(data)
        return seen.append

    content = assets.hash_path(f, hook)
    assert content.content_hash == "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()
    assert (content.kind, content.size, content.files) == ("file", len(data), 1)
    assert sum(seen) == len(data) and len(seen) == 4


def test_dir_hash_matches_an_independent_implementation(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    content = assets.hash_path(root)
    assert content.content_hash == reference_dir_hash(root)
    assert content.kind == "dir" and content.files == 5
    # empty folders do not count; byte order puts "a-b" (0x2d) before "a/b" (0x2f)
    (root / "more-empty" / "nested").mkdir(parents=True)
    assert assets.hash_path(root).content_hash == content.content_hash
    order = [rel for rel, _ in walk(root).files]
    assert order.index("a-b") < order.index("a/b")


def test_copy_hashing_equals_hash_and_keeps_bytes(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    copied = copy_hashing(root, tmp_path / "copy")
    assert copied == assets.hash_path(root)
    assert snapshot(tmp_path / "copy") == snapshot(root)
    assert (tmp_path / "copy" / "empty").is_dir()


def test_symlink_inside_a_folder_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    (root / "link").symlink_to(root / "z")
    with pytest.raises(UsageError, match="symbolic link 'link'") as info:
        assets.hash_path(root)
    assert info.value.exit_code == 2


def test_the_documented_reimplementation_agrees(tmp_path: Path) -> None:
    """docs/assets.md shows another tool how to recompute a folder hash: keep it true."""
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "assets.md").read_text()
    code = text.split("```python\nimport os, xxhash\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec("import os, xxhash\n" + code, namespace)
    root = tree(tmp_path / "t")
    assert namespace["folder_hash"](str(root)) == assets.hash_path(root).content_hash
