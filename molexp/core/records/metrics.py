"""Metrics over time (SPEC §14): the ``attempts/<n>/metrics.jsonl`` a command appends to.

One JSON object a line, ``{"step": 100, "energy": -1.31, "T": 301.2}``: ``step`` is
optional (default: the line's number, from 1), ``time`` (Unix seconds) is written by
``ctx.log``; every other key is a metric, and several may share a line.  The
command only appends (``echo ... >> "$MOLEXP_METRICS_FILE"``, ``ctx.log``); molexp
only reads: :func:`read` for the series, :func:`fold` for the last value of each
metric, which the lifecycle folds into the record when an attempt ends (so that
listings never read metric files).

Reading never fails on the content: a torn last line (a command killed mid-write)
is ignored, and so is any line that is not a JSON object (counted in
:attr:`Read.ignored`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

METRICS_FILE = "metrics.jsonl"
RESERVED = ("step", "time")  # keys of a line that are not metrics


class Point(NamedTuple):
    """One line of a metrics file: its step, time (or None) and metric values."""

    line: int  # 1-based line number in the file
    step: Any
    time: Any
    values: dict[str, Any]


class Read(NamedTuple):
    """What :func:`read` found from ``offset`` on."""

    points: list[Point]
    ignored: int  # complete lines that are not JSON objects
    offset: int  # where the next read starts (after the last complete line)
    lines: int  # lines consumed so far (line numbers continue from here)
    torn: bool  # an unreadable last line was left out


def _point(number: int, raw: bytes) -> Point | None:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if type(data) is not dict:
        return None
    step = data.pop("step", None)
    if type(step) not in (int, float):
        step = number
    stamp = data.pop("time", None)
    return Point(number, step, stamp if type(stamp) in (int, float) else None, data)


def read(path: Path, offset: int = 0, lines: int = 0, final: bool = True) -> Read:
    """The points of ``path`` from byte ``offset`` (``lines`` lines already read).

    A last line without its newline is read when ``final`` (the command has ended)
    if it parses, and ignored as torn if it does not; while the command may still
    be writing it (``final`` false) it is left for the next read.  A missing file
    has no points.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return Read([], 0, offset, lines, False)
    end = data.rfind(b"\n") + 1
    complete, tail = data[:end], data[end:]
    points: list[Point] = []
    ignored = 0
    torn = False
    for raw in complete.splitlines():
        lines += 1
        if not raw.strip():
            continue
        point = _point(lines, raw)
        if point is None:
            ignored += 1
        else:
            points.append(point)
    consumed = offset + end
    if tail.strip() and final:
        point = _point(lines + 1, tail)
        if point is None:
            torn = True
        else:
            points.append(point)
            lines += 1
        consumed += len(tail)
    return Read(points, ignored, consumed, lines, torn)


def _storable(value: Any) -> Any:
    """A value as a record can hold it: non-finite numbers become null."""
    if type(value) is float and not math.isfinite(value):
        return None
    if isinstance(value, (dict, list)):
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            return None
    return value


def summarise(points: list[Point]) -> dict[str, dict[str, Any]]:
    """``{name: {"last": value, "step": step of that value, "n": points}}`` in the
    order the names first appear."""
    out: dict[str, dict[str, Any]] = {}
    for point in points:
        for name, value in point.values.items():
            seen = out.get(name)
            if seen is None:
                out[name] = {"last": value, "step": point.step, "n": 1}
            else:
                seen["last"] = value
                seen["step"] = point.step
                seen["n"] += 1
    for seen in out.values():
        seen["last"] = _storable(seen["last"])
        seen["step"] = _storable(seen["step"])
    return out


def fold(path: Path, final: bool = True) -> dict[str, dict[str, Any]] | None:
    """:func:`summarise` of a metrics file; None when it holds no metric."""
    if not os.path.exists(path):
        return None
    return summarise(read(path, final=final).points) or None


def last_values(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{name: last value}``: what a record's ``metrics`` holds."""
    return {name: seen["last"] for name, seen in summary.items()}


def live(record: dict[str, Any], run_dir: Path) -> None:
    """For a record that says ``running`` (even if its owner is gone): the metrics of
    its current attempt, read from the file now, as the record's ``metrics`` and as
    ``metrics_live`` (``{"attempt": n, "metrics": summary}``).  Only the view
    changes: the lifecycle folds the file into ``run.json`` when the attempt ends."""
    attempts = record.get("attempts") or []
    recorded = record.get("recorded_status") or record.get("status")  # (before observing)
    if recorded != "running" or not attempts or type(attempts[-1]) is not dict:
        return
    n = attempts[-1].get("n")
    summary = fold(run_dir / "attempts" / str(n) / METRICS_FILE, final=False)
    if summary:
        record["metrics"] = last_values(summary)
        record["metrics_live"] = {"attempt": n, "metrics": summary}
