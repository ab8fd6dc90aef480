"""molexp trash ls|restore|empty: what `molexp rm` removed (SPEC §16)."""

from __future__ import annotations

import typer

from molexp.cli import complete, output, state

app = typer.Typer(
    help="What `molexp rm` removed: list it, restore it, or empty the trash.", no_args_is_help=True
)


@app.command("ls")
def ls(json_out: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List the removals in the trash, oldest first."""
    from molexp.core.actions.curate import trash_list

    entries, problems = trash_list(state.workspace())
    if json_out:
        output.print_json([e.to_json() for e in entries])
    else:
        output.print_table(
            ["id", "removed (UTC)", "runs", "what"],
            [[e.id, e.removed_at[:19].replace("T", " "), e.runs,
              ", ".join(f"{i.kind} {i.ref}" for i in e.items)] for e in entries],
        )  # fmt: skip
    output.report_problems(problems)


@app.command("restore")
def restore(
    entry: str = typer.Argument(
        ...,
        autocompletion=complete.trash_id,
        help="The id shown by `molexp trash ls` (or a unique prefix).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the restored entry as JSON."),
) -> None:
    """Put what a removal moved back where it was, byte for byte (refused, exit 3,
    when its place is taken)."""
    from molexp.core.actions.curate import trash_restore

    done = trash_restore(state.workspace(), entry)
    if json_out:
        output.print_json(done.to_json())
    output.say(
        f"Restored {', '.join(f'{i.kind} {i.ref}' for i in done.items)} from the trash ({done.id})"
    )


@app.command("empty")
def empty(
    older_than: float | None = typer.Option(
        None, "--older-than", metavar="DAYS", help="Only removals older than DAYS days."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be deleted; delete nothing."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask (needed when not on a terminal)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the deleted entries as JSON."),
) -> None:
    """Delete removals from the trash for good (all, or those older than DAYS)."""
    from molexp.core.actions.curate import trash_empty, trash_plan_empty
    from molexp.errors import UsageError

    ws = state.workspace()
    entries = trash_plan_empty(ws, older_than)
    runs = sum(e.runs for e in entries)
    what = f"{len(entries)} removal(s) ({runs} run(s))"
    if entries and not dry_run and not yes:
        answer = output.confirm(f"Delete {what} for good?")
        if answer is None:
            raise UsageError(
                f"molexp trash empty would delete {what} for good: pass --yes when not on a "
                "terminal (--dry-run lists them)"
            )
        if not answer:
            output.say("Nothing was deleted.")
            raise typer.Exit(1)
    done = entries if dry_run else trash_empty(ws, entries)
    if json_out:
        output.print_json([e.to_json() for e in done])
    verb = "Would delete" if dry_run else "Deleted"
    output.say(f"{verb} {what} from the trash" if entries else "Nothing to delete.")
