"""molexp note: add a note to a run, an experiment or a project (SPEC §16)."""

from __future__ import annotations

import typer

from molexp.cli import complete, output, state


def note(
    ref: str = typer.Argument(
        ...,
        autocompletion=complete.ref,
        help="PROJECT, PROJECT/EXPERIMENT, PROJECT/EXPERIMENT/RUN_ID or a run-id prefix.",
    ),
    text: str = typer.Argument(..., help="The note (quote it); `-` reads it from stdin."),
    json_out: bool = typer.Option(False, "--json", help="Print the REF's tags and notes as JSON."),
) -> None:
    """Add a note (stamped now) to a run, an experiment or a project.

    Notes are kept in order as {time, text} in run.json (or the definition) and
    shown by `molexp show`.
    """
    import sys

    from molexp.core.actions import curate

    done = curate.note(state.workspace(), ref, sys.stdin.read() if text == "-" else text)
    if json_out:
        output.print_json(done.to_json())
    else:
        output.say(f"{done.ref}: {len(done.notes)} note(s)")
    if done.pending:
        output.say(
            f"{done.ref} is held by a running attempt: the note is queued and lands in its "
            "run.json when the attempt next saves it (at the latest when it ends)"
        )
