"""Curating the record (SPEC §16): tags and notes; removing and restoring runs.

Each public function is what one command (or the web view) does, on plain
values: references in, a report out.  The writes go through their one writer:
run records through :func:`molexp.core.execution.lifecycle.annotate`, definitions
through :func:`molexp.core.records.annotations.annotate_definition`, the trash
through :mod:`molexp.core.records.trash`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from molexp.core.execution import lifecycle
from molexp.core.records import annotations as annotation
from molexp.core.records import trash
from molexp.core.records.annotations import Change
from molexp.core.records.refs import Ref, resolve
from molexp.core.records.runs import Run
from molexp.core.records.workspace import Experiment, Project, Workspace
from molexp.core.store import files as store
from molexp.core.views.summary import run_record
from molexp.errors import MolexpError, RunLockedError, UsageError, WorkspaceError

# --- tags and notes --------------------------------------------------------------


class Annotated(NamedTuple):
    """A run, experiment or project after a tag or note: its tags and notes as
    they now read, and whether the change waits for the attempt holding the run."""

    kind: str  # run | experiment | project
    ref: str
    tags: list[str]
    notes: list[dict[str, Any]]
    pending: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "tags": self.tags,
            "notes": self.notes,
            "pending": self.pending,
        }


def split_tag_words(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """`molexp tag`'s words: ``(refs, ops)``, ops being the ``+TAG``/``-TAG`` ones."""
    refs = [w for w in words if w[:1] not in ("+", "-")]
    ops = [w for w in words if w[:1] in ("+", "-")]
    return refs, ops


def _target(ws: Workspace, text: str) -> Ref:
    target = resolve(ws, text)
    if target.kind == "workspace":
        raise UsageError(
            f"{text!r} names the workspace; tags and notes go on a run, an experiment or a project"
        )
    return target


def _annotate(target: Ref, ch: Change) -> Annotated:
    if target.kind == "run":
        assert target.experiment is not None and target.run_id is not None
        run = Run.load(target.experiment, target.run_id)
        saved = lifecycle.annotate(run, ch)
        record = run.record if saved else annotation.with_pending(dict(run.record), run.dir)
        return Annotated(
            "run", target.text, annotation.tags_of(record), annotation.notes_of(record), not saved
        )
    if target.kind == "experiment":
        assert target.experiment is not None
        path, kind = target.experiment.definition_path, "experiment"
        target.experiment.check_writable()  # a definition that breaks the rules is refused
    else:
        assert target.project is not None
        path, kind = target.project.definition_path, "project"
        target.project.check_writable()
    record = annotation.annotate_definition(path, kind, ch, target.workspace.root)
    return Annotated(kind, target.text, annotation.tags_of(record), annotation.notes_of(record))


def tag(
    ws: Workspace, refs: Sequence[str], add: Sequence[str] = (), remove: Sequence[str] = ()
) -> list[Annotated]:
    """Add the tags ``add`` and then remove the tags ``remove`` on each of ``refs``
    (runs, experiments, projects); with neither, only report their tags."""
    return tag_ops(ws, refs, [*(f"+{t}" for t in add), *(f"-{t}" for t in remove)])


def tag_ops(ws: Workspace, refs: Sequence[str], ops: Sequence[str]) -> list[Annotated]:
    """:func:`tag` with ``+TAG``/``-TAG`` operations applied in the order given.

    Every reference and tag is checked before anything is written.
    """
    if not refs:
        raise UsageError("name at least one run, experiment or project to tag")
    ch = annotation.tag_ops(ops)
    targets = [_target(ws, r) for r in refs]
    if not ops:
        return [_current(t) for t in targets]
    out = [_annotate(t, ch) for t in targets]
    annotation.remember_tags(ws.root, [op[1:] for op in ops if op[0] == "+"])
    return out


def note(ws: Workspace, ref: str, text: str) -> Annotated:
    """Add the note ``text`` (stamped now) to the run, experiment or project ``ref``."""
    ch = annotation.change(note=text)
    return _annotate(_target(ws, ref), ch)


def _current(target: Ref) -> Annotated:
    if target.kind == "run":
        assert target.experiment is not None and target.run_id is not None
        run = Run.load(target.experiment, target.run_id)
        record = annotation.with_pending(dict(run.record), run.dir)
    elif target.kind == "experiment":
        assert target.experiment is not None
        record = target.experiment.definition()
    else:
        assert target.project is not None
        record = target.project.definition()
    return Annotated(
        target.kind, target.text, annotation.tags_of(record), annotation.notes_of(record)
    )


# --- removing to the trash ---------------------------------------------------------


@dataclass
class Removal:
    """What `molexp rm` would move (``items``, the runs among them in ``runs``) and
    what it refuses (``refused``: ``(ref, reason)``; then nothing moves).  Records
    that could not be judged are in ``problems`` (named; the command exits 3)."""

    refs: list[str]
    items: list[trash.Item] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    problems: list[MolexpError] = field(default_factory=list)
    force: bool = False
    entry: trash.Entry | None = None  # once carried out

    def to_json(self) -> dict[str, Any]:
        return {
            "refs": self.refs,
            "items": [i.to_json() for i in self.items],
            "runs": self.runs,
            "refused": [{"ref": r, "reason": why} for r, why in self.refused],
            "problems": [str(p).splitlines()[0] for p in self.problems],
            "trash": self.entry.id if self.entry is not None else None,
        }


def _rel(ws: Workspace, path: Path) -> str:
    return path.relative_to(ws.root).as_posix()


def _run_item(exp: Experiment, run_id: str) -> trash.Item:
    return trash.Item("run", f"{exp.ref}/{run_id}", _rel(exp.workspace, exp.runs_dir / run_id))


def _targets(ws: Workspace, refs: Sequence[str], where: Sequence[str], out: Removal) -> None:
    from molexp.core.views import query
    from molexp.core.views.listing import select

    conditions = query.parse_where(where)
    if not refs and not conditions:
        raise UsageError("name what to remove: runs, experiments or projects (or --where COND)")
    for text in refs or ["."]:
        target = resolve(ws, text)
        if conditions:
            if target.kind == "run":
                assert target.experiment is not None and target.run_id is not None
                record = run_record(target)
                if query.matches(record, conditions):
                    out.items.append(_run_item(target.experiment, target.run_id))
                continue
            found = select(
                ws,
                target.project.name if target.project else None,
                target.experiment.name if target.experiment else None,
                where=conditions,
            )
            out.problems.extend(found.problems)
            for row in found.rows:
                exp = Experiment(Project(ws, row.project), row.experiment)
                out.items.append(_run_item(exp, row.id))
            continue
        if target.kind == "workspace":
            raise UsageError(
                "molexp rm . would remove every project",
                "Name the projects, experiments or runs, or select runs with --where.",
            )
        if target.kind == "run":
            assert target.experiment is not None and target.run_id is not None
            out.items.append(_run_item(target.experiment, target.run_id))
        elif target.kind == "experiment":
            assert target.experiment is not None
            exp = target.experiment
            out.items.append(
                trash.Item("experiment", exp.ref, _rel(ws, exp.path), len(exp.run_ids()))
            )
        else:
            assert target.project is not None
            proj = target.project
            count = sum(len(e.run_ids()) for e in proj.experiments())
            out.items.append(trash.Item("project", proj.name, _rel(ws, proj.path), count))
    # Once each, and nothing that a container in the list holds already.
    unique: dict[str, trash.Item] = {}
    for item in out.items:
        unique.setdefault(item.path, item)
    paths = list(unique)
    out.items = [
        i for p, i in unique.items() if not any(p.startswith(q + "/") for q in paths if q != p)
    ]


def _check_writable(ws: Workspace, item: trash.Item) -> None:
    """Refuse (exit 3) to move what lies under a record newer than this molexp, or
    what a symlink leads out of the workspace (it would move files from elsewhere)."""
    parts = item.path.split("/")
    if item.kind == "run":
        Experiment(Project(ws, parts[1]), parts[3]).check_writable()
    elif item.kind == "experiment":
        Project(ws, parts[1]).check_writable()
    else:
        ws.check_writable()
    for depth in range(2, len(parts) + 1):
        here = ws.root.joinpath(*parts[:depth])
        if here.is_symlink():
            raise WorkspaceError(
                f"{here} is a symlink; molexp rm moves only what lies in the workspace",
                "Move the linked folder into the workspace, or remove it by hand.",
            )
    store.ensure_inside(ws.root, ws.root / item.path)


def _run_dirs(ws: Workspace, item: trash.Item) -> list[Path]:
    """The run directories an item holds (for a run: itself)."""
    top = ws.root / item.path
    if item.kind == "run":
        return [top]
    experiments = [top] if item.kind == "experiment" else trash._subdirs(top / "experiments")
    return sorted(d for exp in experiments for d in trash._subdirs(exp / "runs"))


def _judge_run(ws: Workspace, run_dir: Path, force: bool, locked: bool) -> str | None:
    """Why the run in ``run_dir`` may not go (None: it may)."""
    from molexp.core.records.runs import RUN_FILE, observe
    from molexp.core.store import lock as locks

    if not locked:
        state = locks.read_lock(run_dir)
        if state is not None and not state.is_stale():
            return f"is held by {state.describe()}; stop it first (`molexp cancel`)"
    try:
        record = store.read_json_record(run_dir / RUN_FILE, "run")
    except (FileNotFoundError, MolexpError):
        return None  # nothing to judge: it goes with its experiment, as it is
    status, _ = observe(record, run_dir)
    if status == "running" and not locked:
        return "is running; stop it first (`molexp cancel`)"
    if status == "queued" and not force:
        job = (record.get("attempts") or [{}])[-1].get("scheduler_job_id")
        return f"is queued (SLURM job {job}); cancel it first, or pass --force"
    return None


def _lineage(ws: Workspace, items: Sequence[trash.Item]) -> dict[str, list[str]]:
    """For each run directory (workspace-relative) among ``items``: the assets that
    refer to it (their ``producer`` is the run, or their data lies in it), leaving
    out assets that go to the trash with it."""
    from molexp.core.assets import all_scopes, scan

    removed = [ws.root / i.path for i in items]
    runs = {_rel(ws, d): d.name for item in items for d in _run_dirs(ws, item)}  # rel -> run id
    by_id: dict[str, list[str]] = {}
    for rel, run_id in runs.items():
        by_id.setdefault(run_id, []).append(rel)
    out: dict[str, list[str]] = {}
    for asset in scan(all_scopes(ws)).assets:
        if any(_within(asset.dir, top) for top in removed):
            continue  # it goes too
        label = f"asset {asset.scope.text}:{asset.name}"
        producer = asset.record.get("producer")
        for rel in by_id.get(str(producer), []):
            out.setdefault(rel, []).append(f"{label} names it as its producer")
        # a --link or --ref asset's data is where its source is (checked on load)
        linked = asset.mode in ("link", "ref")
        data = Path(os.path.abspath(str(asset.record["source"]) if linked else asset.path))
        for rel in runs:
            if _within(data, ws.root / rel):
                out.setdefault(rel, []).append(f"{label} keeps its data in it")
    return out


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _judge(ws: Workspace, removal: Removal, locked: bool) -> None:
    removal.refused = []
    for item in removal.items:
        for run_dir in _run_dirs(ws, item):
            why = _judge_run(ws, run_dir, removal.force, locked)
            if why is not None:
                removal.refused.append((_run_ref(ws, run_dir), why))
    if not removal.force:
        for rel, reasons in sorted(_lineage(ws, removal.items).items()):
            removal.refused.append(
                (_run_ref(ws, ws.root / rel), "; ".join(reasons) + " (--force removes it anyway)")
            )


def _run_ref(ws: Workspace, run_dir: Path) -> str:
    parts = _rel(ws, run_dir).split("/")
    return f"{parts[1]}/{parts[3]}/{parts[5]}"


def plan_rm(
    ws: Workspace, refs: Sequence[str], where: Sequence[str] = (), force: bool = False
) -> Removal:
    """What `molexp rm REF... [--where COND]...` would move and what it refuses;
    writes nothing (``--dry-run``, and the list shown before asking)."""
    out = Removal(refs=list(refs), force=force)
    _targets(ws, refs, where, out)
    for item in out.items:
        _check_writable(ws, item)
    out.runs = [_run_ref(ws, d) for item in out.items for d in _run_dirs(ws, item)]
    _judge(ws, out, locked=False)
    return out


def rm(ws: Workspace, removal: Removal) -> Removal:
    """Carry out a planned removal: take every run's lock (and mark whole
    experiments and projects so that no run starts in them), judge again, move
    each item into a new trash entry, let go.  Refused (exit 3, nothing moved)
    when anything is refused or held."""
    from molexp.core.store import lock as locks

    if removal.refused:
        raise _refusal(removal)
    if not removal.items:
        return removal
    markers: list[Path] = []
    held: list[locks.RunLock] = []
    moved = False
    try:
        for item in removal.items:
            if item.kind != "run":
                top = ws.root / item.path
                if not trash.mark(ws.root, top):
                    raise RunLockedError(
                        f"{item.ref} is being removed by another `molexp rm`", "Try again later."
                    )
                markers.append(top / trash.MARKER)
            for run_dir in _run_dirs(ws, item):
                got = locks.try_acquire(run_dir, "rm", root=ws.root)
                if not isinstance(got, locks.RunLock):
                    raise RunLockedError(
                        f"run {_run_ref(ws, run_dir)} is held by {got.describe()}",
                        "Nothing was removed; stop it first (`molexp cancel`), then retry.",
                    )
                held.append(got)
        _judge(ws, removal, locked=True)
        if removal.refused:
            raise _refusal(removal)
        entry_id, entry_dir = trash.open_entry(ws.root)
        trash.write_manifest(
            ws.root, entry_dir, entry_id, removal.items, removal.refs, removal.force
        )
        for item in removal.items:
            trash.move_in(ws.root, entry_dir, item.path)
            moved = True
            trash.tidy(entry_dir / item.path, item.kind)
            store.fsync_dir((ws.root / item.path).parent)
        _forget_indexes(ws, removal.items)
        removal.entry = trash.find(ws.root, entry_id)
        return removal
    finally:
        for lock in held:
            lock.release()  # (moved: the lock went with the run, and `tidy` removed it)
        if not moved:
            for marker in markers:
                marker.unlink(missing_ok=True)


def _refusal(removal: Removal) -> WorkspaceError:
    ref, why = removal.refused[0]
    more = f" (and {len(removal.refused) - 1} more)" if len(removal.refused) > 1 else ""
    return WorkspaceError(f"run {ref} {why}{more}", "Nothing was removed.")


def _forget_indexes(ws: Workspace, items: Sequence[trash.Item]) -> None:
    """The listing indexes of removed experiments (derived data) go at once."""
    from molexp.core.records.index import index_path

    for item in items:
        parts = item.path.split("/")
        if item.kind == "experiment":
            path = index_path(ws.root, parts[1], parts[3])
            if path is not None:
                path.unlink(missing_ok=True)
        elif item.kind == "project":
            from molexp.core.records.index_entry import INDEX_DIR

            shutil.rmtree(ws.root / INDEX_DIR / parts[1], ignore_errors=True)


def trash_list(ws: Workspace) -> tuple[list[trash.Entry], list[MolexpError]]:
    """`molexp trash ls`: every removal in the trash, oldest first."""
    found, problems = trash.entries(ws.root)
    return found, list(problems)


def trash_restore(ws: Workspace, entry_id: str) -> trash.Entry:
    """`molexp trash restore ID`: put what the entry holds back where it was."""
    ws.check_writable()
    entry = trash.find(ws.root, entry_id)
    trash.restore(ws.root, entry)
    return entry


def trash_plan_empty(ws: Workspace, older_than: float | None = None) -> list[trash.Entry]:
    """The entries `molexp trash empty [--older-than DAYS]` deletes."""
    if older_than is not None and not older_than >= 0:
        raise UsageError(f"--older-than must be a number of days >= 0, got {older_than}")
    found, _ = trash.entries(ws.root)
    return [e for e in found if older_than is None or trash.age_days(e) > older_than]


def trash_empty(ws: Workspace, entries: Sequence[trash.Entry]) -> list[trash.Entry]:
    """Delete ``entries`` for good."""
    for entry in entries:
        trash.drop(entry)
    return list(entries)
