"""The bundle format: which member names are accepted, where symlinks may point,
what a header and a manifest must say."""

from __future__ import annotations

from typing import Any

import pytest
import xxhash

from molexp.core.bundle import manifest as m
from molexp.errors import SchemaVersionError
from tests.core.bundle.conftest import RID, RUN, digest

EXP = "projects/lj/experiments/mc"


@pytest.mark.parametrize(
    ("name", "kind", "unit"),
    [
        ("projects", "dir", "projects"),
        ("projects/lj", "dir", "projects/lj"),
        ("projects/lj/project.yaml", "project", "projects/lj/project.yaml"),
        ("projects/lj/experiments", "dir", "projects/lj/experiments"),
        (EXP, "dir", EXP),
        (f"{EXP}/experiment.yaml", "experiment", f"{EXP}/experiment.yaml"),
        (f"{EXP}/runs", "dir", f"{EXP}/runs"),
        (RUN, "run", RUN),
        (f"{RUN}/attempts/1/stdout.log", "run", RUN),
        ("assets", "dir", "assets"),
        ("assets/data", "asset", "assets/data"),
        ("assets/data/asset.yaml", "asset", "assets/data"),
        ("projects/lj/assets/data/files/a", "asset", "projects/lj/assets/data"),
        (f"{EXP}/assets", "dir", f"{EXP}/assets"),
        (f"{EXP}/assets/data/asset.yaml", "asset", f"{EXP}/assets/data"),
    ],
)
def test_unit_of_names_the_place_in_the_layout(name: str, kind: str, unit: str) -> None:
    assert m.unit_of(name) == (kind, unit)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/etc/passwd", "absolute path"),
        ("../escaped", "unsafe path component '..'"),
        (f"{RUN}/../../x", "unsafe path component '..'"),
        (f"{RUN}/./x", "unsafe path component '.'"),
        (f"{RUN}//x", "unsafe path component ''"),
        (f"{RUN}/a\0b", "unsafe path component"),
        (f"{RUN}/{'x' * 256}", "unsafe path component"),
        (f"{RUN}/.lock", "'.lock' never belongs in a bundle"),
        (f"{RUN}/.lock.break", "'.lock.break' never belongs in a bundle"),
        (f"{RUN}/.tmp-run.json-abc", "never belongs in a bundle"),
        ("workspace.yaml", "not part of a workspace's projects or assets"),
        ("projects/-x/project.yaml", "invalid project name '-x'"),
        ("projects/lj/notes.txt", "not part of a project's layout"),
        ("projects/lj/experiments/-e", "invalid experiment name '-e'"),
        (f"{EXP}/notes.txt", "not part of an experiment's layout"),
        (f"{EXP}/runs/not-a-run-id/run.json", "invalid run id 'not-a-run-id'"),
        ("assets/-bad/asset.yaml", "invalid asset name '-bad'"),
    ],
)
def test_unit_of_refuses_what_is_not_the_layout(name: str, message: str) -> None:
    with pytest.raises(m.Refused) as exc:
        m.unit_of(name)
    assert message in str(exc.value)


def test_a_name_of_255_bytes_is_fine() -> None:
    assert m.unit_of(f"{RUN}/{'x' * 255}") == ("run", RUN)


@pytest.mark.parametrize(
    ("target", "inside"),
    [
        ("stdout.log", True),
        ("../1/stdout.log", True),  # from attempts/2 to attempts/1
        ("../../artifacts", True),
        ("../..", True),  # the run directory itself
        ("../../..", False),  # its parent
        ("../../../other-run", False),
        ("/etc/passwd", False),
        ("", False),
        ("a\0b", False),
    ],
)
def test_link_inside_judges_the_target_text(target: str, inside: bool) -> None:
    assert m.link_inside(f"{RUN}/attempts/2/link", target, RUN) is inside


def test_skip_name() -> None:
    assert m.skip_name(".lock") and m.skip_name(".lock.break") and m.skip_name(".tmp-x")
    assert not m.skip_name("run.json") and not m.skip_name("lock")


def test_hasher_counts_and_digests_like_xxh3_128() -> None:
    hasher = m.Hasher()
    for part in (b"hello ", b"", b"world"):
        hasher.update(part)
    assert hasher.size == 11
    assert hasher.digest == "xxh3_128:" + xxhash.xxh3_128_hexdigest(b"hello world")
    assert digest(b"") == "xxh3_128:" + xxhash.xxh3_128_hexdigest(b"")


# --- header ---------------------------------------------------------------------


def test_a_header_is_checked_back() -> None:
    value = m.header("1.2.3")
    assert value == {"format": "molexp.bundle", "bundle_version": 1, "molexp_version": "1.2.3"}
    m.check_header(value, "b.tar.gz")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"format": "zip", "bundle_version": 1}, "names format 'zip'"),
        ({"bundle_version": 1}, "names format None"),
        ({"format": "molexp.bundle"}, "has an invalid bundle_version None"),
        ({"format": "molexp.bundle", "bundle_version": 0}, "has an invalid bundle_version 0"),
        ({"format": "molexp.bundle", "bundle_version": True}, "has an invalid bundle_version True"),
        ({"format": "molexp.bundle", "bundle_version": "1"}, "has an invalid bundle_version '1'"),
    ],
)
def test_a_header_that_is_not_a_bundle(value: dict[str, Any], message: str) -> None:
    with pytest.raises(m.NotABundle) as exc:
        m.check_header(value, "b.tar.gz")
    assert str(exc.value) == f"bundle.json {message}"


def test_a_newer_header_asks_for_an_upgrade() -> None:
    value = {"format": "molexp.bundle", "bundle_version": 2, "molexp_version": "9.0"}
    with pytest.raises(SchemaVersionError) as exc:
        m.check_header(value, "b.tar.gz")
    assert exc.value.path == "b.tar.gz"
    assert "bundle_version 2 (molexp 9.0) is newer than this molexp understands (1)" in str(
        exc.value
    )
    assert "Upgrade molexp" in str(exc.value)


# --- manifest -------------------------------------------------------------------

FILES = {f"{RUN}/run.json": (3, digest(b"{}\n")), f"{EXP}/experiment.yaml": (1, digest(b"x"))}
LINKS = {f"{RUN}/latest": "attempts/1"}


def manifest(**change: Any) -> dict[str, Any]:
    value = m.build_manifest(
        molexp_version="1.0",
        created_at="2024-01-01T00:00:00+00:00",
        source={"workspace": "w", "root": "/w", "host": "h"},
        refs=["lj/mc"],
        runs=[f"lj/mc/{RID}"],
        dirs=[RUN],
        files=[{"path": p, "size": s, "hash": h} for p, (s, h) in FILES.items()],
        links=[{"path": p, "target": t} for p, t in LINKS.items()],
        skipped=[],
    )
    value.update(change)
    return value


def test_build_manifest_has_the_documented_keys() -> None:
    value = manifest()
    assert list(value) == [
        "format", "bundle_version", "molexp_version", "created_at", "source",
        "refs", "runs", "dirs", "files", "links", "skipped",
    ]  # fmt: skip
    assert value["format"] == m.FORMAT and value["bundle_version"] == m.BUNDLE_VERSION


def test_a_matching_manifest_is_returned() -> None:
    value = manifest()
    assert m.check_manifest(value, dict(FILES), dict(LINKS)) is value
    del value["links"]  # a bundle without symlinks may leave the list out
    assert m.check_manifest(value, dict(FILES), {}) is value


def refused(value: dict[str, Any] | None, files: Any = None, links: Any = None) -> str:
    with pytest.raises(m.Refused) as exc:
        m.check_manifest(value, dict(FILES) if files is None else files, links or dict(LINKS))
    return str(exc.value)


def test_a_missing_manifest() -> None:
    assert refused(None) == "no manifest.json (not a molexp bundle, or truncated)"


@pytest.mark.parametrize("change", [{"format": "zip"}, {"bundle_version": 2}])
def test_a_manifest_that_does_not_match_the_header(change: dict[str, Any]) -> None:
    assert refused(manifest(**change)) == "manifest.json does not match bundle.json"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": {}}, "files and links must be lists"),
        ({"links": "x"}, "files and links must be lists"),
        ({"files": ["run.json"]}, "a files entry without a path"),
        ({"files": [{"size": 1}]}, "a files entry without a path"),
    ],
)
def test_a_malformed_manifest(change: dict[str, Any], message: str) -> None:
    assert refused(manifest(**change)) == f"manifest.json: {message}"


def test_files_must_be_exactly_those_listed() -> None:
    extra = {**FILES, f"{RUN}/extra": (1, digest(b"x"))}
    assert f"not in the manifest: {RUN}/extra" in refused(manifest(), files=extra)
    fewer = {f"{RUN}/run.json": FILES[f"{RUN}/run.json"]}
    assert f"missing from the archive: {EXP}/experiment.yaml" in refused(manifest(), files=fewer)


def test_sizes_and_hashes_must_match() -> None:
    for got in ((4, digest(b"{}\n")), (3, digest(b"{}\r"))):
        files = {**FILES, f"{RUN}/run.json": got}
        assert refused(manifest(), files=files) == (
            f"{RUN}/run.json: size or hash differs from manifest.json (damaged bundle?)"
        )


def test_symlinks_must_match() -> None:
    for links in ({f"{RUN}/latest": "attempts/2"}, {**LINKS, f"{RUN}/other": "run.json"}):
        assert refused(manifest(), links=links) == "symlinks do not match manifest.json"
