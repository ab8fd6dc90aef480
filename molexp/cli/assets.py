"""molexp assets add|ls|show|path|find|verify|rm (SPEC §11)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from molexp.cli import complete, output, state
from molexp.errors import EXIT_REFUSED, MolexpError, UsageError

if TYPE_CHECKING:
    from molexp.core.assets import Asset, ProgressHook

app = typer.Typer(
    help="Named, reusable files and folders of the workspace, a project or an experiment.",
    no_args_is_help=True,
)

SCOPE_HELP = "'.' (the workspace), PROJECT or PROJECT/EXPERIMENT."
PROGRESS_MIN_BYTES = 64 << 20  # smaller files hash too fast for a bar to help


@contextmanager
def progress_bar(wanted: bool = True) -> Iterator[ProgressHook | None]:
    """A hook drawing a rich progress bar on stderr for large data (terminal only)."""
    if not wanted or not output.is_tty(sys.stderr):
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=output.console(stderr=True),
        transient=True,
    )

    def hook(label: str, total: int) -> Any:
        if total < PROGRESS_MIN_BYTES:
            return lambda n: None
        bar.start()
        task = bar.add_task(label, total=total)
        return lambda n: bar.advance(task, n)

    try:
        yield hook
    finally:
        bar.stop()


def human_size(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _table(assets: Sequence[Asset], notes: Sequence[str | None] = ()) -> None:
    notes = list(notes) or [None] * len(assets)
    rows = [
        [
            a.scope.text,
            a.name,
            a.kind,
            a.mode,
            human_size(a.record.get("size")),
            a.content_hash,
            a.record.get("producer"),
            note or a.record.get("description"),
        ]
        for a, note in zip(assets, notes)
    ]
    output.print_table(
        ["scope", "name", "kind", "mode", "size", "content_hash", "producer", "description"], rows
    )


def _report(problems: Sequence[MolexpError]) -> None:
    """Name every unreadable record on stderr; exit 3 if there was one."""
    for problem in problems:
        output.error(str(problem))
    if problems:
        raise typer.Exit(EXIT_REFUSED)


@app.command("add")
def add(
    scope: str = typer.Argument(..., help=SCOPE_HELP),
    name: str = typer.Argument(..., help="Asset name (letters, digits, '.', '_', '-')."),
    path: Path = typer.Argument(..., help="The file or folder to add."),
    move: bool = typer.Option(False, "--move", help="Move PATH into the library."),
    link: bool = typer.Option(False, "--link", help="Store a symbolic link to PATH."),
    ref: bool = typer.Option(False, "--ref", help="Record PATH and its hash only (no copy)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an asset with other content."),
    description: str | None = typer.Option(
        None,
        "--description",
        "-d",
        help="What the asset is (kept by --replace if not given).",
        show_default=False,
    ),
    tag: list[str] | None = typer.Option(None, "--tag", help="A tag (repeatable)."),
) -> None:
    """Add a file or folder as asset NAME of SCOPE (copied unless --move/--link/--ref)."""
    from molexp.core import assets

    modes = [m for m, on in (("move", move), ("link", link), ("ref", ref)) if on]
    if len(modes) > 1:
        raise UsageError("--move, --link and --ref exclude each other: give one")
    ws, mode = state.workspace(), modes[0] if modes else "copy"
    with progress_bar() as hook:
        result = assets.add_to(ws, scope, name, path, mode, replace, description, tag or None, hook)
    a = result.asset
    for warning in result.warnings:
        output.say(f"warning: {warning}")
    verbs = {"added": "Added", "replaced": "Replaced", "repaired": "Repaired"}
    verb = verbs.get(result.action, "Unchanged:")
    output.say(
        f"{verb} asset {a.label} ({a.kind}, {human_size(a.record.get('size'))}, {a.content_hash})"
    )


@app.command("ls")
def ls(
    scope: str | None = typer.Argument(None, help=SCOPE_HELP + " Default: every scope."),
    all_: bool = typer.Option(
        False, "--all", help="With SCOPE, also list what it inherits (project, workspace)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List assets (all scopes by default)."""
    from molexp.core import assets

    listing = assets.list_assets(state.workspace(), scope, inherited=all_)
    shadows = listing.shadowed
    if json_out:
        records = [a.to_json() for a in listing.assets]
        if shadows is not None:
            records = [{**r, "shadowed": s is not None} for r, s in zip(records, shadows)]
        output.print_json(records)
    else:
        _table(listing.assets, [f"(shadowed by {s})" if s else None for s in shadows or ()])
    _report(listing.problems)


@app.command("show")
def show(
    scope: str = typer.Argument(..., help=SCOPE_HELP),
    name: str = typer.Argument(..., autocompletion=complete.asset, help="Asset name."),
    json_out: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """Show an asset's record, where its data is, and the runs that used it."""
    from molexp.core import assets

    record = assets.describe_in(state.workspace(), scope, name)
    if json_out:
        output.print_json(record)
        return
    output.print_kv([(k, human_size(v) if k == "size" else v) for k, v in record.items()])


@app.command("path")
def path(
    name: str = typer.Argument(..., autocompletion=complete.asset, help="Asset name."),
    from_: str | None = typer.Option(
        None,
        "--from",
        help="Where the search starts (a REF; default: the current run's "
        "experiment inside a run, else the workspace).",
        show_default=False,
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Re-hash the data first (exit 3 if it changed)."
    ),
) -> None:
    """Print the absolute path of asset NAME (experiment → project → workspace).

    Inside `molexp run` the lookup is recorded as an input of the run."""
    from molexp.core import assets

    ws = state.workspace()
    with progress_bar(wanted=verify) as hook:  # only --verify reads the data
        asset = assets.path_for(ws, name, from_, verify, hook)
    sys.stdout.write(f"{asset.path}\n")


@app.command("find")
def find(
    name: str = typer.Argument(..., autocompletion=complete.asset, help="Asset name."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List every scope that holds an asset called NAME."""
    from molexp.core import assets

    found = assets.find_everywhere(state.workspace(), name)
    if json_out:
        output.print_json([a.to_json() for a in found.assets])
    else:
        _table(found.assets)
    _report(found.problems)


@app.command("verify")
def verify(
    scope: str | None = typer.Argument(None, help=SCOPE_HELP + " Default: every scope."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array of checks."),
) -> None:
    """Re-hash assets; exit 3 listing any whose data is missing or changed."""
    from molexp.core import assets

    ws = state.workspace()
    with progress_bar() as hook:
        result, dangling = assets.verify_with_lineage(ws, scope, hook)
    checks = result.checks
    lost = [d.to_json() for d in dangling]
    if json_out:
        output.print_json([*(c.to_json() for c in checks), *lost])
    else:
        output.print_table(
            ["scope", "name", "status", "detail"],
            [
                *([c.asset.scope.text, c.asset.name, c.status, c.detail] for c in checks),
                *([r["scope"], r["name"], r["status"], r["detail"]] for r in lost),
            ],
        )
    _report(result.problems)
    if (error := result.failure or assets.dangling_error(dangling)) is not None:
        raise error
    output.say(f"{len(checks)} asset(s) verified")


@app.command("rm")
def rm(
    scope: str = typer.Argument(..., help=SCOPE_HELP),
    name: str = typer.Argument(..., autocompletion=complete.asset, help="Asset name."),
    force: bool = typer.Option(
        False, "--force", help="Remove it even if runs recorded it as an input."
    ),
) -> None:
    """Remove an asset (refused while a run's recorded inputs refer to it)."""
    from molexp.core import assets

    asset, users = assets.remove_from(state.workspace(), scope, name, force)
    kept = " (the external file is kept)" if asset.mode in ("link", "ref") else ""
    used = f"; it was an input of {len(users.runs)} run(s)" if users.runs else ""
    output.say(f"Removed asset {asset.label}{kept}{used}")
