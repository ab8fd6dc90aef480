"""molexp export / molexp import: move runs between workspaces as a .tar.gz bundle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from molexp.cli import complete, output, state
from molexp.errors import EXIT_REFUSED, UsageError


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def export(
    refs: list[str] = typer.Argument(
        ...,
        autocompletion=complete.ref,
        help="What to export: . (the whole workspace), PROJECT, PROJECT/EXPERIMENT, or runs (PROJECT/EXPERIMENT/RUN_ID or an id prefix); several may be given.",
    ),
    output_file: str = typer.Option(
        ..., "--output", "-o", help="Bundle to write (FILE.tar.gz), or - for stdout."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Write records, logs and assets of REFs to a .tar.gz bundle for `molexp import`."""
    from molexp.core.bundle.export import export_refs

    ws = state.workspace()
    to_stdout = output_file == "-"
    if to_stdout and json_out:
        raise UsageError("--json prints to stdout, where `-o -` writes the bundle: use one")
    if to_stdout and output.is_tty(sys.stdout):
        raise UsageError("refusing to write a binary bundle to a terminal; redirect stdout")
    report = export_refs(ws, refs, sys.stdout.buffer if to_stdout else Path(output_file))
    if to_stdout:
        sys.stdout.buffer.flush()
    for skipped in report.skipped:
        output.say(f"warning: not exported: {skipped['path']}: {skipped['reason']}")
    if json_out:
        output.print_json(report.to_json())
    output.say(
        f"Exported {_count(len(report.runs), 'run')} ({_count(report.files, 'file')}, "
        f"{_size(report.bytes)}) to {'stdout' if to_stdout else output_file}"
    )
    _problems(report.problems)


def _problems(problems: list[Any]) -> None:
    for problem in problems:
        output.error(str(problem).splitlines()[0])
    if problems:
        output.say(
            f"{len(problems)} record(s) could not be read and were left out; "
            "`molexp doctor` lists them."
        )
        raise typer.Exit(EXIT_REFUSED)


def import_(
    bundle: str = typer.Argument(
        ..., help="Bundle made by `molexp export` (FILE.tar.gz), or - for stdin."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Check the bundle and report what would be imported; write nothing.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON report on stdout."),
) -> None:
    """Add a bundle's runs to this workspace; existing records are never replaced.

    Importing the same bundle twice changes nothing. A record that differs from
    the workspace's is reported as a conflict, kept as it is, and the command
    exits 3.
    """
    from molexp.core.bundle.importer import import_bundle

    ws = state.workspace()
    if bundle == "-":
        report = import_bundle(ws, sys.stdin.buffer, "stdin", dry_run)
    else:
        try:
            fh = open(bundle, "rb")
        except OSError as exc:
            raise UsageError(f"cannot read bundle {bundle}: {exc.strerror}") from None
        with fh:
            report = import_bundle(ws, fh, bundle, dry_run)
    if json_out:
        output.print_json(report.to_json())
    for item in report.conflicts:
        output.error(f"conflict: {item.kind} {item.ref}: {item.reason}")
    kinds = ("project", "experiment", "asset", "run")
    done = [_count(sum(i.kind == k for i in report.imported), k) for k in kinds]
    verb = "Would import" if dry_run else "Imported"
    output.say(
        f"{verb} {', '.join(d for d in done if not d.startswith('0 ')) or 'nothing new'} "
        f"from {report.bundle}; {len(report.unchanged)} already present, "
        f"{_count(len(report.conflicts), 'conflict')}"
    )
    if report.conflicts:
        output.say(
            "Conflicting records were kept as they are: compare them with "
            "`molexp show REF`, move yours aside to take the bundle's."
        )
        raise typer.Exit(EXIT_REFUSED)
