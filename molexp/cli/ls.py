"""molexp ls: list runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import typer

from molexp.cli import complete, output, state

if TYPE_CHECKING:
    from molexp.core.views.listing import Selection

FORMATS = ("table", "json", "csv", "ids")


def _when(stamp: Any) -> Any:
    """``2026-11-25T16:03:17.123456+00:00`` -> ``2026-11-25 16:03:17`` (UTC)."""
    return stamp[:19].replace("T", " ") if isinstance(stamp, str) else stamp


def ls(
    ref: str | None = typer.Argument(
        None,
        autocompletion=complete.container_ref,
        help="PROJECT or PROJECT/EXPERIMENT (default: all).",
    ),
    status: list[str] | None = typer.Option(
        None, "--status", "-s", help="Only runs with this status (repeatable)."
    ),
    where: list[str] | None = typer.Option(
        None,
        "--where",
        help="A condition, e.g. 'results.energy<-1.3', 'lr>=1e-3', 'tags=good', 'status!=failed' (= != < <= > >= ~; repeatable, all must hold; see docs/questions.md).",
    ),
    sort: list[str] | None = typer.Option(
        None,
        "--sort",
        help="Sort by a key, e.g. -metrics.loss (- for descending; repeatable; missing values last).",
    ),
    limit: int | None = typer.Option(None, "--limit", "-n", help="At most N runs (after sorting)."),
    tag: list[str] | None = typer.Option(
        None,
        "--tag",
        "-t",
        autocompletion=complete.tag_name,
        help="Only runs tagged TAG (repeatable: every tag).",
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, csv or ids."),
) -> None:
    """List runs with their status; unreadable records are named on stderr (exit 3)."""
    from molexp.core.views.listing import select_ref
    from molexp.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    listing = select_ref(
        state.workspace(), ref, status or [], where or [], sort or [], limit, tag or []
    )
    render(listing, fmt)
    for problem in listing.problems:
        output.error(str(problem).splitlines()[0])
    if listing.problems:
        output.say(
            f"{len(listing.problems)} record(s) could not be read; `molexp doctor` lists them all."
        )
        raise typer.Exit(3)


def render(listing: Selection, fmt: str) -> None:
    """Print the selected runs; only JSON reads full records (one at a time)."""
    if fmt == "json":
        _print_json_array(listing.records_json())
        return
    from molexp.core.views import query

    if fmt == "ids":
        sys.stdout.write("".join(f"{r.ref}\n" for r in listing.rows))
        return
    columns = [
        "run",
        "status",
        "replica",
        "profile",
        "params",
        "attempts",
        "duration",
        "updated (UTC)",
    ]
    # The keys a query names (metrics.loss, results.energy...) get a column each.
    asked = [k for k in dict.fromkeys([*(c.key for c in listing.where), *(k.key for k in listing.sort)])
             if k not in ("status", "replica", "profile", "tags")]  # fmt: skip
    getters = [query.getter(k) for k in asked]
    columns += asked
    # Cells become text at once, and equal cells share one text: 100,000 rows of values
    # and then of texts would double the memory (docs/performance.md).
    shown: dict[Any, str] = {}  # by value (with its type: 1, 1.0 and True differ)
    by_id: dict[int, tuple[Any, str]] = {}  # dicts and lists (the value keeps its id unique)

    def text(value: Any) -> str:
        if type(value) is str:
            return value
        if isinstance(value, (dict, list)):
            found = by_id.get(id(value))
            if found is None:
                found = by_id[id(value)] = (value, output.cell(value))
            return found[1]
        key = (type(value), value)
        found_text = shown.get(key)
        if found_text is None:
            found_text = shown[key] = output.cell(value)
        return found_text

    # The common cells without a call: text as it is, integers and durations by value,
    # params (one object per distinct value) by identity.
    ints: dict[int, str] = {}
    durations: dict[float, str] = {}
    rows: list[tuple[str, ...]] = []
    tag_cells: list[str] = []
    tagged = False
    missing = query.MISSING
    for row, (status, replica, profile, params, count, duration, updated, tags) in listing.brief(
        release=True
    ):
        if type(replica) is int:
            replica = ints.get(replica) or ints.setdefault(replica, text(replica))
        if type(count) is int:
            count = ints.get(count) or ints.setdefault(count, text(count))
        if type(duration) is float and duration:  # (0.0 and -0.0 are equal keys)
            duration = durations.get(duration) or durations.setdefault(
                duration, text(output.seconds(duration))
            )
        else:
            duration = text(output.seconds(duration))
        cells: tuple[str, ...] = (row.ref, status if type(status) is str else text(status), replica if type(replica) is str else text(replica),
                 profile if type(profile) is str else text(profile), text(params),
                 count if type(count) is str else text(count), duration,
                 updated[:19].replace("T", " ") if type(updated) is str else output.cell(_when(updated)))  # fmt: skip
        if getters:
            cells += tuple(text(None if (v := get(row)) is missing else v) for get in getters)
        rows.append(cells)
        if tags:
            tagged = True
        tag_cells.append(" ".join(map(str, tags)) if isinstance(tags, list) else "")
    if tagged:  # a tags column once some listed run has tags
        columns.append("tags")
        rows = [(*r, t) for r, t in zip(rows, tag_cells)]
    del tag_cells
    if fmt == "csv":
        output.print_csv(columns, rows)
    else:
        output.print_table(columns, rows, texts=True)


def _print_json_array(records: Iterable[bytes | dict[str, Any]]) -> None:
    """``output.print_json(list(records))``, written as the records are read.

    A record given as bytes is a ``run.json`` as molexp wrote it (the same
    ``indent=2`` encoding), nested as it is."""
    sys.stdout.flush()
    out = sys.stdout.buffer
    write = out.write
    first = True
    for record in records:
        if isinstance(record, bytes):
            data = record[:-1]  # its final newline
        else:
            data = json.dumps(record, indent=2, ensure_ascii=False).encode()
        write((b"[\n  " if first else b",\n  ") + data.replace(b"\n", b"\n  "))
        first = False
    write(b"[]\n" if first else b"\n]\n")
    out.flush()
