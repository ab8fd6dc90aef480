"""The Python API front (SPEC §12): the model's objects with the calls a script makes.

``mx.Workspace(...).project(...).experiment(...)`` are the definitions of
:mod:`molexp.core.records.workspace`; the experiment here adds runs: a fresh one
(:meth:`Experiment.run`), the CLI's deterministic one (:meth:`Experiment.run_for`)
and the ones on disk (:meth:`Experiment.runs`).  Everything below is plain core
functions; the model itself knows nothing of planning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from molexp.core.records import workspace as model
from molexp.core.records.plan import plan_one
from molexp.core.records.profiles import resolve_config
from molexp.core.records.runs import Run, create_run, ensure_run
from molexp.errors import CorruptRecordError, UnreadableRecordWarning, UsageError


class RunList(list[Run]):
    """A list of runs, with the records that could not be read beside it."""

    problems: list[CorruptRecordError]

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        super().__init__(runs)
        self.problems = []


class Experiment(model.Experiment):
    def get_run(self, run_id: str) -> Run:
        return Run.load(self, run_id)

    def runs(
        self,
        status: str | Sequence[str] | None = None,
        where: Sequence[str] = (),
        sort: Sequence[str] = (),
        limit: int | None = None,
        errors: str = "warn",
    ) -> RunList:
        """The readable runs of this experiment, in id order (unless sorted).

        ``status``: a status or several, as observed now; ``where``: conditions such
        as ``"results.energy<-1.3"`` (all must hold), ``sort``: keys such as
        ``"-metrics.loss"``, ``limit``: at most that many -- the grammar of
        ``molexp ls`` (docs/questions.md).  A bad condition raises ``UsageError``.

        One unreadable record never hides the others (SPEC §8): with ``errors``
        ``"warn"`` (the default) each is skipped with an
        :class:`~molexp.errors.UnreadableRecordWarning` naming the file, with
        ``"skip"`` silently; either way the returned list's ``problems`` holds
        the errors.  ``"raise"`` raises the first (a
        :class:`~molexp.errors.CorruptRecordError`).
        """
        from molexp.core.views import query

        if errors not in ("warn", "skip", "raise"):
            raise UsageError(f"errors must be 'warn', 'skip' or 'raise', got {errors!r}")
        conditions = query.parse_where(where, "where")
        keys = query.parse_sort(sort, "sort")
        query.parse_limit(limit)
        wanted = {status} if isinstance(status, str) else set(status or ())
        out = RunList()
        problems: list[CorruptRecordError] = []
        for run_id in self.run_ids():
            try:
                run = Run.load(self, run_id)
            except FileNotFoundError:
                continue
            except CorruptRecordError as exc:
                if errors == "raise":
                    raise
                problems.append(exc)
                if errors == "warn":
                    warnings.warn(f"{exc.message} (skipped)", UnreadableRecordWarning, stacklevel=2)
                continue
            if not (wanted or conditions):
                out.append(run)
                continue
            observed = run.observed_status()
            if wanted and observed not in wanted:
                continue
            if conditions and not query.matches({**run.record, "status": observed}, conditions):
                continue
            out.append(run)
        if keys:
            out = RunList(query.sort_records(out, keys, lambda r: r.record, limit))
        if limit is not None:
            out = RunList(out[:limit])
        out.problems = problems
        return out

    def run(self, id: str | None = None, params: Mapping[str, Any] | None = None) -> Run:
        """A fresh ``pending`` run with a random id (or the explicit ``id``)."""
        return create_run(self, run_id=id, params=params)

    def run_for(
        self,
        replica: int = 0,
        profile: str | None = None,
        overrides: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        params: Mapping[str, Any] | None = None,
        config: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        new_param: bool = False,
    ) -> Run:
        """The deterministic run the CLI would use (created as ``pending`` if new).

        As for `molexp run`, ``molcfg.yaml`` is looked for in the experiment's
        ``workdir`` (the current directory for an experiment without one) unless
        ``cwd`` or ``config`` (relative to ``cwd`` or the current directory) says
        otherwise; a ``params`` key the experiment lacks
        is refused unless ``new_param``.
        """
        items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides or [])
        here = Path(cwd) if cwd is not None else Path.cwd()  # a relative ``config`` is from here
        resolved = resolve_config(
            here / config if config is not None else None,
            Path(cwd) if cwd is not None else self.workdir or here,
            profile,
            items,
            cache_dir=self.workspace.cache_dir,
        )
        spec = plan_one(self, replica, resolved, dict(params or {}), new_param)
        return ensure_run(self, spec)


class Project(model.Project):
    experiment_type = Experiment

    def experiment(self, *args: Any, **kwargs: Any) -> Experiment:  # noqa: D401
        exp = super().experiment(*args, **kwargs)
        assert isinstance(exp, Experiment)
        return exp

    def get_experiment(self, name: str) -> Experiment:
        exp = super().get_experiment(name)
        assert isinstance(exp, Experiment)
        return exp


class Workspace(model.Workspace):
    """A root directory holding a body of work; writes nothing until asked."""

    project_type = Project

    def project(
        self, name: str, description: str | None = None, tags: Sequence[str] | None = None
    ) -> Project:
        proj = super().project(name, description, tags)
        assert isinstance(proj, Project)
        return proj

    def get_project(self, name: str) -> Project:
        proj = super().get_project(name)
        assert isinstance(proj, Project)
        return proj
