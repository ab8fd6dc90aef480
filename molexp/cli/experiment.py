"""molexp experiment create|ls."""

from __future__ import annotations

from pathlib import Path

import typer

from molexp.cli import complete, output, state

app = typer.Typer(help="Create and list experiments.", no_args_is_help=True)


@app.command("create")
def create(
    ref: str = typer.Argument(..., help="PROJECT/NAME of the experiment."),
    param: list[str] | None = typer.Option(
        None, "--param", "-p", help="KEY=VALUE (repeatable; dotted keys nest)."
    ),
    params: Path | None = typer.Option(None, "--params", help="YAML/JSON file of parameters."),
    replicas: int | None = typer.Option(
        None, "--replicas", "-r", help="Number of replicas (default 1)."
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="One seed per replica: 11,22,33 or [11, 22, 33]."
    ),
    command: str | None = typer.Option(
        None,
        "--command",
        "-c",
        help="Command run through /bin/sh -c; {placeholders} are filled in.",
    ),
    workflow: str | None = typer.Option(
        None, "--workflow", help="File whose git provenance is captured."
    ),
    description: str = typer.Option("", "--description", "-d", help="What the experiment tests."),
    workdir: Path | None = typer.Option(
        None,
        "--workdir",
        help="Where runs execute and find molcfg.yaml (default: the current directory).",
    ),
) -> None:
    """Define an experiment; identical definitions do nothing, different ones are refused."""
    from molexp.core.actions.define import ExperimentRequest, create_experiment

    request = ExperimentRequest(
        ref, param or (), params, replicas, seeds, command, workflow, description, workdir=workdir
    )
    exp, created = create_experiment(state.workspace(), request)
    output.say(
        f"Experiment {exp.ref} {'created' if created else 'unchanged'} "
        f"({exp.replicas} replica{'s' if exp.replicas != 1 else ''})"
    )


@app.command("ls")
def ls(
    project: str | None = typer.Argument(
        None, autocompletion=complete.project, help="Only this project."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List experiments (of one project, or all)."""
    from molexp.core.views.catalog import experiments

    found = experiments(state.workspace(), project)
    rows = found.rows
    if json_out:
        output.print_json(rows)
    else:
        output.print_table(
            ["experiment", "replicas", "runs", "params", "command"],
            [
                [
                    f"{r['project']}/{r['name']}",
                    r["replicas"],
                    r["runs"],
                    r["params"],
                    r.get("command"),
                ]
                for r in rows
            ],
        )
    output.report_problems(found.problems)
