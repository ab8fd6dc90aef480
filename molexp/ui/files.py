"""Which workspace files the web view may serve, and how.

Only regular files below the record's own folders (``projects/``, ``assets/``,
``environments/``) are served.  A request path is refused when any of its parts
is empty, ``.`` or ``..``, starts with a dot (``.molexp/`` internals, ``.lock``,
``.trash/``, temporary files), or holds a NUL or a backslash; and when the file,
with every symlink resolved, lies outside the workspace or below one of those
hidden folders.  Served files get a sandboxing Content-Security-Policy, so an
HTML or SVG artifact cannot run script in the view's origin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

SERVED_DIRS = ("projects", "assets", "environments")

# Shown in the browser as they are (text as plain text: an HTML artifact is
# shown as its source); anything else is downloaded.
_TEXT = {
    ".log", ".txt", ".json", ".jsonl", ".csv", ".tsv", ".yaml", ".yml", ".md", ".patch",
    ".diff", ".py", ".sh", ".toml", ".ini", ".cfg", ".xyz", ".pdb", ".dat", ".out", ".err",
    ".html", ".htm", ".xml", ".in", ".lammps", ".inp",
}  # fmt: skip
_INLINE = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".pdf": "application/pdf",
}


class Refused(Exception):
    """A request for a file the view does not serve (``status``: 403 or 404)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Served(NamedTuple):
    path: Path  # the real path (symlinks resolved)
    size: int
    content_type: str
    attachment: bool  # download rather than show


def _check_parts(rel: str) -> list[str]:
    if "\0" in rel or "\\" in rel:
        raise Refused(403, "the path holds a NUL or a backslash")
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise Refused(403, "the path is not normalised (empty, '.' or '..' part)")
        if part.startswith("."):
            raise Refused(403, f"hidden part {part!r}: molexp's internals are not served")
    if parts[0] not in SERVED_DIRS:
        raise Refused(403, f"only files below {', '.join(SERVED_DIRS)} are served")
    return parts


def resolve(root: Path, rel: str, download: bool = False) -> Served:
    """The file that the workspace-relative ``rel`` (URL-decoded, ``/``-separated)
    names, checked as the module docstring says; :class:`Refused` otherwise."""
    parts = _check_parts(rel)
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, real]) != real_root:
        raise Refused(403, "the path leads outside the workspace (a symlink)")
    inside = os.path.relpath(real, real_root).split(os.sep)
    if inside[0] not in SERVED_DIRS or any(p.startswith(".") for p in inside):
        raise Refused(403, "the path leads into molexp's internals (a symlink)")
    try:
        st = os.stat(real)
    except OSError:
        raise Refused(404, "no such file") from None
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise Refused(404, "not a file")
    suffix = os.path.splitext(real)[1].lower()
    if suffix in _INLINE:
        kind, attach = _INLINE[suffix], download
    elif suffix in _TEXT or _looks_like_text(real):
        kind, attach = "text/plain; charset=utf-8", download
    else:
        kind, attach = "application/octet-stream", True
    return Served(Path(real), st.st_size, kind, attach)


def _looks_like_text(path: str) -> bool:
    """No NUL byte and valid UTF-8 in the first 4 KiB (a log without a suffix)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut by the 4 KiB limit
    return True


def workspace_path(root: Path, path: Path) -> str | None:
    """``path`` as the URL part below ``/files/`` (None when it is not served)."""
    try:
        rel = path.relative_to(root).as_posix()
        _check_parts(rel)
    except (ValueError, Refused):
        return None
    return rel
