"""Inside a command launched by `molexp run`: :func:`current_run` (SPEC §12).

The command never writes ``run.json`` (its parent holds it): results go to
``results.json``, asset lookups to ``attempts/<n>/inputs.jsonl`` and metrics over
time to ``attempts/<n>/metrics.jsonl`` (:meth:`RunContext.log`); molexp merges
them into the record when the attempt ends.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from molexp.core.execution.runenv import WARNINGS_FILE, RunEnv
from molexp.errors import UsageError

RESULTS_LOCK = ".results.lock"


class RunContext(RunEnv):
    """The run this process was launched for (SPEC §12), with the calls a command makes."""

    def results(self) -> dict[str, Any]:
        try:
            data = json.loads(self.results_file.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def set_result(self, key: str, value: Any) -> None:
        """Record one result (merged into ``run.json`` when the attempt ends).

        numpy scalars and arrays are stored as numbers and lists, ``nan`` and
        ``inf`` as ``"NaN"``/``"Infinity"``; a value that cannot be stored is
        named on stderr and in the attempt's ``warnings``, never raised.
        """
        self.set_results({key: value})

    def set_results(self, values: dict[str, Any]) -> None:
        """Record several results at once (see :meth:`set_result`)."""
        from molexp.core.model.results import normalise_results
        from molexp.core.store.files import ensure_inside, write_json

        clean, warnings = normalise_results(values)
        for warning in warnings:
            sys.stderr.write(f"molexp: warning: {warning}\n")
        if warnings:
            self._note(warnings)
        # Several processes of one run may set results at once: read-merge-write
        # under an exclusive lock on a sidecar file, so no key is ever lost.
        sidecar = self.results_file.parent / RESULTS_LOCK
        ensure_inside(self.workspace_root, sidecar)
        with _locked(sidecar):
            merged = self.results()
            merged.update(clean)
            write_json(self.results_file, merged, root=self.workspace_root)

    def log(self, step: float | None = None, **values: Any) -> None:
        """Record the values of metrics at ``step`` (SPEC §14): ``ctx.log(step=10, loss=0.3)``.

        One line of ``attempts/<n>/metrics.jsonl``, with ``time`` (Unix seconds)
        added unless given; without ``step`` the line's number is its step.  Lines
        are buffered and written at least once a second and when the process exits
        (:meth:`flush_metrics` writes them now); a process killed loses at most the
        last second.  The last value of each metric is folded into ``run.json`` when
        the attempt ends (``metrics.NAME`` in ``show``, ``ls``, ``compare``).
        """
        if "time" not in values:
            values["time"] = time.time()
        self._metrics.add({"step": step, **values} if step is not None else values)

    def flush_metrics(self) -> None:
        """Write the lines :meth:`log` has buffered (also done every second and at exit)."""
        self._metrics.flush()

    @cached_property
    def _metrics(self) -> _MetricsWriter:
        return _MetricsWriter(self.metrics_file, self.workspace_root)

    def _note(self, warnings: list[str]) -> None:
        """Append ``warnings`` to the attempt's ``warnings.jsonl`` (merged at its end)."""
        from molexp.core.store.files import ensure_inside

        path = self.attempt_dir / WARNINGS_FILE
        ensure_inside(self.workspace_root, path)
        self.attempt_dir.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(w, ensure_ascii=False) + "\n" for w in warnings)
        with _locked(self.results_file.parent / RESULTS_LOCK):
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(lines)

    def artifact_path(self, name: str) -> Path:
        """A path under the run's ``artifacts/`` (parent folders are created)."""
        from molexp.core.store.files import make_dirs

        path = (self.run_dir / "artifacts" / name).resolve()
        base = (self.run_dir / "artifacts").resolve()
        if base not in path.parents:
            raise UsageError(f"artifact path {name!r} leaves the run's artifacts folder")
        make_dirs(self.workspace_root, path.parent)
        return path

    def find_asset(self, name: str, scope: str | None = None) -> Path:
        """The path of asset ``name`` (experiment → project → workspace, or from
        ``scope``), recorded as an input of this run (SPEC §11)."""
        from molexp.core.assets import find_for_run

        return find_for_run(self, name, scope).path

    def register_asset(
        self,
        name: str,
        path: str | os.PathLike[str],
        mode: str = "copy",
        replace: bool = False,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> Path:
        """Add ``path`` as asset ``name`` of this run's experiment (producer: this run).

        ``mode`` is ``copy``, ``move``, ``link`` or ``ref``; returns the asset's path.
        """
        from molexp.core.assets import add_asset, run_scope
        from molexp.core.records.workspace import Workspace

        scope = run_scope(self, Workspace(self.workspace_root))
        result = add_asset(scope, name, path, mode, replace, description, tags, self.run_id)
        return result.asset.path


def _encoder() -> Callable[[Any], str]:
    """One compact JSON encoder, built once (``json.dumps`` builds one per call)."""
    from json import encoder as std

    make_encoder = getattr(std, "c_make_encoder", None)
    if make_encoder is None:  # pragma: no cover - CPython has the C encoder
        return json.JSONEncoder(separators=(",", ":")).encode
    make = make_encoder(None, None, std.encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda value: "".join(make(value, 0))


def _plain(value: Any) -> Any:
    """A value JSON can carry: numpy-like scalars (``.item()``) and other numbers
    (``__float__``) as Python numbers, containers item by item; else a UsageError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "__float__"):
        return float(value)
    raise UsageError(f"ctx.log: {type(value).__name__} values cannot be recorded ({value!r})")


class _MetricsWriter:
    """Lines for a metrics file, appended in whole lines at least once a second.

    A line is encoded when it is logged (so a bad value fails at the call); the
    buffer is written with one ``write`` to a file opened for appending, when a
    timer armed by the first line after a write fires (one second later), when it
    grows large, and at exit.  After a ``fork`` the child starts with an empty
    buffer (the parent writes its own lines).
    """

    MAX_LINES = 10_000

    def __init__(self, path: Path, root: Path) -> None:
        import atexit

        from molexp.core.store.files import ensure_inside

        ensure_inside(root, path)  # refused at the first ctx.log, not later in a timer
        self.path = path
        self.root = root
        self._encode = _encoder()
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._armed = False
        self._fd: int | None = None
        atexit.register(self.flush)
        os.register_at_fork(after_in_child=self._forget)

    def add(self, line: dict[str, Any]) -> None:
        try:
            text = self._encode(line)
        except (TypeError, ValueError):
            text = self._encode(_plain(line))
        with self._lock:
            self._lines.append(text)
            if self._armed and len(self._lines) < self.MAX_LINES:
                return
        if len(self._lines) >= self.MAX_LINES:
            self.flush()
        else:
            self._arm()

    def _arm(self) -> None:
        timer = threading.Timer(1.0, self._tick)
        timer.daemon = True
        self._armed = True
        timer.start()

    def _tick(self) -> None:
        self._armed = False
        self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._lines:
                return
            data = ("\n".join(self._lines) + "\n").encode()
            self._lines = []
            if self._fd is None:
                from molexp.core.store.files import make_dirs

                make_dirs(self.root, self.path.parent)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def _forget(self) -> None:
        self._lines = []
        self._lock = threading.Lock()
        self._armed = False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with the user's umask)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def current_run() -> RunContext:
    """The run this process belongs to (raises ``UsageError`` outside `molexp run`)."""
    return RunContext()
