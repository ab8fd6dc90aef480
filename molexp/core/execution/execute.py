"""Executing a command for one attempt (SPEC §9): a supervised process group,
streamed and saved output, signals.  Its argv is built by
:mod:`molexp.core.execution.placeholders`.

The command is started by a supervisor (:mod:`molexp.core.execution.supervisor`,
one long-lived process per thread of a batch) in a session of its own, so the
command and everything it spawns share one process group; if molexp dies (even
by ``kill -9``), the supervisor takes the whole group down, so an interrupted
command never keeps running beside its retry.  After the command itself exits,
the supervisor ends what it left behind in its group, so nothing outlives the
attempt and the output pipes close.  The calling thread streams both pipes to
the logs (and the terminal) and learns the exit code from the supervisor, all
in one ``poll`` loop: no thread per pipe.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from molexp.core.execution.supervisor import Supervisor, SupervisorError, Supervisors

DRAIN_GRACE = 10.0
"""Seconds the pipes are still read after the command ended (a background process
deaf to SIGTERM may hold them open); then the attempt ends without the rest."""


@dataclass
class CommandResult:
    exit_code: int
    signal: int | None  # SIGINT/SIGTERM received by molexp during the attempt
    duration: float
    pid: int  # the command's (its process group's id)
    log_errors: tuple[str, ...] = ()  # logs that could not be written whole (a full disk)


class SignalState:
    """Forwards SIGINT/SIGTERM to every running command group while installed.

    SIGUSR1/SIGUSR2 (a scheduler's warning before the walltime, ``--signal=B:USR1@120``)
    are relayed to each command and change nothing else: the run goes on.
    It also holds the batch's :attr:`supervisors`, ended by :meth:`uninstall`.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0
        self._groups: set[int] = set()
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}
        self.supervisors = Supervisors()
        self.heartbeat_kept: Callable[[], None] | None = None  # (see lock.keep_heartbeat)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            self._previous[sig] = signal.signal(sig, self._relay)

    def _relay(self, sig: int, frame: object) -> None:
        """Pass ``sig`` to each command (the leader of its group), not to its children."""
        with self._lock:
            groups = list(self._groups)
        for pgid in groups:
            try:
                os.kill(pgid, sig)
            except OSError:
                pass

    def uninstall(self) -> None:
        """Restore the signal handlers; end the batch's supervisors and heartbeat thread."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self.supervisors.close()
        if self.heartbeat_kept is not None:
            self.heartbeat_kept()
            self.heartbeat_kept = None

    def _handle(self, sig: int, frame: object) -> None:
        self.count += 1
        if self.received is None:
            self.received = sig
        # First signal: pass it on.  Second: insist.  Third and later: kill.
        forward = (
            sig if self.count == 1 else (signal.SIGTERM if self.count == 2 else signal.SIGKILL)
        )
        with self._lock:
            groups = list(self._groups)
        for pgid in groups:
            try:
                os.killpg(pgid, forward)
            except OSError:
                pass

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)
        if self.received is not None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except OSError:
                pass

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)


class AttemptLog:
    """One attempt log (``stdout.log``, ``stderr.log``), written as output arrives.

    Written with plain ``write(2)`` calls (no buffer to flush at close), so a write
    that fails — the disk is full, a quota is reached — is remembered here and
    not raised: the pump keeps draining the command's pipe and discards what it
    can no longer save, so the command never blocks on a full pipe and the
    attempt still ends and is recorded.  :meth:`problem` describes the loss.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self.saved = 0
        self.dropped = 0
        self.error: OSError | None = None

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and self.error is None:
            try:
                written = _write(self.fd, view)
            except OSError as exc:
                self.error = exc
                break
            self.saved += written
            view = view[written:]
        self.dropped += len(view)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError as exc:  # NFS reports a failed write back at close
            self.error = self.error or exc

    def problem(self) -> str | None:
        """``PATH: REASON; ...`` when some output could not be saved, else None."""
        if self.error is None:
            return None
        return (
            f"{self.path}: {self.error.strerror or self.error}; output after "
            f"{self.saved:,} bytes was not saved ({self.dropped:,} bytes lost)"
        )


def _write(fd: int, data: memoryview) -> int:
    """``os.write`` (a seam: a test fills the disk with OSError(ENOSPC) where it
    cannot mount a small filesystem)."""
    return os.write(fd, data)


def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    stdout_log: Path,
    stderr_log: Path,
    signals: SignalState,
    echo_stdout: IO[bytes] | None,
    echo_stderr: IO[bytes] | None,
) -> CommandResult:
    """Run ``argv`` under a supervisor, tee its output, wait for it.

    A log that cannot be written (a full disk) does not stop the command: its
    output is drained and discarded, and the loss is in ``log_errors``.
    """
    started = time.monotonic()
    out_log = AttemptLog(stdout_log)
    try:
        err_log = AttemptLog(stderr_log)
    except BaseException:
        out_log.close()
        raise
    try:
        supervisor = signals.supervisors.lend()
        pid = 0
        try:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                try:
                    pid = supervisor.start(argv, env, cwd, out_w, err_w)
                finally:
                    os.close(out_w)
                    os.close(err_w)
                signals.add(pid)
                try:
                    code = _follow(supervisor, pid, {out_r: (out_log, echo_stdout),
                                                     err_r: (err_log, echo_stderr)})  # fmt: skip
                finally:
                    signals.discard(pid)
            finally:
                os.close(out_r)
                os.close(err_r)
        except SupervisorError:
            raise
        except BaseException:
            if pid and supervisor.usable:  # not followed to its end: ended here
                _kill_group(pid)
                supervisor.usable = False
            raise
        finally:
            signals.supervisors.give_back(supervisor)
    finally:
        out_log.close()
        err_log.close()
    problems = tuple(p for p in (out_log.problem(), err_log.problem()) if p is not None)
    return CommandResult(
        exit_code=code,
        signal=signals.received,
        duration=time.monotonic() - started,
        pid=pid,
        log_errors=problems,
    )


def _follow(
    supervisor: Supervisor, pid: int, pipes: dict[int, tuple[AttemptLog, IO[bytes] | None]]
) -> int:
    """Stream ``pipes`` (read end: its log and echo) until they close, and wait for
    the command's exit code from ``supervisor``; return it.

    A supervisor lost mid-attempt kills the command's group (it can no longer be
    followed) and raises :class:`SupervisorError`.
    """
    import select

    poller = select.poll()
    for fd in pipes:
        poller.register(fd, select.POLLIN)
    poller.register(supervisor.fileno(), select.POLLIN)
    echoes = {fd: echo for fd, (_, echo) in pipes.items()}
    code: int | None = None
    deadline = 0.0
    while pipes or code is None:
        timeout = None
        if code is not None:
            timeout = (deadline - time.monotonic()) * 1000
            if timeout <= 0:
                break  # something deaf to SIGTERM holds the pipes: stop reading them
        for fd, _ in poller.poll(timeout):
            if fd not in pipes:
                if code is None:
                    try:
                        code = supervisor.exit_code()
                    except SupervisorError:
                        _kill_group(pid)
                        raise
                    poller.unregister(fd)
                    deadline = time.monotonic() + DRAIN_GRACE
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                poller.unregister(fd)
                del pipes[fd]
                continue
            pipes[fd][0].write(chunk)
            echo = echoes[fd]
            if echo is not None:
                try:
                    echo.write(chunk)
                    echo.flush()
                except (OSError, ValueError):
                    echoes[fd] = None
    assert code is not None
    return code


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def write_json_file(path: Path, data: Any, root: Path) -> None:
    """The command's copies of params/config: atomic, re-created every attempt."""
    from molexp.core.store.files import atomic_write_bytes, indented

    text = indented(data, allow_nan=True) + "\n"
    atomic_write_bytes(path, text.encode(), root=root, durable=False)
