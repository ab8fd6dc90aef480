"""Writing and reading the tar stream of a bundle, never trusting what is read.

Writing (:func:`open_writer`): members get neutral owners and modes, each file
is hashed from exactly the bytes that go into the archive, and the writer
remembers every directory, file and symlink for the manifest.

Reading (:func:`extract`): molexp writes every member itself into a staging
directory (never ``tar.extract``).  Each member name is checked against the
workspace layout (no absolute paths, no ``..``, nothing below a symlink), only
directories, regular files and symlinks are accepted (no hard links, devices or
FIFOs), symlinks must stay inside their own run or asset directory (judged on
their text, then again once all exist, since one may lead through another) and
are created last so no file is ever written through one, ``bundle.json`` must
come first and ``manifest.json`` last, each at most :data:`MAX_MANIFEST` bytes.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from molexp.core.bundle.manifest import (
    HEADER,
    MANIFEST,
    Hasher,
    NotABundle,
    Refused,
    check_header,
    link_inside,
    unit_of,
)

MAX_MANIFEST = 256 * 1024 * 1024  # the largest bundle.json or manifest.json read
CHUNK = 1024 * 1024


# --- writing --------------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    """A file object that hashes what is read from it (for ``tarfile.addfile``)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.hasher = Hasher()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.hasher.update(data)
        return data


def _tarinfo(name: str, st: os.stat_result, kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(st.st_mtime)
    info.uname = info.gname = ""
    info.uid = info.gid = 0
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info


class ArchiveWriter:
    """Members of a bundle under way, taken from the workspace at ``root``.

    ``dirs``, ``files`` (path, size, hash) and ``links`` (path, target) are the
    manifest's lists; ``bytes`` is the total size of the files.
    """

    def __init__(self, tar: tarfile.TarFile, root: Path) -> None:
        self._tar = tar
        self._root = root
        self._added_dirs: set[str] = set()
        self.dirs: list[str] = []
        self.files: list[dict[str, Any]] = []
        self.links: list[dict[str, str]] = []
        self.bytes = 0

    def add_json(self, name: str, value: Any) -> None:
        """A member ``name`` holding ``value`` as JSON (the header, the manifest)."""
        data = json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        self._tar.addfile(info, io.BytesIO(data))

    def _add_parents(self, rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self._added_dirs:
                self._added_dirs.add(parent)
                self.dirs.append(parent)
                self._tar.addfile(_tarinfo(parent, os.stat(self._root / parent), "dir"))

    def add_dir(self, rel: str) -> None:
        """The directory ``rel`` and those above it, each once."""
        self._add_parents(rel + "/x")

    def add_file(self, rel: str, st: os.stat_result) -> None:
        """The regular file ``rel`` (``st``: its ``lstat``), hashed as it is written."""
        self._add_parents(rel)
        info = _tarinfo(rel, st, "file")
        with open(self._root / rel, "rb") as fh:
            info.size = os.fstat(fh.fileno()).st_size
            reader = _HashingReader(fh)
            self._tar.addfile(info, reader)
        self.files.append({"path": rel, "size": info.size, "hash": reader.hasher.digest})
        self.bytes += info.size

    def add_link(self, rel: str, st: os.stat_result) -> None:
        """The symlink ``rel`` as a symlink (the caller checked where it points)."""
        self._add_parents(rel)
        info = _tarinfo(rel, st, "link")
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(self._root / rel)
        self._tar.addfile(info)
        self.links.append({"path": rel, "target": info.linkname})

    def add(self, rel: str, st: os.stat_result) -> None:
        """A directory, regular file or symlink, by what ``st`` says it is."""
        if stat.S_ISDIR(st.st_mode):
            self.add_dir(rel)
        elif stat.S_ISLNK(st.st_mode):
            self.add_link(rel, st)
        else:
            self.add_file(rel, st)


@contextmanager
def open_writer(out: IO[bytes], root: Path) -> Iterator[ArchiveWriter]:
    """A gzipped tar stream on ``out`` (written through, never sought)."""
    with tarfile.open(fileobj=out, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
        yield ArchiveWriter(tar, root)


# --- reading --------------------------------------------------------------------


@dataclass
class Staged:
    """What :func:`extract` wrote into the staging directory."""

    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (size, hash)
    links: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    manifest: dict[str, Any] | None = None


class WriteFailed(OSError):
    """Writing the staged copy failed (the disk is full, say): the workspace's
    fault, not the bundle's.  ``filename`` is the file being written."""


def _mkdirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise
    except OSError as exc:
        raise WriteFailed(exc.errno, exc.strerror, str(path)) from None


def _written(dest: Path, chunk: bytes, fh: IO[bytes]) -> None:
    try:
        fh.write(chunk)
    except OSError as exc:
        raise WriteFailed(exc.errno, exc.strerror, str(dest)) from None


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> tuple[int, str]:
    src = tar.extractfile(member)
    if src is None:  # pragma: no cover - regular members always have data
        raise Refused("has no data")
    mode = 0o777 if member.mode & 0o111 else 0o666
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise
    except OSError as exc:
        raise WriteFailed(exc.errno, exc.strerror, str(dest)) from None
    hasher = Hasher()
    fh = os.fdopen(fd, "wb")
    try:
        with src:
            while chunk := src.read(CHUNK):
                hasher.update(chunk)
                _written(dest, chunk, fh)
    finally:
        try:
            fh.close()  # flushes: a full disk may only show here
        except OSError as exc:
            raise WriteFailed(exc.errno, exc.strerror, str(dest)) from None
    os.utime(dest, (member.mtime, member.mtime))
    return hasher.size, hasher.digest


def _no_link_above(rel: str, links: dict[str, str]) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in links:
            raise Refused("lies below a symlink")


def _read_json_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    if not member.isreg() or member.size > MAX_MANIFEST:
        raise Refused("is not a regular file of reasonable size")
    src = tar.extractfile(member)
    raw = src.read() if src is not None else b""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(f"is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise Refused("is not a JSON object")
    return value


def _read_header(tar: tarfile.TarFile, member: tarfile.TarInfo | None, bundle: str) -> None:
    if member is None or member.name != HEADER:
        raise NotABundle(f"it does not start with {HEADER}")
    try:
        value = _read_json_member(tar, member)
    except Refused as exc:
        raise NotABundle(f"{HEADER} {exc}") from None
    check_header(value, bundle)


def extract(stream: IO[bytes], staging: Path, bundle: str) -> Staged:
    """Write every member of the gzipped tar ``stream`` into ``staging``.

    Raises :class:`NotABundle` when it does not start with a bundle header,
    :class:`Refused` naming the first unsafe member, and ``tarfile``/``OSError``
    exceptions for an archive that cannot be read.  ``bundle`` is for messages.
    """
    staged = Staged()
    seen_header = False
    with tarfile.open(fileobj=stream, mode="r|gz") as tar:
        for member in tar:
            if not seen_header:
                _read_header(tar, member, bundle)
                seen_header = True
                continue
            name = member.name
            try:
                if name == MANIFEST:
                    if staged.manifest is not None:
                        raise Refused("appears twice")
                    staged.manifest = _read_json_member(tar, member)
                    continue
                if staged.manifest is not None:
                    raise Refused(f"follows {MANIFEST}, which must come last")
                name = name.rstrip("/") if member.isdir() else name
                kind, top = unit_of(name)
                if (kind == "dir") != member.isdir() and kind not in ("run", "asset"):
                    raise Refused("has the wrong type for its place in the layout")
                if (
                    name in staged.files
                    or name in staged.links
                    or (name in staged.dirs and not member.isdir())
                ):
                    raise Refused("appears twice")
                _no_link_above(name, staged.links)
                dest = staging / name
                if member.isdir():
                    _mkdirs(dest)
                    staged.dirs.add(name)
                elif member.isreg():
                    _mkdirs(dest.parent)
                    staged.files[name] = _write_member(tar, member, dest)
                elif member.issym():
                    if kind not in ("run", "asset") or not link_inside(name, member.linkname, top):
                        raise Refused(
                            f"symlink to {member.linkname!r} points outside its directory"
                        )
                    staged.links[name] = member.linkname
                else:
                    raise Refused("is a hard link, device, FIFO or other special file")
            except Refused as exc:
                raise Refused(f"member {name!r}: {exc}") from None
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise Refused(f"member {name!r}: clashes with another member") from None
        if not seen_header:
            _read_header(tar, None, bundle)
    # Symlinks last, so no file was ever written through one.
    for name, target in staged.links.items():
        if name in staged.files or name in staged.dirs:
            raise Refused(f"member {name!r}: appears twice")
        link = staging / name
        try:
            _mkdirs(link.parent)
            os.symlink(target, link)
        except (FileExistsError, NotADirectoryError):
            raise Refused(f"member {name!r}: clashes with another member") from None
    # Judged once every link exists: one link may lead through another.
    for name in staged.links:
        top = os.path.realpath(staging / unit_of(name)[1])
        real = os.path.realpath(staging / name)
        if not (real == top or real.startswith(top + os.sep)):
            raise Refused(f"member {name!r}: symlink resolves outside its directory")
    return staged
