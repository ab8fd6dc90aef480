"""A run's logs (SPEC §16): ``attempts/<n>/stdout.log`` and ``stderr.log``.

:func:`locate` finds the logs of an attempt from a reference, :func:`tail`
reads the last lines of a file without reading all of it, and :func:`follow`
yields what the files gain while the attempt runs.  Nothing here writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from molexp.core.records.refs import resolve
from molexp.core.records.runs import ACTIVE, RUN_FILE, load_record, observe
from molexp.core.records.workspace import Workspace
from molexp.errors import MolexpError, NotFoundError, UsageError

STREAMS = ("stdout", "stderr")
TAIL_LINES = 10  # what `show` and `run` print of a failed run's stderr
_BLOCK = 1 << 16


class Logs(NamedTuple):
    """Where the logs of one attempt are."""

    ref: str  # PROJECT/EXPERIMENT/RUN_ID
    attempt: int
    run_dir: Path
    project: str
    experiment: str

    def path(self, stream: str) -> Path:
        return self.run_dir / "attempts" / str(self.attempt) / f"{stream}.log"

    def running(self) -> bool:
        """Whether this attempt may still write (its run is active, and it is the
        latest attempt, as things are now)."""
        try:
            record = load_record(self.run_dir / RUN_FILE, self.project, self.experiment)
        except (OSError, MolexpError):  # gone or turned unreadable: stop following
            return False
        attempts = record.get("attempts") or []
        if not attempts or attempts[-1].get("n") != self.attempt:
            return False
        return observe(record, self.run_dir)[0] in ACTIVE


def locate(ws: Workspace, text: str, attempt: int | None = None) -> Logs:
    """The logs of ``attempt`` (default: the latest) of the run ``text`` names."""
    target = resolve(ws, text)
    if target.kind != "run" or target.experiment is None or target.run_id is None:
        raise UsageError(
            f"molexp logs takes a run; {text!r} is a {target.kind}",
            f"`molexp ls {target.text}` lists its runs.",
        )
    exp = target.experiment
    run_dir = exp.runs_dir / target.run_id
    record = load_record(run_dir / RUN_FILE, exp.project.name, exp.name)
    numbers = [int(a["n"]) for a in record.get("attempts") or [] if isinstance(a.get("n"), int)]
    if not numbers:
        raise NotFoundError(
            f"run {target.text} has no attempts yet", f"Run it: `molexp run {exp.ref}`."
        )
    if attempt is None:
        attempt = numbers[-1]
    elif attempt not in numbers:
        raise NotFoundError(
            f"run {target.text} has no attempt {attempt}",
            f"Its attempts: {', '.join(map(str, numbers))}.",
        )
    return Logs(target.text, attempt, run_dir, exp.project.name, exp.name)


def tail(path: Path, lines: int | None) -> bytes:
    """The last ``lines`` lines of ``path`` (all of it when None; b"" if missing),
    read from the end in blocks (a log of gigabytes costs what its tail costs)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return b""
    with fh:
        if lines is None:
            return fh.read()
        if lines <= 0:
            return b""
        end = fh.seek(0, os.SEEK_END)
        data = b""
        pos = end
        # one more newline than lines asked: the file's own final newline
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
        body = data[:-1] if data.endswith(b"\n") else data
        cut = body.split(b"\n")[-lines:]
        return b"\n".join(cut) + (b"\n" if data.endswith(b"\n") else b"")


def tail_lines(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """:func:`tail` as text lines (for `show` and `run` of a failed run)."""
    return tail(path, lines).decode("utf-8", errors="replace").splitlines()


def follow(
    logs: Logs,
    streams: Sequence[str],
    lines: int | None = None,
    poll: float = 0.2,
    running: Callable[[], bool] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """``(stream, bytes)``: each file's content (its last ``lines`` lines), then what
    it gains, until the attempt has ended and every file is read to its end."""
    alive = running or logs.running
    offsets: dict[str, int] = {}
    for stream in streams:
        path = logs.path(stream)
        start = tail(path, lines)
        offsets[stream] = _size(path)
        if start:
            yield stream, start
    while True:
        active = alive()  # asked before reading: what it wrote up to now is read below
        for stream in streams:
            path = logs.path(stream)
            size = _size(path)
            if size < offsets[stream]:
                offsets[stream] = 0  # truncated or replaced: read it anew
            if size > offsets[stream]:
                with open(path, "rb") as fh:
                    fh.seek(offsets[stream])
                    chunk = fh.read(size - offsets[stream])
                offsets[stream] += len(chunk)
                yield stream, chunk
        if not active:
            return
        time.sleep(poll)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
