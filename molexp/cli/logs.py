"""molexp logs: a run's stdout and stderr (SPEC §16)."""

from __future__ import annotations

import sys

import typer

from molexp.cli import complete, output, state


def logs(
    ref: str = typer.Argument(
        ..., autocompletion=complete.ref, help="The run: PROJECT/EXPERIMENT/RUN_ID or an id prefix."
    ),
    attempt: int | None = typer.Option(
        None, "--attempt", "-a", help="Attempt N (default: the latest)."
    ),
    stdout: bool = typer.Option(False, "--stdout", help="Only the command's stdout."),
    stderr: bool = typer.Option(False, "--stderr", help="Only the command's stderr."),
    both: bool = typer.Option(False, "--both", help="Both, stdout first (the default)."),
    tail: int | None = typer.Option(None, "--tail", "-n", help="Only the last N lines of each."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing what the logs gain until the attempt ends."
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print {ref, attempt, dir, stdout, stderr} as one JSON object (not with --follow).",
    ),
) -> None:
    """Print the stdout and stderr of a run's attempt (the latest unless --attempt N).

    The logs are printed on stdout as they were written; with both streams, each
    starts with a `==> stdout <==` line (as `tail` does).
    """
    from molexp.core.views import logs as view
    from molexp.errors import UsageError

    if tail is not None and tail < 0:
        raise UsageError(f"--tail must be at least 0, got {tail}")
    streams = [s for s, on in (("stdout", stdout), ("stderr", stderr)) if on]
    if both or not streams:
        streams = list(view.STREAMS)
    if json_out and follow:
        raise UsageError("--json prints the logs as they are; it does not go with --follow")
    found = view.locate(state.workspace(), ref, attempt)
    if json_out:
        output.print_json({
            "ref": found.ref,
            "attempt": found.attempt,
            "dir": str(found.path("stdout").parent),
            **{s: view.tail(found.path(s), tail).decode("utf-8", "replace") for s in streams},
        })  # fmt: skip
        return
    if output.is_tty(sys.stderr):  # which attempt this is, for a person (not for pipes)
        output.say(f"{found.ref}, attempt {found.attempt}: {found.path('stdout').parent}")
    out = sys.stdout.buffer
    if not follow:
        for stream in streams:
            if len(streams) > 1:
                out.write(f"==> {stream} <==\n".encode())
            out.write(view.tail(found.path(stream), tail))
            out.flush()
        return
    current = None
    for stream, chunk in view.follow(found, streams, tail):
        if len(streams) > 1 and stream != current:
            out.write(f"==> {stream} <==\n".encode())
            current = stream
        out.write(chunk)
        out.flush()
