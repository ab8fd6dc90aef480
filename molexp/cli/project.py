"""molexp project create|ls."""

from __future__ import annotations

import typer

from molexp.cli import output, state

app = typer.Typer(help="Create and list projects.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Project name."),
    description: str = typer.Option("", "--description", "-d", help="What the project is about."),
    tag: list[str] | None = typer.Option(None, "--tag", help="A tag (repeatable)."),
) -> None:
    """Create a project (does nothing if it exists)."""
    from molexp.core.actions.define import create_project

    _, created = create_project(state.workspace(), name, description, tag or [])
    output.say(f"Project {name!r} {'created' if created else 'already exists'}")


@app.command("ls")
def ls(
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List the projects of the workspace."""
    from molexp.core.views.catalog import projects

    found = projects(state.workspace())
    rows = found.rows
    if json_out:
        output.print_json(rows)
    else:
        output.print_table(
            ["project", "experiments", "description", "tags"],
            [
                [r["name"], r["experiments"], r.get("description"), ",".join(r.get("tags") or [])]
                for r in rows
            ],
        )
    output.report_problems(found.problems)
