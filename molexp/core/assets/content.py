"""What a file or folder holds (SPEC §11): walking, hashing and copying.

``content_hash`` is ``xxh3_128:`` + 32 hex digits of XXH3-128 over the file's
bytes, or for a folder over the stream that concatenates, for each regular file
in the order of its relative POSIX path as bytes, the path bytes, a NUL byte,
the size as 8-byte big-endian, and the content.  Empty folders do not count;
a symbolic link inside a folder asset is refused.  Files are streamed in
:data:`CHUNK`-sized pieces (constant memory), and copying hashes the bytes it
writes in the same pass.

This module never imports a UI library: progress is reported through a
:data:`ProgressHook` that the caller may pass.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molexp.errors import UsageError

HASH_PREFIX = "xxh3_128:"
CHUNK = 1 << 20  # bytes read, hashed (and written) at a time

Advance = Callable[[int], None]
#: ``hook(label, total_bytes)`` is called before hashing; it returns ``advance(n)``.
ProgressHook = Callable[[str, int], Advance]


def _no_progress(_n: int) -> None:
    return None


@dataclass
class Content:
    """What a file or folder holds, as hashed."""

    kind: str
    size: int
    files: int
    content_hash: str


@dataclass
class Tree:
    """A folder's regular files in hash order, and its subfolders (parents first)."""

    files: list[tuple[str, int]]  # (relative POSIX path, size)
    dirs: list[str]

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files)


class ChangedWhileReadingError(UsageError):
    """A file's size changed while it was being hashed or copied."""


def _new_hasher() -> Any:
    import xxhash

    return xxhash.xxh3_128()


def _format(hasher: Any) -> str:
    return HASH_PREFIX + str(hasher.hexdigest())


def walk(root: Path) -> Tree:
    """List ``root`` (refusing symbolic links and special files inside it)."""
    files: list[tuple[str, int]] = []
    dirs: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as entries:
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    raise UsageError(
                        f"{root}: contains the symbolic link {path!r}; a folder asset holds "
                        "only regular files and folders",
                        "Copy the target in place of the link, or add it as its own asset.",
                    )
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(path)
                    stack.append(path)
                elif entry.is_file(follow_symlinks=False):
                    files.append((path, entry.stat(follow_symlinks=False).st_size))
                else:
                    raise UsageError(
                        f"{root}: {path!r} is not a regular file or folder (device, pipe or "
                        "socket); a folder asset cannot hold it"
                    )
    files.sort(key=lambda item: os.fsencode(item[0]))
    return Tree(files, dirs)


def _entry_header(rel: str, size: int) -> bytes:
    return os.fsencode(rel) + b"\0" + size.to_bytes(8, "big")


def _stream(
    src: Path,
    hasher: Any,
    buf: bytearray,
    advance: Advance,
    expected: int | None = None,
    out_fd: int | None = None,
) -> int:
    """Feed ``src`` into ``hasher`` (and ``out_fd``) chunk by chunk; return its size."""
    view = memoryview(buf)
    total = 0
    with open(src, "rb", buffering=0) as fh:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            chunk = view[:n]
            hasher.update(chunk)
            if out_fd is not None:
                while chunk:
                    chunk = chunk[os.write(out_fd, chunk) :]
            total += n
            advance(n)
    if expected is not None and total != expected:
        raise ChangedWhileReadingError(
            f"{src}: changed size while being read ({expected} → {total} bytes)",
            "Try again once nothing is writing to it.",
        )
    return total


def kind_of(path: Path) -> str:
    """``file`` or ``dir``; :class:`UsageError` for anything else or a missing path."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    raise UsageError(f"{path}: not a regular file or folder")


def _open_progress(progress: ProgressHook | None, label: str, total: int) -> Advance:
    return progress(label, total) if progress is not None else _no_progress


def hash_path(path: Path, progress: ProgressHook | None = None, label: str = "hash") -> Content:
    """The :class:`Content` of a file or folder (SPEC §11 content hash)."""
    return _digest(path, None, progress, label)


def copy_hashing(
    src: Path, dst: Path, progress: ProgressHook | None = None, label: str = "copy"
) -> Content:
    """Copy a file or folder to ``dst`` (which must not exist), hashing in the same pass."""
    return _digest(src, dst, progress, label)


def _digest(src: Path, dst: Path | None, progress: ProgressHook | None, label: str) -> Content:
    kind = kind_of(src)
    hasher = _new_hasher()
    buf = bytearray(CHUNK)
    if kind == "file":
        advance = _open_progress(progress, label, src.stat().st_size)
        size = _feed(src, dst, hasher, buf, advance)
        return Content("file", size, 1, _format(hasher))
    tree = walk(src)
    advance = _open_progress(progress, label, tree.size)
    if dst is not None:
        dst.mkdir()
        for rel in tree.dirs:  # parents come before their children
            (dst / rel).mkdir()
    for rel, size in tree.files:
        hasher.update(_entry_header(rel, size))
        _feed(src / rel, None if dst is None else dst / rel, hasher, buf, advance, size)
    return Content("dir", tree.size, len(tree.files), _format(hasher))


def _feed(
    src: Path,
    dst: Path | None,
    hasher: Any,
    buf: bytearray,
    advance: Advance,
    expected: int | None = None,
) -> int:
    """Hash one file (copying it to ``dst`` if given, created with the user's umask)."""
    if dst is None:
        return _stream(src, hasher, buf, advance, expected)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(dst, flags, 0o666 | (src.stat().st_mode & 0o111))  # exec bits as the source
    try:
        return _stream(src, hasher, buf, advance, expected, out_fd=fd)
    finally:
        os.close(fd)


def quick_size(path: Path, kind: str) -> int:
    """The size a hash would count, from ``stat`` alone (no byte is read)."""
    return path.stat().st_size if kind == "file" else walk(path).size
