"""The signatures of many files, fast on a warm disk, a cold one and NFS alike.

A listing ``stat``s every ``run.json`` (:mod:`molexp.core.records.index`).  On a
warm page cache a ``stat`` costs ~2.5 µs of kernel time and threads only add
contention for the interpreter lock; on a cold cache (~50 µs: the run directory's
block is read from disk) or over NFS (a round trip to the server, often more) each
one waits, and waiting is what threads do well.  So the first few files of each
directory are timed one by one, and when the median one was slow the rest, and every later
directory, are looked at by :data:`THREADS` threads at once.  Either way every file
is ``stat``-ed, now.
"""

from __future__ import annotations

import marshal
import operator
import os
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

THREADS = 16
PROBE = 32  # files timed one by one, first
SLOW_S = 20e-6  # a median stat slower than this: the disk is waited for
CHUNK = 64

_pool: Any = None


def signature(st: os.stat_result) -> str:
    """What an index entry records of a file: mtime, ctime, inode and size."""
    return _format(_fields(st))


_fields = operator.attrgetter("st_mtime_ns", "st_ctime_ns", "st_ino", "st_size")
_format = "%d %d %d %d".__mod__  # (signature's text)


def _some(dir_fd: int, paths: Sequence[str]) -> list[str | None]:
    try:  # (no Python code per file)
        return list(map(_format, map(_fields, map(partial(os.stat, dir_fd=dir_fd), paths))))
    except OSError:
        pass
    stat = os.stat
    out: list[str | None] = []
    for path in paths:
        try:
            st = stat(path, dir_fd=dir_fd)
        except OSError:
            out.append(None)  # (the caller reads the file, and says why it cannot)
            continue
        out.append(_format(_fields(st)))
    return out


def _probe(dir_fd: int, paths: Sequence[str]) -> tuple[list[str | None], float]:
    """:func:`_some` of ``paths``, and the median time one ``stat`` took: a disk
    that is waited for makes every ``stat`` slow, a busy machine (this process
    waiting for a core) only some."""
    clock = time.perf_counter
    out: list[str | None] = []
    took: list[float] = []
    for path in paths:
        start = clock()
        out += _some(dir_fd, (path,))
        took.append(clock() - start)
    took.sort()
    return out, took[len(took) // 2] if took else 0.0


def signatures(dir_fd: int, paths: Sequence[str]) -> list[str | None]:
    """:func:`signature` of each of ``paths`` (relative to ``dir_fd``; None for one
    that cannot be ``stat``-ed), in order."""
    global _pool
    if _pool is None:  # (once slow, the next directories are too: no probe)
        out, median = _probe(dir_fd, paths[:PROBE])
        rest = paths[PROBE:]
        if not rest:
            return out
        if median < SLOW_S:
            return out + _some(dir_fd, rest)
    else:
        out, rest = [], paths
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="molexp-stat")
    chunks = [rest[i : i + CHUNK] for i in range(0, len(rest), CHUNK)]
    for part in _pool.map(lambda chunk: _some(dir_fd, chunk), chunks):
        out += part
    return out


class Ahead:
    """The names and signatures in some directories, taken by a child process
    (``fork``) while this one does other work: on two cores, a listing's
    ``stat``s (kernel time, most of a warm scan) are then made side by side.

    :meth:`take` gives, for one of the directories, its entries' names (sorted,
    without dot files) and the :func:`signature` of ``<name><suffix>`` for each,
    as :func:`signatures` would (taken during the listing, from the files
    themselves); None when the child could not tell (the caller looks itself)."""

    def __init__(self, dirs: Sequence[str], suffix: str) -> None:
        self._dirs = list(dirs)
        self._got: dict[str, tuple[list[str], list[str | None]]] | None = None
        read_fd, write_fd = os.pipe()
        self._fd = read_fd
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - the child (coverage is not saved by _exit)
            code = 1
            try:
                os.close(read_fd)
                global _pool
                _pool = None  # (threads do not survive a fork)
                found = []
                for path in self._dirs:
                    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        with os.scandir(fd) as entries:  # (in inode order: a cold disk reads less)
                            made = sorted((e.inode(), e.name) for e in entries if e.name[0] != ".")
                        order = [name for _, name in made]
                        got = dict(zip(order, signatures(fd, [n + suffix for n in order])))
                        names = sorted(order)
                        found.append((names, [got[n] for n in names]))
                    finally:
                        os.close(fd)
                data = marshal.dumps(found)
                view = memoryview(data)
                while view:
                    view = view[os.write(write_fd, view) :]
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)

    def take(self, path: str) -> tuple[list[str], list[str | None]] | None:
        if self._got is None:
            self._got = {}
            chunks = []
            try:
                while chunk := os.read(self._fd, 1 << 20):
                    chunks.append(chunk)
            finally:
                self.close()
            try:
                found = marshal.loads(b"".join(chunks))
                if isinstance(found, list) and len(found) == len(self._dirs):
                    self._got = dict(zip(self._dirs, found))
            except (ValueError, EOFError, TypeError):
                pass  # the child failed (a directory gone meanwhile...): looked at here
        return self._got.get(path)

    def close(self) -> None:
        """Let the child go (idempotent)."""
        if self._pid > 0:
            os.close(self._fd)
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:
                pass
            self._pid = 0
