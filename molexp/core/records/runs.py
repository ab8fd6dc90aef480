"""Run records (SPEC §5, §8): create, load and validate ``run.json``.

A record is written only by the process holding the run's lock (or by
:func:`ensure_run`, which creates it exclusively).  Reading validates the schema,
that the id matches the directory, and for derived runs that the recomputed id
matches the record.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molexp.core.model import identity
from molexp.core.store import files as store
from molexp.errors import CorruptRecordError, MolexpError, NotFoundError, UsageError

if TYPE_CHECKING:
    from molexp.core.records.plan import RunSpec
    from molexp.core.records.workspace import Experiment

RUN_FILE = "run.json"
STATUSES = ("pending", "queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


def new_record(
    exp: Experiment,
    run_id: str,
    params: Mapping[str, Any],
    replica: int,
    seed: int,
    profile: str | None,
    config: Mapping[str, Any],
    identity_kind: str,
) -> dict[str, Any]:
    now = store.now_iso()
    return {
        "schema_version": store.SCHEMA_VERSION,
        "id": run_id,
        "project": exp.project.name,
        "experiment": exp.name,
        "identity": identity_kind,
        "params": identity.normalise(dict(params), "params"),
        "replica": replica,
        "seed": seed,
        "profile": profile,
        "config": identity.normalise(dict(config), "config"),
        "config_hash": identity.config_hash(config),
        "status": "pending",
        "created_at": now,
        "updated_at": now,
        "attempts": [],
        "results": {},
        "inputs": [],
    }


def validate_record(record: dict[str, Any], path: Path, project: str, experiment: str) -> None:
    run_id = path.parent.name
    if record.get("id") != run_id:
        raise CorruptRecordError(
            path, f"has id {record.get('id')!r} but lives in directory {run_id!r}"
        )
    if record.get("project") != project or record.get("experiment") != experiment:
        raise CorruptRecordError(
            path,
            f"belongs to {record.get('project')}/{record.get('experiment')}, "
            f"not {project}/{experiment}",
        )
    if record.get("status") not in STATUSES:
        raise CorruptRecordError(path, f"has unknown status {record.get('status')!r}")
    if not isinstance(record.get("attempts"), list):
        raise CorruptRecordError(path, "has no attempts list")
    if record.get("identity", "derived") == "derived":
        try:
            expected = identity.run_id(
                f"{project}/{experiment}",
                record.get("params") or {},
                record["replica"],
                record["seed"],
                record.get("profile"),
                record.get("config") or {},
            )
        except (KeyError, UsageError) as exc:
            raise CorruptRecordError(path, f"cannot recompute its id ({exc})") from exc
        if expected != run_id:
            raise CorruptRecordError(
                path,
                f"its parameters give run id {expected}, not {run_id} (edited by hand or moved?)",
            )


class Run:
    """One run record, as read at one moment."""

    def __init__(
        self, experiment: Experiment, run_id: str, record: dict[str, Any], stored: bool = True
    ) -> None:
        self.experiment = experiment
        self.id = run_id
        self.dir = experiment.runs_dir / run_id
        self.record = record
        # False for a new run whose run.json its first attempt creates (:meth:`create`).
        self.stored = stored

    def __repr__(self) -> str:
        return f"Run({self.ref!r}, status={self.status!r})"

    @classmethod
    def load(cls, exp: Experiment, run_id: str) -> Run:
        path = exp.runs_dir / check_run_dir_name(run_id) / RUN_FILE
        return cls(exp, run_id, load_record(path, exp.project.name, exp.name))

    def reload(self) -> Run:
        self.record = load_record(self.path, self.experiment.project.name, self.experiment.name)
        self.stored = True
        return self

    @property
    def path(self) -> Path:
        return self.dir / RUN_FILE

    @property
    def ref(self) -> str:
        return f"{self.experiment.ref}/{self.id}"

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record.get("params") or {})

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.record.get("config") or {})

    @property
    def results(self) -> dict[str, Any]:
        return dict(self.record.get("results") or {})

    @property
    def attempts(self) -> list[dict[str, Any]]:
        return list(self.record.get("attempts") or [])

    def attempt_dir(self, n: int) -> Path:
        return self.dir / "attempts" / str(n)

    def observed_status(self) -> str:
        """The status as things are now, without writing anything.

        A ``running`` local run whose lock is gone or stale is ``interrupted``;
        the record itself is fixed by the next command that takes the lock.
        """
        return observe(self.record, self.dir)[0]

    def save(self, durable_entry: bool = True) -> None:
        """Write the record atomically (the caller holds the run's lock), with the
        tags and notes queued for it folded in (:mod:`molexp.core.records.annotations`).

        ``durable_entry=False`` for a step that a crash may lose with the attempt
        in progress (see :func:`molexp.core.store.files.atomic_write_bytes`).

        Refused unless this process holds the run's lock and the lock in place is
        still its own (fencing, SPEC §8: an owner another host judged gone writes
        nothing), and unless the records above it are ones this molexp
        understands."""
        self._write(durable_entry, create=False)

    def create(self, durable_entry: bool = True) -> bool:
        """Write the record of a new run (``stored`` False) as :meth:`save` does, but
        only if no ``run.json`` exists yet (created whole, exclusively); return
        whether it was written.  False: another process created the run meanwhile
        (a ``pending`` record, made without the lock): reload it and save instead."""
        return self._write(durable_entry, create=True)

    def _write(self, durable_entry: bool, create: bool) -> bool:
        from molexp.core.records import annotations as annotation
        from molexp.core.store.lock import check_held

        self.experiment.check_writable()
        check_held(self.dir)  # fencing: the lock in place is still this process's own
        applied = annotation.fold(self.record, self.dir)
        self.record["updated_at"] = store.now_iso()
        root = self.experiment.workspace.root
        if create:
            data = store.dumps_json(self.record)
            if not store.create_exclusive(self.path, data, durable_entry=durable_entry, root=root):
                return False
            self.stored = True
        else:
            store.write_json(self.path, self.record, durable_entry=durable_entry, root=root)
        annotation.forget(self.dir, applied)
        return True


def check_run_dir_name(run_id: str) -> str:
    """Refuse a run id that is not one folder name (``..``, ``a/b``): no path games."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\0" in run_id:
        raise NotFoundError(
            f"invalid run id {run_id!r}", "Run ids are 16 hex characters; `molexp ls` lists them."
        )
    return run_id


def observe(record: dict[str, Any], run_dir: Path) -> tuple[str, str | None]:
    """``(status, reason)`` of a record, noticing owners that are gone."""
    status = str(record.get("status"))
    if status != "running":
        return status, None
    attempts = record.get("attempts") or []
    executor = attempts[-1].get("executor") if attempts else "local"
    from molexp.core.store.lock import read_lock  # (socket, threading: only for running records)

    lock = read_lock(run_dir)
    if lock is None:
        path = run_dir / RUN_FILE
        try:
            fresh = store.read_json_record(path, "run")
            if fresh.get("status") != "running":
                validate_record(
                    fresh, path, str(record.get("project")), str(record.get("experiment"))
                )
        except (FileNotFoundError, MolexpError):
            return status, None
        if fresh.get("status") != "running":
            # It ended since the caller read it: the caller gets the record as it is
            # now, so a listing never shows one version's status with another's attempts.
            record.clear()
            record.update(fresh)
            return str(fresh["status"]), None
        if executor == "slurm":
            return status, None  # the scheduler decides; see molexp.core.slurm.reconcile
        return "interrupted", "its process is gone (no lock held)"
    if lock.is_stale():
        return "interrupted", f"its owner ({lock.describe()}) is gone"
    return status, None


def missing_record(run_dir: Path) -> CorruptRecordError | None:
    """What a run directory without a ``run.json`` is: None while its run is being
    created (a new run's first attempt holds the run's lock and writes the record
    with itself running in it, ms later: the run does not exist yet, and no reader
    lists or reports it); else the problem to report (exit 3), for a directory left
    by a crash before its record was written, or whose record was removed."""
    from molexp.core.store.lock import read_lock  # (only for such a directory)

    lock = read_lock(run_dir)
    if lock is not None and not lock.is_stale():
        return None
    if os.path.lexists(run_dir / RUN_FILE):
        return None  # created (and its lock let go) since the caller looked: not yet seen
    return CorruptRecordError(run_dir / RUN_FILE, "is missing (run directory without a record)")


def load_record(path: Path, project: str, experiment: str) -> dict[str, Any]:
    record = store.read_json_record(path, "run")
    validate_record(record, path, project, experiment)
    return record


def record_for(exp: Experiment, spec: RunSpec) -> dict[str, Any]:
    """The fresh ``pending`` record of the derived run ``spec``."""
    return new_record(
        exp, spec.run_id, spec.params, spec.replica, spec.seed, spec.profile, spec.config, "derived"
    )


def peek_run(exp: Experiment, spec: RunSpec) -> tuple[Run, bool]:
    """``(run, exists)``: the run of ``spec`` as on disk, or as it would be created.

    Writes nothing (``--dry-run``, planning a submission).
    """
    path = exp.runs_dir / spec.run_id / RUN_FILE
    try:
        return Run(exp, spec.run_id, load_record(path, spec.project, spec.experiment)), True
    except FileNotFoundError:
        return Run(exp, spec.run_id, record_for(exp, spec)), False


def create_run(
    exp: Experiment, run_id: str | None = None, params: Mapping[str, Any] | None = None
) -> Run:
    """A fresh ``pending`` run with a random id (``identity: random``)."""
    from molexp.core.records.plan import effective_params

    if run_id is not None and not identity.is_run_id(run_id):
        raise UsageError(f"invalid run id {run_id!r}: use 16 lowercase hex characters")
    rid = run_id or identity.random_run_id()
    merged = effective_params(exp.params, list((params or {}).items()))
    record = new_record(exp, rid, merged, 0, exp.seed_for(0), None, {}, "random")
    exp.check_writable()
    root = exp.workspace.root
    store.make_dirs(root, exp.runs_dir / rid, durable=True)
    if not store.create_exclusive(
        exp.runs_dir / rid / RUN_FILE, store.dumps_json(record), root=root
    ):
        raise UsageError(f"run {exp.ref}/{rid} already exists")
    return Run(exp, rid, record)


def ensure_run(
    exp: Experiment, spec: RunSpec, durable_entry: bool = True, write: bool = True
) -> Run:
    """The derived run of ``spec``, created ``pending`` if it does not exist yet.

    ``durable_entry=False`` when an attempt starts at once: the new record's
    directory entry then becomes durable with the attempt's outcome (the same
    directory is fsynced then), one fsync fewer per run.  ``write=False`` (an
    attempt starts at once, under the run's lock): only the run's directory is
    made; the record stays in memory (``stored`` False) for the attempt to create
    with itself in it (:meth:`Run.create`): one record write and fsync fewer."""
    run_dir = exp.runs_dir / spec.run_id
    path = run_dir / RUN_FILE
    try:
        return Run(exp, spec.run_id, load_record(path, spec.project, spec.experiment))
    except FileNotFoundError:
        pass
    if (run_dir / "attempts").exists():
        raise CorruptRecordError(
            path,
            "is missing, but the run directory holds attempts",
            "Restore run.json (from a backup), or move the run directory away; "
            "molexp will not start over on top of its logs.",
        )
    record = record_for(exp, spec)
    exp.check_writable()
    _make_run_dir(exp, run_dir)
    if not write:
        return Run(exp, spec.run_id, record, stored=False)
    if store.create_exclusive(
        path, store.dumps_json(record), durable_entry=durable_entry, root=exp.workspace.root
    ):
        return Run(exp, spec.run_id, record)  # what was just written, valid by construction
    return Run(exp, spec.run_id, load_record(path, spec.project, spec.experiment))  # a racer's


def _make_run_dir(exp: Experiment, run_dir: Path) -> None:
    """Create ``runs/`` and the run's directory, each durable in its parent, but
    never the experiment's folder: an experiment moved to the trash meanwhile
    (`molexp rm`) is not brought back as an empty skeleton."""
    store.ensure_inside(exp.workspace.root, run_dir)
    for directory in (exp.runs_dir, run_dir):
        try:
            os.mkdir(directory)
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise NotFoundError(
                f"experiment {exp.ref} is gone (removed by `molexp rm`?)",
                "`molexp trash ls` lists what was removed.",
            ) from None
        store.fsync_dir(directory.parent)


def find_run_dir(exp: Experiment, run_id: str) -> Path:
    path = exp.runs_dir / check_run_dir_name(run_id)
    if not (path / RUN_FILE).exists():
        raise NotFoundError(f"no run {exp.ref}/{run_id}")
    return path


def list_attempt_numbers(run_dir: Path) -> list[int]:
    try:
        return sorted(int(e.name) for e in os.scandir(run_dir / "attempts") if e.name.isdigit())
    except FileNotFoundError:
        return []
