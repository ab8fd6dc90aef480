"""Output, chosen once: rich tables on a terminal, plain text when piped, JSON.

stdout is data, stderr is talk.  ``NO_COLOR`` and ``--no-color`` are honoured.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

_color: bool | None = None  # None: decide from the terminal and NO_COLOR


def set_color(value: bool | None) -> None:
    global _color
    _color = value


def color_enabled(stream: Any = None) -> bool:
    if _color is not None:
        return _color
    if os.environ.get("NO_COLOR"):
        return False
    return is_tty(stream or sys.stdout)


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def say(message: str) -> None:
    """A message for the user, on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def error(message: str) -> None:
    prefix = "\x1b[31merror:\x1b[0m " if color_enabled(sys.stderr) else "error: "
    say(prefix + message)


def confirm(question: str) -> bool | None:
    """Ask ``question`` (yes/no, default no) on the terminal; None, without asking,
    unless both stdin and stderr are terminals: a script, a CI job or a Makefile
    never waits for an answer (the command then asks for ``--yes`` instead)."""
    if not (is_tty(sys.stdin) and is_tty(sys.stderr)):
        return None
    import typer

    return bool(typer.confirm(question, default=False, err=True))


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(
        file=stream,
        no_color=not color_enabled(stream),
        highlight=False,
        soft_wrap=False,
    )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def print_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def seconds(value: Any) -> str | None:
    """A duration for people, the one way molexp prints it: ``4.34s`` (JSON and
    CSV keep the number of seconds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return f"{value:.2f}s"


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    texts: bool = False,
) -> None:
    """A rich table on a terminal; aligned plain text (no box characters) when piped.

    ``texts``: every cell is text already (as :func:`cell` would make it)."""
    cells = rows if texts else [[cell(v) for v in row] for row in rows]
    if is_tty(sys.stdout):
        from rich.table import Table

        table = Table(title=title, show_edge=False, header_style="bold")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in cells:
            table.add_row(*row)
        console().print(table)
        return
    widths = [len(c) for c in columns]
    if cells:  # (column by column: each max() runs over one column in C)
        widths = [max(w, *map(len, col)) for w, col in zip(widths, zip(*cells))]
    ljust = str.ljust
    write = sys.stdout.write
    write("  ".join(map(ljust, columns, widths)).rstrip() + "\n")
    for start in range(0, len(cells), 4096):  # written a block at a time, not held whole
        block = ["  ".join(map(ljust, row, widths)).rstrip() for row in cells[start : start + 4096]]
        write("\n".join(block) + "\n")


def print_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(v) for v in row])


def print_markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    sys.stdout.write("| " + " | ".join(esc(c) for c in columns) + " |\n")
    sys.stdout.write("|" + "|".join("---" for _ in columns) + "|\n")
    for row in rows:
        sys.stdout.write("| " + " | ".join(esc(cell(v)) for v in row) + " |\n")


def print_kv(pairs: Sequence[tuple[str, Any]]) -> None:
    """``key: value`` lines (a record shown by `show` when piped or on a terminal)."""
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        sys.stdout.write(f"{key.ljust(width)}  {cell(value)}\n")


def say_constant(constant: dict[str, Any], shown: int = 8) -> None:
    """Name, on stderr, the columns a comparison hides because every row has the
    same value (``--all`` shows them)."""
    same = [f"{k}={cell(v)}" for k, v in constant.items()]
    more = len(same) - shown
    tail = f" and {more} more" if more > 0 else ""
    say(f"same in every run: {', '.join(same[:shown])}{tail} (--all shows them)")


def report_problems(problems: Sequence[BaseException]) -> None:
    """After a listing: name each record that could not be read, then exit 3.

    One bad record never hides the others (SPEC §8): the readable ones were
    printed already; each problem gets one line on stderr.
    """
    if not problems:
        return
    for problem in problems:
        error(str(problem).splitlines()[0])
    say(f"{len(problems)} record(s) could not be read; `molexp doctor` lists them all.")
    import typer

    raise typer.Exit(3)
