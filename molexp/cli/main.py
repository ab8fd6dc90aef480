"""The ``molexp`` application: global options, command registry, error handler.

One handler maps errors to the exit codes of SPEC §10: a :class:`MolexpError`
prints its one- or two-line message and exits with its code; a usage error from
option parsing prints one line and exits 2; Ctrl-C exits 130; a filesystem that
refuses (an ``OSError`` naming a file) exits 3; anything else is a bug: exit 70,
traceback only with ``--debug``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from molexp._version import __version__
from molexp.cli import output
from molexp.cli.state import STATE
from molexp.errors import (
    EXIT_INTERNAL,
    EXIT_REFUSED,
    EXIT_SIGINT,
    EXIT_USAGE,
    MolexpError,
    UsageError,
)


class MolexpGroup(TyperGroup):
    """Runs the app without click's standalone error boxes; see module docstring.

    Commands are loaded lazily from :data:`COMMANDS`.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list of `molexp --help` without importing every command."""
        from typer._click.utils import make_default_short_help

        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                summary = cmd.get_short_help_str(formatter.width)
            else:
                _, _, kind, summary = COMMANDS[name]
                if kind == "hidden":
                    continue
            rows.append((name, summary))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(n, make_default_short_help(h, limit)) for n, h in rows])

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:
            message = getattr(exc, "message", "")
            if args and "Did you mean" not in message:
                from difflib import get_close_matches

                visible = [n for n, entry in COMMANDS.items() if entry[2] != "hidden"]
                close = get_close_matches(args[0], visible, n=3)
                if close:
                    exc.message = f"{message.rstrip('.')}. Did you mean {', '.join(close)}?"
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`| head`): not an error
            _quiet_stdout()
            return 0

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        sys.exit(self._run(args, prog_name or "molexp", complete_var, **extra))

    def _run(self, args: Any, prog_name: str, complete_var: str | None, **extra: Any) -> int:
        try:
            _refuse_nul(sys.argv[1:] if args is None else args)
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except typer.Exit as exc:
            return exc.exit_code
        except MolexpError as exc:
            output.error(_shorten(str(exc)))
            if STATE.debug:
                raise
            return exc.exit_code
        except typer.Abort:
            output.say("Aborted.")
            return EXIT_SIGINT
        except KeyboardInterrupt:
            return EXIT_SIGINT
        except typer.TyperException as exc:  # click usage errors: one line
            return _usage_error(exc)
        except BrokenPipeError:
            _quiet_stdout()
            return 0
        except OSError as exc:
            if STATE.debug:
                raise
            # The filesystem refused (read-only, permission, not a directory, full),
            # or the system did, writing the output (a full disk behind `>`).
            where = exc.filename if exc.filename is not None else "<output>"
            output.error(_shorten(f"{where}: {exc.strerror or exc}"))
            output.say("Check the path, its permissions and the free space, then retry.")
            return EXIT_REFUSED
        except Exception as exc:
            if STATE.debug:
                raise
            output.error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(a bug in molexp; rerun with --debug for the traceback)"
            )
            return EXIT_INTERNAL


MAX_LINE = 400


def _shorten(message: str) -> str:
    """Each line of a message cut to :data:`MAX_LINE` characters (middle elided):
    a 100 kB argument echoed back is not a short message."""
    half = (MAX_LINE - 5) // 2
    return "\n".join(
        line if len(line) <= MAX_LINE else f"{line[:half]} ... {line[-half:]}"
        for line in message.splitlines()
    )


def _refuse_nul(args: Any) -> None:
    """No real argv holds a NUL byte; refuse one (from the API) before parsing."""
    for arg in args or ():
        if isinstance(arg, str) and "\0" in arg:
            shown = arg.encode("unicode_escape", "backslashreplace").decode("ascii")
            raise UsageError(f"argument '{shown}' contains a NUL byte; pass printable text")


def _usage_error(exc: Any) -> int:
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(str(message).split())
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help())
        return EXIT_USAGE
    output.error(_shorten(f"{message}{where}"))
    return int(getattr(exc, "exit_code", EXIT_USAGE)) or EXIT_USAGE


app = typer.Typer(
    cls=MolexpGroup,
    name="molexp",
    help="Keep an honest, on-disk record of parameterised runs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"molexp {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    workspace: Path = typer.Option(
        None,
        "--workspace",
        "-w",
        help="Workspace root (default: $MOLEXP_WORKSPACE or the "
        "nearest workspace.yaml above the current directory).",
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
    color: bool = typer.Option(
        None,
        "--color/--no-color",
        help="Force or disable colour (default: on a terminal, unless NO_COLOR is set).",
        show_default=False,
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """molexp keeps the research record of your runs on disk:
    workspace -> project -> experiment -> run."""
    STATE.workspace = workspace
    STATE.debug = debug
    output.set_color(color)


# name -> (module, attribute, kind): each command is imported and built only when
# it is used, so `molexp show` does not pay for `assets` or `compare`.  One module
# per command group (STYLE.md); `kind` is "command" (a function) or "group" (a
# typer.Typer of subcommands).
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    # name: (module, attribute, kind, summary for `molexp --help`; tests/test_docs.py
    # checks each summary against the command's own help)
    "init": (
        "molexp.cli.init",
        "init",
        "command",
        "Create a workspace (workspace.yaml) in PATH; does nothing if one is there.",
    ),
    "project": ("molexp.cli.project", "app", "group", "Create and list projects."),
    "experiment": ("molexp.cli.experiment", "app", "group", "Create and list experiments."),
    "run": (
        "molexp.cli.run",
        "run",
        "command",
        "Run the selected runs of an experiment; succeeded runs are up to date.",
    ),
    "ls": (
        "molexp.cli.ls",
        "ls",
        "command",
        "List runs with their status; unreadable records are named on stderr (exit 3).",
    ),
    "show": (
        "molexp.cli.show",
        "show",
        "command",
        "Show what REF names: its record, and for a run its attempts, results and inputs.",
    ),
    "assets": (
        "molexp.cli.assets",
        "app",
        "group",
        "Named, reusable files and folders of the workspace, a project or an experiment.",
    ),
    "compare": (
        "molexp.cli.compare",
        "compare",
        "command",
        "One row per run: the params and config that vary, results, status, duration.",
    ),
    "metrics": (
        "molexp.cli.metrics",
        "metrics",
        "command",
        "Print the metrics a run recorded over time (MOLEXP_METRICS_FILE, ctx.log).",
    ),
    "diff": (
        "molexp.cli.compare",
        "diff",
        "command",
        "What differs between two runs: params, config, results, git and attempts.",
    ),
    "cancel": (
        "molexp.cli.cancel",
        "cancel",
        "command",
        "Cancel queued or running runs: `scancel` for SLURM runs, SIGTERM to local owners.",
    ),
    "doctor": (
        "molexp.cli.doctor",
        "doctor",
        "command",
        "Check every record, definition and lock in the workspace; exit 3 while problems remain.",
    ),
    "export": (
        "molexp.cli.bundle",
        "export",
        "command",
        "Write records, logs and assets of REFs to a .tar.gz bundle for `molexp import`.",
    ),
    "import": (
        "molexp.cli.bundle",
        "import_",
        "command",
        "Add a bundle's runs to this workspace; existing records are never replaced.",
    ),
    "tag": (
        "molexp.cli.tag",
        "tag",
        "command",
        "Add (+TAG) and remove (-TAG) tags of runs, experiments or projects.",
    ),
    "note": (
        "molexp.cli.note",
        "note",
        "command",
        "Add a note (stamped now) to a run, an experiment or a project.",
    ),
    "ui": (
        "molexp.cli.ui",
        "ui",
        "command",
        "Serve a web view of the workspace until Ctrl-C; prints its URL.",
    ),
    "report": (
        "molexp.cli.ui",
        "report",
        "command",
        "Write an experiment's runs, aggregate and plot into one self-contained HTML file.",
    ),
    "logs": (
        "molexp.cli.logs",
        "logs",
        "command",
        "Print the stdout and stderr of a run's attempt (the latest unless --attempt N).",
    ),
    "rm": (
        "molexp.cli.rm",
        "rm",
        "command",
        "Move runs, experiments or projects into the workspace's trash (.trash/).",
    ),
    "trash": (
        "molexp.cli.trash",
        "app",
        "group",
        "What `molexp rm` removed: list it, restore it, or empty the trash.",
    ),
    "run-task": (
        "molexp.cli.slurm",
        "run_task",
        "hidden",
        "Run the runs queued for this SLURM array task (written into batch scripts).",
    ),
    "run-retry": (
        "molexp.cli.slurm",
        "run_retry",
        "hidden",
        "Resubmit the runs SLURM interrupted (the follow-up job of `run --retries`).",
    ),
}


def load_command(name: str) -> Any:
    """Build the click command ``name`` from its module (see :data:`COMMANDS`)."""
    import importlib

    from typer.models import CommandInfo, TyperInfo

    module, attr, kind, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attr)
    if kind == "group":
        return typer.main.get_group_from_info(
            TyperInfo(target, name=name),
            pretty_exceptions_short=False,
            suggest_commands=True,
            rich_markup_mode=None,
        )
    return typer.main.get_command_from_info(
        CommandInfo(
            name=name,
            callback=target,
            hidden=kind == "hidden",
            # (a command that takes words like `-TAG` sets its class and settings)
            **getattr(target, "command_info", {}),
        ),
        pretty_exceptions_short=False,
        rich_markup_mode=None,
    )


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``molexp`` process (console script, ``python -m molexp``)."""
    try:
        typer.main.get_command(app).main(argv, prog_name="molexp")
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # (a message to print: Python's own exit says it)
        _exit(exc.code or 0)
    raise AssertionError("unreachable")  # pragma: no cover


def _exit(code: int) -> NoReturn:
    """End the process with ``code`` once its output is written, skipping the
    interpreter's teardown (freeing every module and object: ~10-20 ms of a
    command called in a loop, more than many commands take).

    The teardown runs as usual when something still needs it: an ``atexit``
    handler (coverage, the API's metric writer), a thread that is not a daemon.
    Output that cannot be written at the end is said like any refused write
    (exit 3); a reader that went away (``| head``) is not an error (exit 0,
    as for a write during the command).
    """
    import atexit
    import os
    import threading

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as exc:
        _quiet_stdout()
        output.error(f"<output>: {exc.strerror or exc}")
        code = code or EXIT_REFUSED
    try:
        sys.stderr.flush()
    except OSError:
        pass
    pending = getattr(atexit, "_ncallbacks", lambda: 1)()
    if pending or threading.active_count() > 1:
        sys.exit(code)
    os._exit(code)


def _quiet_stdout() -> None:
    """Send what is still buffered for stdout nowhere, so that neither the teardown
    nor a later flush writes it again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
