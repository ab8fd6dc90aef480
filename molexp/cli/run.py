"""molexp run: execute an experiment's runs (SPEC §9)."""

from __future__ import annotations

from pathlib import Path

import typer

from molexp.cli import complete, state


def run(
    ref: str = typer.Argument(
        ..., autocompletion=complete.experiment_ref, help="PROJECT/EXPERIMENT to run."
    ),
    command: list[str] | None = typer.Argument(
        None, help="Command after `--` (run as argv, no shell)."
    ),
    replica: list[int] | None = typer.Option(
        None, "--replica", "-r", help="Replica index (repeatable; default: all)."
    ),
    profile: str | None = typer.Option(
        None, "--profile", "-P", autocompletion=complete.profile, help="Profile from molcfg.yaml."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Config file (default: molcfg.yaml, .yml or .json in the experiment's workdir).",
    ),
    override: list[str] | None = typer.Option(
        None, "--override", "-o", help="KEY=VALUE applied to the config (dotted keys nest)."
    ),
    param: list[str] | None = typer.Option(
        None, "--param", "-p", help="KEY=VALUE overriding an experiment parameter."
    ),
    new_param: bool = typer.Option(
        False,
        "--new-param",
        help="Allow --param/--grid keys the experiment does not have (refused otherwise: a typo would plan new runs).",
    ),
    grid: list[str] | None = typer.Option(
        None,
        "--grid",
        "-g",
        help="KEY=V1,V2,... or KEY=[V1,V2,...] (cartesian product; repeatable).",
    ),
    grid_file: Path | None = typer.Option(
        None, "--grid-file", help="YAML sweep: KEY: [VALUES...] per line, or a list of points."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        help="Run up to N runs at once (output goes to the logs); with slurm, at most N array tasks at once.",
        show_default="1 locally, no limit on SLURM",
    ),
    fail_fast: bool = typer.Option(
        False,
        "--fail-fast/--keep-going",
        help="After a failure, start no more runs (default: keep going).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Start a new attempt even if the run succeeded."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for a run held elsewhere instead of exiting 3."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the runs and what would happen; write nothing."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per run on stdout."),
    executor: str = typer.Option(
        "local", "--executor", "-x", help="local (here) or slurm (job arrays; see docs/cluster.md)."
    ),
    sbatch_arg: list[str] | None = typer.Option(
        None,
        "--sbatch-arg",
        help="sbatch option for --executor slurm, e.g. --sbatch-arg=--partition=gpu (repeatable).",
    ),
    pack: int = typer.Option(
        1, "--pack", help="With slurm: each array task runs K runs one after another."
    ),
    retries: int = typer.Option(
        0,
        "--retries",
        help="With slurm: resubmit runs that SLURM interrupted (timeout, preemption, node failure) up to N times.",
    ),
) -> None:
    """Run the selected runs of an experiment; succeeded runs are up to date."""
    from molexp.cli import run_render
    from molexp.core.actions import run as action

    request = action.RunRequest(
        ref, command or None, replica or (), profile, config, override or (), param or (),
        grid or (), grid_file, jobs, fail_fast, force, wait, dry_run, json_out, executor,
        sbatch_arg or (), None, pack, retries, new_param,
    )  # fmt: skip
    raise typer.Exit(run_render.render(action.plan_request(state.workspace(), request)))
