"""molexp project create|ls."""

from __future__ import annotations

import typer

from molexp.cli import output, state
from molexp.errors import MolexpError

app = typer.Typer(help="Create and list projects.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Project name."),
    description: str = typer.Option("", "--description", "-d", help="What the project is about."),
    tag: list[str] | None = typer.Option(None, "--tag", help="A tag (repeatable)."),
) -> None:
    """Create a project (does nothing if it exists)."""
    ws = state.workspace()
    from molexp.core.model.names import validate_name

    validate_name(name, "project")
    existed = (ws.projects_dir / name / "project.yaml").exists()
    ws.project(name, description=description, tags=tag or [])
    output.say(f"Project {name!r} {'already exists' if existed else 'created'}")


@app.command("ls")
def ls(
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List the projects of the workspace."""
    ws = state.workspace()
    rows = []
    problems: list[MolexpError] = []
    for proj in ws.projects():
        try:
            record = proj.definition()
        except MolexpError as exc:  # one bad definition never hides the others
            problems.append(exc)
            continue
        record["experiments"] = len(proj.experiment_names())
        rows.append(record)
    if json_out:
        output.print_json(rows)
    else:
        output.print_table(
            ["project", "experiments", "description", "tags"],
            [[r["name"], r["experiments"], r.get("description"), ",".join(r.get("tags") or [])] for r in rows],
        )
    output.report_problems(problems)
