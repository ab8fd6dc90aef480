"""The one error hierarchy of molexp.

Every error a user can cause is a :class:`MolexpError`; its ``exit_code`` is the
code of SPEC §10 the command ends with.  Each class also inherits the builtin
exception it is closest to, so Python callers can catch ``LookupError`` or
``ValueError`` without knowing molexp's names.  Anything that is not a
``MolexpError`` is a bug and exits 70.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_INTERNAL = 70
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class MolexpError(Exception):
    """Base of every expected error; ``str(err)`` is the message for the user."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


# --- exit 2: the user asked for something wrong -------------------------------


class UsageError(MolexpError, ValueError):
    """Bad usage or bad input: invalid value, malformed file, unknown profile."""

    exit_code = EXIT_USAGE


class InvalidNameError(UsageError):
    """A project, experiment or asset name that SPEC §3 does not allow."""


class ConfigError(UsageError):
    """A profile file (molcfg.yaml) or an override that cannot be used."""


class NotFoundError(UsageError, LookupError):
    """A name or reference that matches nothing (or more than one thing)."""


# --- exit 3: the workspace refuses --------------------------------------------


class WorkspaceError(MolexpError):
    """The workspace refuses the operation."""

    exit_code = EXIT_REFUSED


class WorkspaceNotFoundError(WorkspaceError, LookupError):
    """No workspace.yaml was found."""


class CorruptRecordError(WorkspaceError):
    """A record on disk cannot be read or does not match where it lives."""

    def __init__(self, path: object, problem: str, hint: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(
            f"{self.path}: {problem}",
            hint or "Inspect or restore the file; `molexp doctor` lists every problem.",
        )


class SchemaVersionError(CorruptRecordError):
    """A record written by a newer molexp."""


class ConflictError(WorkspaceError):
    """Something already exists with a different definition or content."""


class RunLockedError(WorkspaceError):
    """A run is held by a live owner (running or queued elsewhere)."""


class LockLostError(WorkspaceError):
    """A run's lock was broken and taken over while this process held it (it was
    judged gone): it must write nothing more to the run's record."""


class AssetHashMismatchError(WorkspaceError):
    """An asset's files no longer match its recorded content hash."""


class ExecutorError(WorkspaceError):
    """The executor (e.g. SLURM) is missing or unreachable."""


# --- warnings -----------------------------------------------------------------


class UnreadableRecordWarning(UserWarning):
    """A record skipped because it cannot be read (the Python API's ``runs()``)."""
