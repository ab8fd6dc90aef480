"""molexp rm: move runs, experiments or projects into the trash (SPEC §16)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from molexp.cli import complete, output, state

if TYPE_CHECKING:
    from molexp.core.actions.curate import Removal


def rm(
    refs: list[str] | None = typer.Argument(
        None,
        autocompletion=complete.ref,
        help="Runs (PROJECT/EXPERIMENT/RUN_ID or an id prefix), experiments or projects; with --where, where to look (default: everywhere).",
    ),
    where: list[str] | None = typer.Option(
        None,
        "--where",
        help="Only the runs meeting a condition, e.g. status=failed (the grammar of `ls --where`; repeatable).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would go (and what is refused); move nothing."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask (needed when not on a terminal)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Also remove queued runs and runs that assets refer to (producer, data); never a running one.",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print what was (or would be) removed as JSON."
    ),
) -> None:
    """Move runs, experiments or projects into the workspace's trash (.trash/).

    Nothing is deleted: `molexp trash restore ID` puts it back, `molexp trash empty`
    deletes it.  A running or queued run, and a run that an asset names as its
    producer or keeps its data in, are refused (exit 3, nothing moves) unless --force
    (never for a running run).  On a terminal the list is shown and confirmed;
    elsewhere --yes is needed.
    """
    from molexp.core.actions import curate
    from molexp.errors import UsageError

    ws = state.workspace()
    removal = curate.plan_rm(ws, refs or [], where or [], force)
    for problem in removal.problems:
        output.error(str(problem).splitlines()[0])
    if removal.refused or dry_run or not removal.items:
        _report(removal, json_out, done=False)
        raise typer.Exit(3 if removal.refused or removal.problems else 0)
    if not yes:
        if output.is_tty(sys.stdin) and output.is_tty(sys.stderr):
            _list(removal)
        answer = output.confirm(f"Move {_what(removal)} to the trash?")
        if answer is None:
            raise UsageError(
                f"molexp rm would move {_what(removal)} to the trash: pass --yes when not on "
                "a terminal (--dry-run lists them)"
            )
        if not answer:
            output.say("Nothing was removed.")
            raise typer.Exit(1)
    _report(curate.rm(ws, removal), json_out, done=True)
    if removal.problems:
        raise typer.Exit(3)


def _what(removal: Removal) -> str:
    """``3 runs`` or ``3 runs (experiment p/e)``."""
    runs = len(removal.runs)
    text = f"{runs} run{'s' if runs != 1 else ''}"
    containers = [f"{i.kind} {i.ref}" for i in removal.items if i.kind != "run"]
    if len(containers) > 3:
        containers = [f"{len(containers)} experiments and projects"]
    return f"{text} ({', '.join(containers)})" if containers else text


def _list(removal: Removal) -> None:
    for item in removal.items:
        extra = f" ({item.runs} run{'s' if item.runs != 1 else ''})" if item.kind != "run" else ""
        output.say(f"  {item.kind} {item.ref}{extra}")


def _report(removal: Removal, json_out: bool, done: bool) -> None:
    if json_out:
        output.print_json(removal.to_json())
    elif removal.items and not removal.refused:
        output.print_table(
            ["kind", "ref", "runs"], [[i.kind, i.ref, i.runs] for i in removal.items]
        )
    for ref, why in removal.refused:
        output.error(f"{ref} {why}")
    if removal.refused:
        output.say("Nothing was removed.")
    elif not removal.items:
        output.say("Nothing to remove.")
    elif done and removal.entry is not None:
        output.say(
            f"Moved {_what(removal)} to the trash as {removal.entry.id}; "
            f"`molexp trash restore {removal.entry.id}` puts it back."
        )
    elif not done:
        output.say(f"Would move {_what(removal)} to the trash (dry run: nothing was moved).")
