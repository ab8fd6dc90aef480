"""`molexp metrics RUN`: the series a run recorded over time (SPEC §14), read only.

:func:`series` reads one attempt's ``metrics.jsonl`` (the latest by default);
:func:`follow` yields what a running attempt appends until the run ends.  Rendering
(tables, JSON, plots) is the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from molexp.core.records.metrics import METRICS_FILE, Point, Read, read
from molexp.core.records.refs import Ref, resolve
from molexp.core.records.runs import ACTIVE
from molexp.core.records.workspace import Workspace
from molexp.errors import NotFoundError, UsageError

POLL = 0.25  # seconds between two looks at a running attempt


class Series(NamedTuple):
    """The points of one attempt of a run, as read now."""

    ref: str  # PROJECT/EXPERIMENT/RUN_ID
    attempt: int | None  # None: the run has no attempt yet
    path: Path | None  # its metrics.jsonl
    status: str  # the run's status, as observed now
    points: list[Point]
    names: list[str]  # metric names, in the order they first appear
    ignored: int  # lines that were not JSON objects
    torn: bool  # a torn last line was left out
    offset: int  # where reading goes on (follow)
    lines: int


def names_of(points: Sequence[Point], into: list[str] | None = None) -> list[str]:
    out = [] if into is None else into
    seen = set(out)
    for point in points:
        for name in point.values:
            if name not in seen:
                seen.add(name)
                out.append(name)
    return out


def _target(ws: Workspace, text: str) -> Ref:
    target = resolve(ws, text)
    if target.kind != "run":
        raise UsageError(
            f"molexp metrics shows one run; {text!r} is a {target.kind}",
            f"To compare the last values of its runs: `molexp compare {text}`.",
        )
    return target


def _record(target: Ref) -> dict[str, Any]:
    from molexp.core.views.summary import run_record

    return run_record(target)


def _attempt(record: dict[str, Any], ref: str, wanted: int | None) -> int | None:
    numbers = [a.get("n") for a in record.get("attempts") or [] if isinstance(a, dict)]
    if wanted is None:
        return numbers[-1] if numbers else None
    if wanted not in numbers:
        have = f"its attempts are {', '.join(map(str, numbers))}" if numbers else "it has none yet"
        raise NotFoundError(f"run {ref} has no attempt {wanted}; {have}")
    return wanted


def series(
    ws: Workspace, text: str, attempt: int | None = None, metrics: Sequence[str] = ()
) -> Series:
    """The points of attempt ``attempt`` (default: the latest) of the run ``text``
    names, keeping only the ``metrics`` named (default: all; a name the attempt
    never recorded is a :class:`UsageError` once the run has ended)."""
    target = _target(ws, text)
    record = _record(target)
    ref = f"{record['project']}/{record['experiment']}/{record['id']}"
    n = _attempt(record, ref, attempt)
    path = Path(record["run_dir"]) / "attempts" / str(n) / METRICS_FILE if n else None
    running = record["status"] in ACTIVE and n == _attempt(record, ref, None)
    found = read(path, final=not running) if path else Read([], 0, 0, 0, False)
    names = names_of(found.points)
    if metrics:
        unknown = [m for m in metrics if m not in names]
        if unknown and not running:
            from difflib import get_close_matches

            close = get_close_matches(unknown[0], names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            have = ", ".join(names) if names else "none"
            raise UsageError(f"run {ref} has no metric {unknown[0]!r} (attempt {n}: {have}){hint}")
        names = list(metrics)
    points = _keep(found.points, metrics)
    return Series(ref, n, path, record["status"], points, names, found.ignored, found.torn,
                  found.offset, found.lines)  # fmt: skip


def _keep(points: list[Point], metrics: Sequence[str]) -> list[Point]:
    if not metrics:
        return points
    wanted = set(metrics)
    out = []
    for point in points:
        values = {k: v for k, v in point.values.items() if k in wanted}
        if values:
            out.append(point._replace(values=values))
    return out


def follow(
    ws: Workspace,
    text: str,
    start: Series,
    metrics: Sequence[str] = (),
    fixed_attempt: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[Point]]:
    """The points appended after ``start`` while the run is queued or running,
    batch by batch (an empty batch at each look, so the caller can react); it ends
    once the run has ended and its last lines are read.  Following the latest
    attempt (not ``fixed_attempt``), a new attempt's file is followed from its start.
    """
    target = _target(ws, text)
    attempt, offset, lines = start.attempt, start.offset, start.lines
    path = start.path
    status = start.status
    while status in ACTIVE:
        sleep(POLL)
        record = _record(target)
        status = record["status"]
        if not fixed_attempt:
            latest = _attempt(record, start.ref, None)
            if latest != attempt:
                attempt, offset, lines = latest, 0, 0
                path = Path(record["run_dir"]) / "attempts" / str(latest) / METRICS_FILE
        if path is None:
            yield []
            continue
        found = read(path, offset, lines, final=status not in ACTIVE)
        offset, lines = found.offset, found.lines
        yield _keep(found.points, metrics)
