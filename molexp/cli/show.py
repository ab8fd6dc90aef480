"""molexp show: the record of a workspace, project, experiment or run."""

from __future__ import annotations

from typing import Any

import typer

from molexp.cli import complete, output, state


def show(
    ref: str = typer.Argument(
        ".",
        autocompletion=complete.ref,
        help="PROJECT, PROJECT/EXPERIMENT, PROJECT/EXPERIMENT/RUN_ID, a run-id prefix, or SCOPE:ASSET (.:NAME for the workspace).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """Show what REF names: its record, and for a run its attempts, results and inputs."""
    from molexp.core.views.summary import describe_ref

    kind, record = describe_ref(state.workspace(), ref)
    unreadable = record.get("runs", {}).get("unreadable", []) if kind == "experiment" else []
    if json_out:
        output.print_json(record)
    else:
        {"run": _run, "experiment": _experiment}.get(kind, _generic)(record)
    for problem in unreadable:  # one bad record never hides the others, but is named
        output.error(problem)
    if unreadable:
        raise typer.Exit(3)


def _generic(record: dict[str, Any]) -> None:
    notes = record.pop("notes", None)
    output.print_kv([(k, _tags(v) if k == "tags" else v) for k, v in record.items()])
    _notes(notes)


def _experiment(record: dict[str, Any]) -> None:
    runs = record.pop("runs")
    runs.pop("unreadable", None)  # named on stderr
    notes = record.pop("notes", None)
    output.print_kv([(k, _tags(v) if k == "tags" else v) for k, v in record.items()])
    output.print_kv([("runs", runs["total"]), *sorted(runs["by_status"].items())])
    _notes(notes)


def _tags(tags: Any) -> Any:
    return " ".join(map(str, tags)) if isinstance(tags, list) else tags


def _notes(notes: Any) -> None:
    """Notes as ``time  text`` lines (later lines of a note indented under it)."""
    if not isinstance(notes, list) or not notes:
        return
    print()
    print("notes")
    for entry in notes:
        if not isinstance(entry, dict):
            continue
        stamp = str(entry.get("time", ""))[:19].replace("T", " ")
        lines = str(entry.get("text", "")).splitlines() or [""]
        print(f"  {stamp}  {lines[0]}")
        for line in lines[1:]:
            print(f"  {' ' * len(stamp)}  {line}")


def _run(record: dict[str, Any]) -> None:
    keys = [
        "id",
        "project",
        "experiment",
        "identity",
        "status",
        "status_reason",
        "tags",
        "replica",
        "seed",
        "profile",
        "params",
        "config",
        "config_hash",
        "created_at",
        "updated_at",
        "run_dir",
    ]
    output.print_kv([
        (k, _tags(record[k]) if k == "tags" else record.get(k))
        for k in keys
        if record.get(k) not in (None, [])
    ])  # fmt: skip
    if record.get("results"):
        print()
        output.print_table(["result", "value"], sorted(record["results"].items()))
    if record.get("metrics"):
        print()
        output.print_table(["metric", "last", "step", "points", "attempt"], _metrics(record))
    if record.get("inputs"):
        print()
        output.print_table(
            ["input", "scope", "content_hash", "attempts"], _inputs(record["inputs"])
        )
    if record.get("attempts"):
        print()
        output.print_table(
            ["attempt", "status", "exit", "started", "duration", "host", "executor", "job", "git"],
            [
                [
                    a.get("n"),
                    a.get("status"),
                    a.get("exit_code"),
                    a.get("started_at"),
                    output.seconds(a.get("duration")),
                    a.get("host"),
                    a.get("executor"),
                    a.get("scheduler_job_id"),
                    _git(a.get("git")),
                ]
                for a in record["attempts"]
            ],
        )
        last = record["attempts"][-1]
        print()
        output.print_kv(_ending(record, last))
        tail = record.get("stderr_tail")
        if tail:
            print()
            print(f"stderr, last {len(tail)} line(s):")
            for line in tail:
                print(f"  | {line}")
    _notes(record.get("notes"))


def _inputs(inputs: list[Any]) -> list[list[Any]]:
    """One row per asset used (name, scope, hash), with the attempts that looked it
    up: a run forced again uses the same input twice, and that is one input."""
    rows: dict[tuple[Any, Any, Any], set[int]] = {}
    for item in inputs:
        if isinstance(item, dict):
            attempts = rows.setdefault(
                (item.get("name"), item.get("scope"), item.get("content_hash")), set()
            )
            if isinstance(item.get("attempt"), int):
                attempts.add(item["attempt"])
    return [[*key, ",".join(map(str, sorted(attempts)))] for key, attempts in rows.items()]


def _metrics(record: dict[str, Any]) -> list[list[Any]]:
    """The last value of each metric, with its step and count from the attempt that
    recorded it, or from the running attempt's file (`molexp metrics RUN` prints
    the whole series)."""
    found = record.get("metrics_live") or next(
        (a for a in reversed(record.get("attempts") or [])
         if isinstance(a, dict) and isinstance(a.get("metrics"), dict)), {})  # fmt: skip
    seen = found.get("metrics") or {}
    number = found.get("attempt", found.get("n"))
    return [[name, value, (seen.get(name) or {}).get("step"), (seen.get(name) or {}).get("n"),
             number] for name, value in record["metrics"].items()]  # fmt: skip


def _ending(record: dict[str, Any], last: dict[str, Any]) -> list[tuple[str, Any]]:
    """How the latest attempt ended (error, cause, warnings) and where its logs and
    artifacts are (an earlier attempt's were moved to ``attempts/<n>/artifacts/``)."""
    pairs: list[tuple[str, Any]] = []
    if record.get("status") in ("failed", "interrupted", "cancelled"):
        code = last.get("exit_code")
        pairs.append(
            ("error", last.get("error") or (f"exit code {code}" if code is not None else None))
        )
        pairs.append(("cause", last.get("cause")))
    pairs.extend(("warning", w) for w in last.get("warnings") or [])
    pairs.append(("env", _env_summary(last.get("env"))))
    pairs.append(("logs", f"{record['run_dir']}/attempts/{last.get('n')}/"))
    pairs.append(("artifacts", f"{record['run_dir']}/artifacts/"))
    pairs.extend((f"artifacts of attempt {a.get('n')}", f"{record['run_dir']}/{a['artifacts']}/")
                 for a in record["attempts"] if isinstance(a, dict) and a.get("artifacts"))  # fmt: skip
    return [(k, v) for k, v in pairs if v is not None]


def _git(info: Any) -> str:
    if not isinstance(info, dict) or not info.get("commit"):
        return ""
    return str(info["commit"])[:10] + ("+dirty" if info.get("dirty") else "")


def _env_summary(env: Any) -> str | None:
    """One line about an attempt's environment, for `show`."""
    if not isinstance(env, dict):
        return None
    parts = []
    python = env.get("python")
    if isinstance(python, dict):
        version = python.get("version") or "?"
        parts.append(f"python {version} ({python.get('executable')})")
    if env.get("package_count") is not None:
        parts.append(f"{env['package_count']} packages (environments/{env.get('packages')}.txt)")
    if env.get("modules"):
        parts.append("modules " + " ".join(env["modules"]))
    conda = env.get("conda")
    if isinstance(conda, dict):
        parts.append(f"conda {conda.get('env') or conda.get('prefix')}")
    container = env.get("container")
    if isinstance(container, dict):
        parts.append(f"{container.get('kind')} {container.get('image') or ''}".strip())
    slurm = env.get("slurm")
    if isinstance(slurm, dict):
        parts.append(
            f"SLURM job {slurm.get('job_id')} on {slurm.get('partition')} ({slurm.get('nodelist')})"
        )
    if env.get("platform"):
        parts.append(f"{env['platform']}, {env.get('cpu_count')} CPUs")
    return "; ".join(parts) or None
