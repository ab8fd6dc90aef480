"""Curating the record (SPEC §16): tags and notes; removing and restoring runs.

Each public function is what one command (or the web view) does, on plain
values: references in, a report out.  The writes go through their one writer:
run records through :func:`molexp.core.execution.lifecycle.annotate`, definitions
through :func:`molexp.core.records.annotations.annotate_definition`, the trash
through :mod:`molexp.core.records.trash`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from molexp.core.execution import lifecycle
from molexp.core.records import annotations as annotation
from molexp.core.records.annotations import Change
from molexp.core.records.refs import Ref, resolve
from molexp.core.records.runs import Run
from molexp.core.records.workspace import Workspace
from molexp.errors import UsageError

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
            f"{text!r} names the workspace; tags and notes go on a run, an experiment "
            "or a project"
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
