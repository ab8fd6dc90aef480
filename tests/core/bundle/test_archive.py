"""The tar stream: what the writer puts in, and a reader that refuses every
member that could write outside the staging directory or is not a plain
directory, file or inside-pointing symlink."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from molexp.core.bundle import archive
from molexp.core.bundle.manifest import (
    HEADER,
    MANIFEST,
    NotABundle,
    Refused,
    build_manifest,
    check_manifest,
    header,
)
from molexp.errors import SchemaVersionError
from tests.core.bundle.conftest import RUN, digest, header_member, make_bundle, member

# --- writing --------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A workspace-shaped directory with a file, an executable, a symlink."""
    root = tmp_path / "ws"
    run = root / RUN
    (run / "attempts" / "1").mkdir(parents=True)
    (run / "run.json").write_bytes(b"{}\n")
    (run / "attempts" / "1" / "stdout.log").write_bytes(b"hello\n")
    (run / "go.sh").write_bytes(b"#!/bin/sh\n")
    (run / "go.sh").chmod(0o755)
    (run / "latest").symlink_to("attempts/1")
    return root


def write(root: Path, rels: list[str]) -> tuple[io.BytesIO, archive.ArchiveWriter]:
    buf = io.BytesIO()
    with archive.open_writer(buf, root) as writer:
        writer.add_json(HEADER, header("test"))
        writer.add_dir(RUN)
        for rel in rels:
            writer.add(rel, os.lstat(root / rel))
        writer.add_json(
            MANIFEST,
            build_manifest(
                molexp_version="test",
                created_at="now",
                source={},
                refs=[],
                runs=[],
                dirs=writer.dirs,
                files=writer.files,
                links=writer.links,
                skipped=[],
            ),
        )
    buf.seek(0)
    return buf, writer


RELS = [f"{RUN}/run.json", f"{RUN}/attempts", f"{RUN}/attempts/1/stdout.log", f"{RUN}/go.sh",
        f"{RUN}/latest"]  # fmt: skip


def test_the_writer_lists_what_it_wrote(tree: Path) -> None:
    buf, writer = write(tree, RELS)
    parents = ["projects", "projects/lj", "projects/lj/experiments",
               "projects/lj/experiments/mc", "projects/lj/experiments/mc/runs", RUN]  # fmt: skip
    assert writer.dirs == [*parents, f"{RUN}/attempts", f"{RUN}/attempts/1"]
    assert writer.files == [
        {"path": f"{RUN}/run.json", "size": 3, "hash": digest(b"{}\n")},
        {"path": f"{RUN}/attempts/1/stdout.log", "size": 6, "hash": digest(b"hello\n")},
        {"path": f"{RUN}/go.sh", "size": 10, "hash": digest(b"#!/bin/sh\n")},
    ]
    assert writer.links == [{"path": f"{RUN}/latest", "target": "attempts/1"}]
    assert writer.bytes == 19
    with tarfile.open(fileobj=buf) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == HEADER and names[-1] == MANIFEST
    assert len(names) == len(set(names))  # each directory once
    by_name = {m.name: m for m in members}
    assert all(m.uid == m.gid == 0 and m.uname == m.gname == "" for m in members)
    assert by_name[RUN].isdir() and by_name[RUN].mode == 0o755
    assert by_name[f"{RUN}/run.json"].mode == 0o644
    assert by_name[f"{RUN}/go.sh"].mode == 0o755
    assert by_name[f"{RUN}/latest"].issym()
    assert by_name[f"{RUN}/latest"].linkname == "attempts/1"


def test_what_the_writer_wrote_the_reader_takes(tree: Path, tmp_path: Path) -> None:
    buf, writer = write(tree, RELS)
    staging = tmp_path / "staging"
    staging.mkdir()
    staged = archive.extract(buf, staging, "b.tar.gz")
    assert staged.files == {f["path"]: (f["size"], f["hash"]) for f in writer.files}
    assert staged.links == {f"{RUN}/latest": "attempts/1"}
    assert staged.dirs == set(writer.dirs)
    assert check_manifest(staged.manifest, staged.files, staged.links) == staged.manifest
    assert (staging / RUN / "latest" / "stdout.log").read_bytes() == b"hello\n"
    for rel in (f"{RUN}/run.json", f"{RUN}/go.sh"):
        assert (staging / rel).read_bytes() == (tree / rel).read_bytes()
        assert (staging / rel).stat().st_mtime == int((tree / rel).stat().st_mtime)


# --- reading: well-formed -------------------------------------------------------


def stage(tmp_path: Path, buf: io.BytesIO) -> tuple[Path, archive.Staged]:
    staging = tmp_path / "staging"
    staging.mkdir()
    return staging, archive.extract(buf, staging, "b.tar.gz")


def test_files_follow_the_umask(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        header_member(tar)
        member(tar, f"{RUN}/plain", b"a", mode=0o600)
        member(tar, f"{RUN}/exe", b"b", mode=0o700)
    buf.seek(0)
    old = os.umask(0o022)
    try:
        staging, staged = stage(tmp_path, buf)
    finally:
        os.umask(old)
    assert (staging / RUN / "plain").stat().st_mode & 0o777 == 0o644
    assert (staging / RUN / "exe").stat().st_mode & 0o777 == 0o755
    assert staged.manifest is None  # check_manifest refuses that later


def test_a_symlink_may_lead_through_another_inside_its_run(tmp_path: Path) -> None:
    buf = make_bundle(
        {f"{RUN}/run.json": b"{}"},
        links={f"{RUN}/a": "b", f"{RUN}/b": "run.json", f"{RUN}/c": "."},
    )
    staging, staged = stage(tmp_path, buf)
    assert (staging / RUN / "a").read_bytes() == b"{}"
    assert staged.links == {f"{RUN}/a": "b", f"{RUN}/b": "run.json", f"{RUN}/c": "."}


# --- reading: refused -----------------------------------------------------------

Build = Callable[[tarfile.TarFile], Any]

SPECIAL = "is a hard link, device, FIFO or other special file"
HOSTILE: dict[str, tuple[Build, str, str]] = {
    # case: (members after the header, the member named, the reason)
    "dotdot": (
        lambda t: member(t, f"{RUN}/../../../../../../../escaped"),
        f"{RUN}/../../../../../../../escaped", "unsafe path component '..'",
    ),
    "dotdot-top": (lambda t: member(t, "../escaped"), "../escaped", "unsafe path component '..'"),
    "absolute": (
        lambda t: member(t, "/tmp/escaped-molexp-archive-test"),
        "/tmp/escaped-molexp-archive-test", "absolute path",
    ),
    "symlink-absolute": (
        lambda t: member(t, f"{RUN}/evil", type=tarfile.SYMTYPE, linkname="/tmp"),
        f"{RUN}/evil", "symlink to '/tmp' points outside its directory",
    ),
    "symlink-up": (
        lambda t: member(t, f"{RUN}/up", type=tarfile.SYMTYPE, linkname="../../../.."),
        f"{RUN}/up", "symlink to '../../../..' points outside its directory",
    ),
    "symlink-to-another-run": (
        lambda t: member(t, f"{RUN}/x", type=tarfile.SYMTYPE, linkname="../fedcba9876543210"),
        f"{RUN}/x", "points outside its directory",
    ),
    "symlink-outside-a-run": (
        lambda t: member(t, "projects/lj/project.yaml", type=tarfile.SYMTYPE, linkname="x"),
        "projects/lj/project.yaml", "points outside its directory",
    ),
    "symlink-chain": (
        lambda t: (
            member(t, f"{RUN}/a", type=tarfile.SYMTYPE, linkname="b/.."),
            member(t, f"{RUN}/b", type=tarfile.SYMTYPE, linkname="."),
        ),
        f"{RUN}/a", "symlink resolves outside its directory",
    ),
    "below-a-symlink": (
        lambda t: (
            member(t, f"{RUN}/d", type=tarfile.SYMTYPE, linkname="attempts"),
            member(t, f"{RUN}/d/x"),
        ),
        f"{RUN}/d/x", "lies below a symlink",
    ),
    "hard-link": (
        lambda t: member(t, f"{RUN}/h", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
        f"{RUN}/h", SPECIAL,
    ),
    "hard-link-inside": (
        lambda t: (member(t, f"{RUN}/a"), member(t, f"{RUN}/h", type=tarfile.LNKTYPE,
                                                 linkname=f"{RUN}/a")),
        f"{RUN}/h", SPECIAL,
    ),
    "char-device": (
        lambda t: member(t, f"{RUN}/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        f"{RUN}/null", SPECIAL,
    ),
    "block-device": (
        lambda t: member(t, f"{RUN}/sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0),
        f"{RUN}/sda", SPECIAL,
    ),
    "fifo": (lambda t: member(t, f"{RUN}/fifo", type=tarfile.FIFOTYPE), f"{RUN}/fifo", SPECIAL),
    "file-where-a-directory-belongs": (
        lambda t: member(t, "projects/lj/experiments"),
        "projects/lj/experiments", "has the wrong type for its place in the layout",
    ),
    "directory-where-a-definition-belongs": (
        lambda t: member(t, "projects/lj/project.yaml", type=tarfile.DIRTYPE),
        "projects/lj/project.yaml", "has the wrong type for its place in the layout",
    ),
    "twice": (
        lambda t: (member(t, f"{RUN}/run.json"), member(t, f"{RUN}/run.json")),
        f"{RUN}/run.json", "appears twice",
    ),
    "file-and-symlink": (
        lambda t: (
            member(t, f"{RUN}/a", type=tarfile.SYMTYPE, linkname="run.json"),
            member(t, f"{RUN}/a"),
        ),
        f"{RUN}/a", "appears twice",
    ),
    "symlink-and-directory": (
        lambda t: (
            member(t, f"{RUN}/a", type=tarfile.SYMTYPE, linkname="run.json"),
            member(t, f"{RUN}/a", type=tarfile.DIRTYPE),
        ),
        f"{RUN}/a", "appears twice",
    ),
    "file-below-a-file": (
        lambda t: (member(t, f"{RUN}/a"), member(t, f"{RUN}/a/b")),
        f"{RUN}/a/b", "clashes with another member",
    ),
    "lock": (lambda t: member(t, f"{RUN}/.lock"), f"{RUN}/.lock", "never belongs in a bundle"),
    "after-the-manifest": (
        lambda t: (member(t, MANIFEST, b"{}"), member(t, f"{RUN}/run.json")),
        f"{RUN}/run.json", "follows manifest.json, which must come last",
    ),
    "two-manifests": (
        lambda t: (member(t, MANIFEST, b"{}"), member(t, MANIFEST, b"{}")),
        MANIFEST, "appears twice",
    ),
    "manifest-not-json": (
        lambda t: member(t, MANIFEST, b"{"), MANIFEST, "is not valid JSON",
    ),
    "manifest-not-an-object": (
        lambda t: member(t, MANIFEST, b"[]"), MANIFEST, "is not a JSON object",
    ),
    "manifest-a-symlink": (
        lambda t: member(t, MANIFEST, type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        MANIFEST, "is not a regular file of reasonable size",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused(case: str, tmp_path: Path) -> None:
    build, name, reason = HOSTILE[case]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        header_member(tar)
        build(tar)
    buf.seek(0)
    around = tmp_path / "around"
    staging = around / "staging"
    staging.mkdir(parents=True)
    with pytest.raises(Refused) as exc:
        archive.extract(buf, staging, "b.tar.gz")
    assert str(exc.value).startswith(f"member {name!r}: "), str(exc.value)
    assert reason in str(exc.value)
    # nothing was written beside the staging directory or anywhere else
    assert [p.name for p in around.iterdir()] == ["staging"]
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/escaped-molexp-archive-test").exists()
    for path in staging.rglob("*"):
        assert os.path.realpath(path).startswith(str(staging) + os.sep) or path.is_symlink()


def test_a_manifest_larger_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MAX_MANIFEST", 100)  # the header is smaller
    buf = make_bundle({f"{RUN}/run.json": b"{}"})
    with pytest.raises(Refused, match="member 'manifest.json': is not a regular file of reason"):
        stage(tmp_path, buf)


# --- reading: not a bundle ------------------------------------------------------


def tar_of(build: Build) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        build(tar)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda t: None, "it does not start with bundle.json"),
        (lambda t: member(t, f"{RUN}/run.json"), "it does not start with bundle.json"),
        (lambda t: member(t, HEADER, b"not json"), "bundle.json is not valid JSON"),
        (lambda t: member(t, HEADER, b'"x"'), "bundle.json is not a JSON object"),
        (lambda t: member(t, HEADER, type=tarfile.DIRTYPE), "bundle.json is not a regular file"),
        (lambda t: member(t, HEADER, b'{"format": "x"}'), "bundle.json names format 'x'"),
    ],
)
def test_an_archive_without_a_header_is_not_a_bundle(
    build: Build, message: str, tmp_path: Path
) -> None:
    with pytest.raises(NotABundle) as exc:
        stage(tmp_path, tar_of(build))
    assert str(exc.value).startswith(message)
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_newer_bundle_is_refused_before_any_member(tmp_path: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        header_member(tar, version=2)
        member(tar, f"{RUN}/run.json")

    with pytest.raises(SchemaVersionError, match="Upgrade molexp"):
        stage(tmp_path, tar_of(build))
    assert list((tmp_path / "staging").iterdir()) == []


def test_bytes_that_are_not_a_tar_gz(tmp_path: Path) -> None:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:  # a tar, but not gzipped
        member(tar, HEADER, json.dumps(header("x")).encode())
    for data in (b"not a bundle", plain.getvalue(), tar_of(header_member).getvalue()[:20]):
        staging = tmp_path / f"staging-{len(data)}"
        staging.mkdir()
        with pytest.raises((tarfile.TarError, EOFError)):
            archive.extract(io.BytesIO(data), staging, "b.tar.gz")
