"""The ``molexp`` application: global options, command registry, error handler.

One handler maps errors to the exit codes of SPEC §10: a :class:`MolexpError`
prints its one- or two-line message and exits with its code; a usage error from
option parsing prints one line and exits 2; Ctrl-C exits 130; anything else is a
bug: exit 70, traceback only with ``--debug``.
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
from molexp.errors import EXIT_INTERNAL, EXIT_SIGINT, EXIT_USAGE, MolexpError


class MolexpGroup(TyperGroup):
    """Runs the app without click's standalone error boxes; see module docstring."""

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
            rv = super().main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
            return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except typer.Exit as exc:
            return exc.exit_code
        except MolexpError as exc:
            output.error(str(exc))
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
            return 0
        except Exception as exc:
            if STATE.debug:
                raise
            output.error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(a bug in molexp; rerun with --debug for the traceback)"
            )
            return EXIT_INTERNAL


def _usage_error(exc: Any) -> int:
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(str(message).split())
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help())
        return EXIT_USAGE
    output.error(f"{message}{where}")
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
        None, "--workspace", "-w", help="Workspace root (default: $MOLEXP_WORKSPACE or the "
        "nearest workspace.yaml above the current directory).", show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
    color: bool = typer.Option(
        None, "--color/--no-color", help="Force or disable colour (default: on a terminal, "
        "unless NO_COLOR is set).", show_default=False,
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


def _register() -> None:
    from molexp.cli import experiment, init, ls, project, run, show

    app.command("init")(init.init)
    app.add_typer(project.app, name="project")
    app.add_typer(experiment.app, name="experiment")
    app.command("run")(run.run)
    app.command("ls")(ls.ls)
    app.command("show")(show.show)


_register()


def main(argv: list[str] | None = None) -> NoReturn:
    typer.main.get_command(app).main(argv, prog_name="molexp")
    raise AssertionError("unreachable")  # pragma: no cover
