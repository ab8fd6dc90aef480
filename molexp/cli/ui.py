"""molexp ui / molexp report: the web view of a workspace (see docs/ui.md).

Both import the web layer (:mod:`molexp.ui`) only when they run: no other
command pays for it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from molexp.cli import complete, output, state


def ui(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. Anything but the loopback address exposes the record to the network: reach a remote workspace through an SSH tunnel instead.",
    ),
    port: int = typer.Option(
        8765, "--port", "-p", min=0, max=65535, help="Port to listen on (0: any free port)."
    ),
    allow_host: list[str] | None = typer.Option(
        None,
        "--allow-host",
        help="Another host name the server is reached by (e.g. behind a proxy); requests for any other name are refused (repeatable).",
    ),
) -> None:
    """Serve a web view of the workspace until Ctrl-C; prints its URL."""
    from molexp.ui.server import LOOPBACK, make_server, run_until_stopped

    ws = state.workspace()
    server = make_server(ws, host, port, tuple(allow_host or ()))
    if host not in LOOPBACK:
        output.say(f"warning: listening on {host}, not the loopback address: anyone who can reach "
                   "this machine can read the workspace. Prefer an SSH tunnel.")  # fmt: skip
    output.say(f"molexp ui: serving {ws.root} at {server.url} (Ctrl-C to stop)")
    print(server.url, flush=True)
    run_until_stopped(server)
    output.say("molexp ui: stopped")


def report(
    ref: str = typer.Argument(
        ..., autocompletion=complete.experiment_ref, help="The experiment: PROJECT/EXPERIMENT."
    ),
    out: Path = typer.Option(
        ..., "--output", "-o", help="The HTML file to write (replaced if it exists)."
    ),
) -> None:
    """Write an experiment's runs, aggregate and plot into one self-contained HTML file."""
    from molexp.ui.report import write

    written = write(state.workspace(), ref, out)
    output.say(f"wrote {out}: {written.ref}, {written.runs} run(s)")
    for problem in written.problems:  # the report shows what could be read; each other is named
        output.error(problem)
    if written.problems:
        output.say(
            f"{len(written.problems)} record(s) could not be read; `molexp doctor` lists them all."
        )
        raise typer.Exit(3)
