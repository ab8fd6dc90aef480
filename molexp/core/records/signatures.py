"""The signatures of many files, fast on a warm disk, a cold one and NFS alike.

A listing ``stat``s every ``run.json`` (:mod:`molexp.core.records.index`).  On a
warm page cache a ``stat`` costs ~2.5 µs of kernel time and threads only add
contention for the interpreter lock; on a cold cache (~50 µs: the run directory's
block is read from disk) or over NFS (a round trip to the server, often more) each
one waits, and waiting is what threads do well.  So the first few files of each
directory are timed one by one, and when they were slow the rest, and every later
directory, are looked at by :data:`THREADS` threads at once.  Either way every file
is ``stat``-ed, now.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

THREADS = 16
PROBE = 32  # files timed one by one, first
SLOW_S = 20e-6  # a stat slower than this on average: the disk is waited for
CHUNK = 64

_pool: Any = None


def signature(st: os.stat_result) -> str:
    """What an index entry records of a file: mtime, ctime, inode and size."""
    return f"{st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} {st.st_size}"


def _some(dir_fd: int, paths: Sequence[str]) -> list[str | None]:
    stat = os.stat
    out: list[str | None] = []
    for path in paths:
        try:
            st = stat(path, dir_fd=dir_fd)
        except OSError:
            out.append(None)  # (the caller reads the file, and says why it cannot)
            continue
        out.append(f"{st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} {st.st_size}")
    return out


def signatures(dir_fd: int, paths: Sequence[str]) -> list[str | None]:
    """:func:`signature` of each of ``paths`` (relative to ``dir_fd``; None for one
    that cannot be ``stat``-ed), in order."""
    global _pool
    if _pool is None:  # (once slow, the next directories are too: no probe)
        start = time.perf_counter()
        out = _some(dir_fd, paths[:PROBE])
        rest = paths[PROBE:]
        if not rest:
            return out
        if (time.perf_counter() - start) / PROBE < SLOW_S:
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
