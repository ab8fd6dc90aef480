"""The workspace model (SPEC §1-§4): workspace → project → experiment → run.

Definitions are YAML files people may edit; this module reads and writes them
through :mod:`molexp.core.store.files` and validates names before anything is written.
Run records live in :mod:`molexp.core.records.runs`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from molexp.core.model.names import RESERVED_PARAMS, validate_name
from molexp.core.store import files as store
from molexp.errors import (
    ConflictError,
    CorruptRecordError,
    InvalidNameError,
    NotFoundError,
    UsageError,
    WorkspaceError,
    WorkspaceNotFoundError,
)

WORKSPACE_FILE = "workspace.yaml"
WORKSPACE_KIND = "molexp.workspace"
PROJECT_FILE = "project.yaml"
EXPERIMENT_FILE = "experiment.yaml"


def _is_molexp_workspace_file(path: Path) -> bool:
    """True when ``path`` is a workspace.yaml whose first key is molexp's kind."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                text = line.strip()
                if not text or text.startswith("#") or text == "---":
                    continue
                key, _, value = text.partition(":")
                return key.strip() == "kind" and _plain_value(value) == WORKSPACE_KIND
    except OSError:
        return False
    return False


def _plain_value(text: str) -> str:
    """The scalar of a one-line YAML ``key: value`` after the colon: unquoted,
    without a trailing ``# comment`` (``kind: molexp.workspace  # marks the root``)."""
    text = text.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        return text[1:end] if end > 0 else text
    for marker in (" #", "\t#"):
        text = text.split(marker, 1)[0]
    return text.strip()


def find_workspace_root(explicit: str | os.PathLike[str] | None, cwd: Path | None = None) -> Path:
    """The workspace root from ``-w``, ``$MOLEXP_WORKSPACE`` or walking up from cwd."""
    given = explicit if explicit is not None else os.environ.get("MOLEXP_WORKSPACE") or None
    if given is not None:
        root = Path(os.path.abspath(Path(given).expanduser()))
        if not _is_molexp_workspace_file(root / WORKSPACE_FILE):
            source = "--workspace" if explicit is not None else "$MOLEXP_WORKSPACE"
            raise WorkspaceNotFoundError(
                f"{root} is not a molexp workspace (from {source})",
                f"Create one with `molexp init {root}`.",
            )
        return root
    start = (cwd or Path.cwd()).absolute()
    for directory in (start, *start.parents):
        if _is_molexp_workspace_file(directory / WORKSPACE_FILE):
            return directory
    raise WorkspaceNotFoundError(
        f"no molexp workspace found in {start} or its parents",
        "Create one with `molexp init`, or pass -w PATH / set MOLEXP_WORKSPACE.",
    )


MAX_REPLICAS = 1_000_000


def _check_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


class Workspace:
    """A root directory holding a body of work; writes nothing until asked."""

    project_type: type[Project]  # the Python API front (molexp.api) gives its own

    def __init__(self, root: str | os.PathLike[str] = ".") -> None:
        self.root = Path(os.path.abspath(Path(root).expanduser()))  # normalise "..", keep symlinks
        self.use_cache = True  # False: write nothing, not even derived data (--dry-run)
        self._writable = False

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @classmethod
    def find(cls, explicit: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(find_workspace_root(explicit))

    @property
    def definition_path(self) -> Path:
        return self.root / WORKSPACE_FILE

    @property
    def projects_dir(self) -> Path:
        return self.root / "projects"

    @property
    def cache_dir(self) -> Path | None:
        """Where parsed YAML is cached (derived data: safe to delete)."""
        return self.root / store.CACHE_DIR if self.use_cache else None

    def exists(self) -> bool:
        return _is_molexp_workspace_file(self.definition_path)

    def definition(self) -> dict[str, Any]:
        return store.read_yaml_record(self.definition_path, "workspace", self.cache_dir)

    @property
    def name(self) -> str:
        return str(self.definition().get("name", self.root.name))

    def check_writable(self) -> None:
        """Refuse (exit 3) to write into this workspace unless its ``workspace.yaml``
        reads as a record this molexp understands (a newer ``schema_version`` is
        refused, naming the file).  Every writer of the record asks this, through
        the :meth:`Project.check_writable` or :meth:`Experiment.check_writable`
        of what it writes under (SPEC §4)."""
        if not self._writable:
            self.definition()
            self._writable = True

    def init(self, name: str | None = None) -> bool:
        """Create ``workspace.yaml``; return False when it already existed."""
        if self.exists():
            return False
        if self.definition_path.exists():
            raise ConflictError(
                f"{self.definition_path} exists and belongs to another tool",
                "Choose another directory for the molexp workspace.",
            )
        try:
            ws_name = validate_name(name if name is not None else self.root.name, "workspace")
        except InvalidNameError as exc:
            if name is not None:
                raise
            import shlex

            raise InvalidNameError(
                f"{exc.message} (the name of the folder {self.root})",
                f"Keep the folder and name the workspace: `molexp init "
                f"{shlex.quote(str(self.root))} --name NAME`.",
            ) from None
        store.make_dirs(self.root, self.root, durable=True)
        record = {
            "kind": WORKSPACE_KIND,
            "schema_version": store.SCHEMA_VERSION,
            "name": ws_name,
            "created_at": store.now_iso(),
        }
        from molexp.core.model.yaml12 import dump_yaml

        return store.create_exclusive(
            self.definition_path, dump_yaml(record).encode(), root=self.root
        )

    def _ensure(self) -> None:
        if not self.exists():
            self.init()

    # -- projects -------------------------------------------------------------

    def project(
        self, name: str, description: str | None = None, tags: Sequence[str] | None = None
    ) -> Project:
        """Get the project ``name``, creating it (and the workspace) if needed."""
        proj = self.project_type(self, validate_name(name, "project"))
        if not proj.exists():
            self._ensure()
            proj.create(description or "", list(tags or []))
        return proj

    def get_project(self, name: str) -> Project:
        proj = self.project_type(self, validate_name(name, "project"))
        if not proj.exists():
            from difflib import get_close_matches

            close = get_close_matches(name, self.project_names(), n=3)
            hint = (
                f"Did you mean: {', '.join(close)}?"
                if close
                else (f"Create it with `molexp project create {name}`.")
            )
            raise NotFoundError(f"no project named {name!r} in {self.root}", hint)
        return proj

    def project_names(self) -> list[str]:
        try:
            entries = sorted(os.scandir(self.projects_dir), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [e.name for e in entries if (Path(e.path) / PROJECT_FILE).exists()]

    def projects(self) -> list[Project]:
        return [self.project_type(self, n) for n in self.project_names()]

    def iter_run_dirs(
        self, project: str | None = None, experiment: str | None = None
    ) -> Iterator[tuple[str, str, Path]]:
        """Every run directory (of ``project``, of its ``experiment``) as
        ``(project, experiment, path)``, sorted."""
        for proj in [project] if project else self.project_names():
            names = [experiment] if experiment else self.project_type(self, proj).experiment_names()
            for exp in names:
                runs = self.projects_dir / proj / "experiments" / exp / "runs"
                try:
                    entries = sorted(e.name for e in os.scandir(runs) if e.is_dir())
                except FileNotFoundError:
                    continue
                for run_id in entries:
                    if not run_id.startswith("."):
                        yield proj, exp, runs / run_id


class Project:
    experiment_type: type[Experiment]

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = name
        self.path = workspace.projects_dir / name
        self._writable = False

    def __repr__(self) -> str:
        return f"Project({self.name!r})"

    @property
    def definition_path(self) -> Path:
        return self.path / PROJECT_FILE

    def exists(self) -> bool:
        return self.definition_path.is_file()

    def definition(self) -> dict[str, Any]:
        record = store.read_yaml_record(self.definition_path, "project", self.workspace.cache_dir)
        if record.get("name") != self.name:
            raise CorruptRecordError(
                self.definition_path,
                f"names project {record.get('name')!r} but lives in {self.name!r}",
            )
        return record

    def check_writable(self) -> None:
        """Refuse (exit 3) to write under this project unless its definition and the
        workspace's read as records this molexp understands (see
        :meth:`Workspace.check_writable`)."""
        if not self._writable:
            self.workspace.check_writable()
            self.definition()
            self._writable = True

    def create(self, description: str = "", tags: Sequence[str] = ()) -> bool:
        for tag in tags:
            validate_name(tag, "tag")
        self.workspace.check_writable()
        store.make_dirs(self.workspace.root, self.path, durable=True)
        record = {
            "schema_version": store.SCHEMA_VERSION,
            "name": self.name,
            "description": description,
            "tags": list(tags),
            "created_at": store.now_iso(),
        }
        from molexp.core.model.yaml12 import dump_yaml

        return store.create_exclusive(
            self.definition_path, dump_yaml(record).encode(), root=self.workspace.root
        )

    def experiment_names(self) -> list[str]:
        try:
            entries = sorted(os.scandir(self.path / "experiments"), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [e.name for e in entries if (Path(e.path) / EXPERIMENT_FILE).exists()]

    def experiments(self) -> list[Experiment]:
        return [self.experiment_type(self, n) for n in self.experiment_names()]

    def get_experiment(self, name: str) -> Experiment:
        exp = self.experiment_type(self, validate_name(name, "experiment"))
        if not exp.exists():
            from difflib import get_close_matches

            close = get_close_matches(name, self.experiment_names(), n=3)
            hint = (
                f"Did you mean: {', '.join(self.name + '/' + c for c in close)}?"
                if close
                else (f"Create it with `molexp experiment create {self.name}/{name}`.")
            )
            raise NotFoundError(f"no experiment {self.name}/{name}", hint)
        return exp

    def experiment(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        replicas: int | None = None,
        seeds: Sequence[int] | None = None,
        command: str | None = None,
        workflow_source: str | None = None,
        description: str | None = None,
        git_cwd: Path | None = None,
        strict: bool = False,
        workdir: str | os.PathLike[str] | None = None,
    ) -> Experiment:
        """Get or create the experiment ``name``.

        Arguments left as None are "not specified": an existing experiment is
        returned when every specified field equals its definition, and refused
        (:class:`ConflictError`, exit 3) when one differs.  With ``strict`` (the
        CLI) every field counts, unspecified ones as their defaults.

        ``workdir`` is where the runs' command runs and ``molcfg.yaml`` is found
        (SPEC §4), relative to ``git_cwd`` (default: the current directory, which
        is also the workdir when none is given).  It is stored relative to the
        workspace root; an experiment written before ``workdir`` existed keeps
        running in the current directory and is not refused for lacking one.
        """
        exp = self.experiment_type(self, validate_name(name, "experiment"))
        base = git_cwd or Path.cwd()
        directory = base / workdir if workdir is not None else base
        wanted = build_definition(
            self.name, exp.name, params, replicas, seeds, command, workflow_source, description,
            workdir=stored_workdir(self.workspace.root, directory),
            creating=not exp.exists(),
        )  # fmt: skip
        if exp.exists():
            current = exp.definition()
            given = {
                "params": strict or params is not None,
                "replicas": strict or replicas is not None or seeds is not None,
                "seeds": strict or seeds is not None,
                "command": strict or command is not None,
                "workflow_source": strict or workflow_source is not None,
                "description": strict or description is not None,
                "workdir": (strict or workdir is not None) and "workdir" in current,
            }
            from molexp.core.model.identity import normalise

            differ = [
                key
                for key, was_given in given.items()
                if was_given and normalise(current.get(key)) != normalise(wanted.get(key))
            ]
            if differ:
                raise ConflictError(
                    f"experiment {self.name}/{exp.name} exists with a different "
                    f"{', '.join(differ)}",
                    f"Edit {exp.definition_path}, or use a new experiment name.",
                )
            return exp
        if not self.exists():
            self.workspace._ensure()
            self.create()
        self.check_writable()
        from molexp.core.provenance.gitinfo import capture

        source = directory / workflow_source if workflow_source else directory
        wanted["git"] = capture(source).summary()
        wanted["created_at"] = store.now_iso()
        store.make_dirs(self.workspace.root, exp.path, durable=True)
        from molexp.core.model.yaml12 import dump_yaml

        if not store.create_exclusive(
            exp.definition_path, dump_yaml(wanted).encode(), root=self.workspace.root
        ):
            return self.experiment(
                name,
                params,
                replicas,
                seeds,
                command,
                workflow_source,
                description,
                git_cwd=git_cwd,
                strict=strict,
                workdir=workdir,
            )
        return exp


def build_definition(
    project: str,
    name: str,
    params: Mapping[str, Any] | None,
    replicas: int | None,
    seeds: Sequence[int] | None,
    command: str | None,
    workflow_source: str | None,
    description: str | None,
    workdir: str | None = None,
    creating: bool = False,
) -> dict[str, Any]:
    """A validated experiment definition (without git and created_at).

    ``creating`` a new experiment also refuses a param named like a built-in
    placeholder (``{seed}``, ``{params}``, ...): it would be shadowed.  One
    written before that rule keeps working (the built-in wins).
    """
    from molexp.core.model.identity import normalise

    if params is not None and not isinstance(params, Mapping):
        raise UsageError(f"params must be a mapping, got {type(params).__name__}")
    norm_params = normalise(dict(params or {}), "params")
    shadowed = [key for key in norm_params if key in RESERVED_PARAMS] if creating else []
    if shadowed:
        raise UsageError(
            f"param {shadowed[0]!r} is named like the built-in {{{shadowed[0]}}} placeholder",
            f"Rename it (built-ins: {', '.join(RESERVED_PARAMS)}).",
        )
    if workdir is not None and (not isinstance(workdir, str) or not workdir or "\0" in workdir):
        raise UsageError(f"workdir must be a directory path, got {workdir!r}")
    seed_list: list[int] | None = None
    if seeds is not None:
        seed_list = [_check_int(s, "each seed", -(2**63)) for s in seeds]
        if replicas is None:
            replicas = len(seed_list)
    count = _check_int(1 if replicas is None else replicas, "replicas", 1)
    if count > MAX_REPLICAS:
        raise UsageError(
            f"replicas must be at most {MAX_REPLICAS:,}, got {count:,}: "
            "split the work into several experiments"
        )
    if seed_list is not None and len(seed_list) != count:
        raise UsageError(
            f"seeds has {len(seed_list)} entries but replicas is {count}: "
            "give exactly one seed per replica"
        )
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise UsageError("command must be a non-empty string")
    if command is not None and "\0" in command:
        raise UsageError("command contains a NUL byte")
    record: dict[str, Any] = {
        "schema_version": store.SCHEMA_VERSION,
        "name": name,
        "project": project,
        "description": description or "",
        "params": norm_params,
        "replicas": count,
    }
    if seed_list is not None:
        record["seeds"] = seed_list
    record["command"] = command
    record["workflow_source"] = workflow_source
    if workdir is not None:
        record["workdir"] = workdir
    return record


def stored_workdir(root: Path, directory: Path) -> str:
    """``directory`` as ``experiment.yaml`` keeps it: relative to the workspace root
    (``.``, ``..``, ``../scripts``), absolute only when the two share nothing but ``/``.

    Both are compared as real paths, so a workspace reached through a symlink
    stores the same text.  A directory that does not exist is refused (exit 2).
    """
    if not directory.is_dir():
        raise UsageError(f"--workdir {directory}: not a directory")
    real_root, real_dir = os.path.realpath(root), os.path.realpath(directory)
    if os.path.dirname(os.path.commonpath([real_root, real_dir])) == os.path.commonpath(
        [real_root, real_dir]
    ):
        return real_dir  # only the filesystem root in common
    return os.path.relpath(real_dir, real_root)


class Experiment:
    def __init__(self, project: Project, name: str) -> None:
        self.project = project
        self.workspace = project.workspace
        self.name = name
        self.path = project.path / "experiments" / name
        self._definition: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Experiment({self.ref!r})"

    @property
    def ref(self) -> str:
        return f"{self.project.name}/{self.name}"

    @property
    def definition_path(self) -> Path:
        return self.path / EXPERIMENT_FILE

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    def exists(self) -> bool:
        return self.definition_path.is_file()

    def check_writable(self) -> None:
        """Refuse (exit 3) to write under this experiment (its runs, its assets)
        unless its definition, its project's and the workspace's read as records
        this molexp understands (see :meth:`Workspace.check_writable`)."""
        self.project.check_writable()
        self.definition()

    def definition(self) -> dict[str, Any]:
        """The validated definition; a hand-edited file that breaks the rules is refused."""
        if self._definition is None:
            path = self.definition_path
            record = store.read_yaml_record(path, "experiment", self.workspace.cache_dir)
            if record.get("name") != self.name or record.get("project") != self.project.name:
                raise CorruptRecordError(
                    path,
                    f"describes {record.get('project')}/{record.get('name')} "
                    f"but lives at {self.ref}",
                )
            try:
                checked = build_definition(
                    self.project.name,
                    self.name,
                    record.get("params") or {},
                    record.get("replicas"),
                    record.get("seeds"),
                    record.get("command"),
                    record.get("workflow_source"),
                    record.get("description"),
                    record.get("workdir"),
                )
            except UsageError as exc:
                raise CorruptRecordError(path, exc.message) from exc
            record.update(checked)
            self._definition = record
        return self._definition

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.definition()["params"])

    @property
    def replicas(self) -> int:
        return int(self.definition()["replicas"])

    @property
    def workdir(self) -> Path | None:
        """Where the runs' command runs and ``molcfg.yaml`` is found (SPEC §4, §9);
        None for an experiment written before ``workdir`` existed (then: the
        current directory).  A directory that is gone is refused (exit 3)."""
        stored = self.definition().get("workdir")
        if stored is None:
            return None
        path = Path(os.path.realpath(self.workspace.root / stored))
        if not path.is_dir():
            raise WorkspaceError(
                f"experiment {self.ref} runs in {path} (workdir: {stored} in "
                f"{self.definition_path}), which is not a directory",
                "Restore the directory, or edit `workdir:` in experiment.yaml.",
            )
        return path

    def seed_for(self, replica: int) -> int:
        seeds = self.definition().get("seeds")
        return int(seeds[replica]) if seeds else replica

    # -- runs -------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        try:
            return sorted(
                e.name for e in os.scandir(self.runs_dir) if e.is_dir() and e.name[0] != "."
            )
        except FileNotFoundError:
            return []


Workspace.project_type = Project
Project.experiment_type = Experiment
