"""molexp experiment create|ls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from molexp.cli import complete, output, state
from molexp.errors import MolexpError, UsageError

app = typer.Typer(help="Create and list experiments.", no_args_is_help=True)


def split_ref(text: str) -> tuple[str, str]:
    parts = text.split("/")
    if len(parts) != 2:
        raise UsageError(f"expected PROJECT/EXPERIMENT, got {text!r}")
    return parts[0], parts[1]


def read_params(params_file: Path | None, assignments: list[str]) -> dict[str, Any]:
    from molexp.core.model.values import parse_assignment, set_dotted
    from molexp.core.model.yaml12 import load_yaml

    params: dict[str, Any] = {}
    if params_file is not None:
        try:
            raw = params_file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read --params file {params_file}: {exc.strerror}") from exc
        loaded = load_yaml(raw, str(params_file))
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{params_file}: expected a mapping of parameters")
        params.update(loaded)
    for text in assignments:
        key, value = parse_assignment(text, "--param")
        set_dotted(params, key, value, what="--param")
    return params


def parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from molexp.core.model.values import parse_value, split_top_level

    value = parse_value(text)
    items = value if isinstance(value, list) else [parse_value(s) for s in split_top_level(text)]
    if not items or not all(isinstance(s, int) and not isinstance(s, bool) for s in items):
        raise UsageError(f"--seeds {text!r}: expected integers like 11,22,33")
    return items


@app.command("create")
def create(
    ref: str = typer.Argument(..., help="PROJECT/NAME of the experiment."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="KEY=VALUE (repeatable; dotted keys nest)."),
    params: Path | None = typer.Option(None, "--params", help="YAML/JSON file of parameters."),
    replicas: int | None = typer.Option(None, "--replicas", "-r", help="Number of replicas (default 1)."),
    seeds: str | None = typer.Option(None, "--seeds", help="One seed per replica: 11,22,33 or [11, 22, 33]."),
    command: str | None = typer.Option(None, "--command", "-c", help="Command run through /bin/sh -c; {placeholders} are filled in."),
    workflow: str | None = typer.Option(None, "--workflow", help="File whose git provenance is captured."),
    description: str = typer.Option("", "--description", "-d", help="What the experiment tests."),
) -> None:
    """Define an experiment; identical definitions do nothing, different ones are refused."""
    project, name = split_ref(ref)
    from molexp.core.model.names import validate_name

    validate_name(project, "project")
    validate_name(name, "experiment")
    values = read_params(params, param or [])
    seed_list = parse_seeds(seeds)
    ws = state.workspace()
    proj = ws.get_project(project)
    existed = (proj.path / "experiments" / name / "experiment.yaml").exists()
    exp = proj.experiment(
        name, params=values, replicas=replicas if replicas is not None or seed_list else 1,
        seeds=seed_list, command=command, workflow_source=workflow, description=description,
        strict=True,
    )
    output.say(f"Experiment {exp.ref} {'unchanged' if existed else 'created'} "
               f"({exp.replicas} replica{'s' if exp.replicas != 1 else ''})")


@app.command("ls")
def ls(
    project: str | None = typer.Argument(None, autocompletion=complete.project, help="Only this project."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List experiments (of one project, or all)."""
    ws = state.workspace()
    projects = [ws.get_project(project)] if project else ws.projects()
    rows = []
    problems: list[MolexpError] = []
    for proj in projects:
        for exp in proj.experiments():
            try:
                record = dict(exp.definition())
            except MolexpError as exc:  # one bad definition never hides the others
                problems.append(exc)
                continue
            record["runs"] = len(exp.run_ids())
            rows.append(record)
    if json_out:
        output.print_json(rows)
    else:
        output.print_table(
            ["experiment", "replicas", "runs", "params", "command"],
            [[f"{r['project']}/{r['name']}", r["replicas"], r["runs"], r["params"], r.get("command")] for r in rows],
        )
    output.report_problems(problems)
