"""molexp run: execute an experiment's runs (SPEC §9)."""

from __future__ import annotations

from pathlib import Path

import typer

from molexp.cli import complete, state
from molexp.errors import UsageError


def run(
    ref: str = typer.Argument(..., autocompletion=complete.experiment_ref, help="PROJECT/EXPERIMENT to run."),
    command: list[str] | None = typer.Argument(None, help="Command after `--` (run as argv, no shell)."),
    replica: list[int] | None = typer.Option(None, "--replica", "-r", help="Replica index (repeatable; default: all)."),
    profile: str | None = typer.Option(None, "--profile", "-P", autocompletion=complete.profile, help="Profile from molcfg.yaml."),
    config: Path | None = typer.Option(None, "--config", help="Config file (default: ./molcfg.yaml, .yml or .json)."),
    override: list[str] | None = typer.Option(None, "--override", "-o", help="KEY=VALUE applied to the config (dotted keys nest)."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="KEY=VALUE overriding an experiment parameter."),
    grid: list[str] | None = typer.Option(None, "--grid", "-g", help="KEY=V1,V2,... or KEY=[V1,V2,...] (cartesian product; repeatable)."),
    grid_file: Path | None = typer.Option(None, "--grid-file", help="YAML sweep: KEY: [VALUES...] per line, or a list of points."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Run up to N runs at once (output goes to the logs)."),
    fail_fast: bool = typer.Option(False, "--fail-fast/--keep-going", help="After a failure, start no more runs (default: keep going)."),
    force: bool = typer.Option(False, "--force", help="Start a new attempt even if the run succeeded."),
    wait: bool = typer.Option(False, "--wait", help="Wait for a run held elsewhere instead of exiting 3."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the runs and what would happen; write nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per run on stdout."),
    executor: str = typer.Option("local", "--executor", "-x", help="local (here) or slurm (one job array; see docs/cluster.md)."),
    sbatch_arg: list[str] | None = typer.Option(None, "--sbatch-arg", help="sbatch option for --executor slurm, e.g. --sbatch-arg=--partition=gpu (repeatable)."),
) -> None:
    """Run the selected runs of an experiment; succeeded runs are up to date."""
    from molexp.cli.run_render import report, report_plan
    from molexp.core import lifecycle, plan, profiles, values
    from molexp.core.refs import resolve

    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    overrides = [values.parse_assignment(o, "--override") for o in override or []]
    params = [values.parse_assignment(p, "--param") for p in param or []]
    grids = [values.parse_grid(g) for g in grid or []]
    sweep = plan.read_grid_file(grid_file) if grid_file else plan.GridFile([], [])
    ws = state.workspace()
    ws.use_cache = not dry_run
    target = resolve(ws, ref)
    if target.kind != "experiment" or target.experiment is None:
        raise UsageError(f"molexp run needs PROJECT/EXPERIMENT, got {ref!r} ({target.kind})")
    exp = target.experiment
    resolved = profiles.resolve_config(
        config, Path.cwd(), profile, overrides, cache_dir=ws.cache_dir
    )
    specs = plan.plan(exp, resolved, replica, params, [*sweep.grid, *grids], sweep.points)
    options = lifecycle.RunOptions(argv=command or None, force=force, wait=wait, json_mode=json_out)
    if executor not in ("local", "slurm") or (sbatch_arg and executor != "slurm"):
        raise UsageError(f"--executor {executor!r}: use local or slurm (--sbatch-arg needs slurm)")
    if executor == "slurm":
        from molexp.cli.slurm import submit

        raise typer.Exit(submit(exp, specs, options, sbatch_arg or [], dry_run, json_out))
    if dry_run:
        report_plan([lifecycle.preview(exp, s, options) for s in specs], json_out)
        return
    outcomes, signal = report(exp, specs, options, jobs, json_out, fail_fast)
    raise typer.Exit(lifecycle.exit_code_for(outcomes, signal))
