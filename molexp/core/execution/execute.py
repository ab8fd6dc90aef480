"""Executing a command for one attempt (SPEC §9): a supervised process group,
streamed and saved output, signals.  Its argv is built by
:mod:`molexp.core.execution.placeholders`.

The command runs under a tiny supervisor process (``python -S``) that starts a
new session, so the command and everything it spawns share one process group.
The supervisor asks Linux for a parent-death signal: if molexp dies (even by
``kill -9``), the supervisor takes the whole group down, so an interrupted
command never keeps running beside its retry.  After the command itself exits,
the supervisor ends what it left behind in its group, so nothing outlives the
attempt and the output pipes close.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

KILL_GRACE = 5.0

_SUPERVISOR = r"""
import os, sys, _signal as signal  # the C module: importing `signal` costs ~5 ms (enum)
parent = int(sys.argv[1]); grace = float(sys.argv[2]); argv = sys.argv[3:]
try:  # PR_SET_PDEATHSIG through the C module: importing `ctypes` costs ~10 ms
    import _ctypes
    _ctypes.call_function(_ctypes.dlsym(_ctypes.dlopen(None, 2), "prctl"), (1, signal.SIGTERM))
except Exception:
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    except Exception:
        pass
def end_group(sig):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(0, sig)
    except OSError:
        pass
def on_signal(sig, frame):
    if os.getppid() != parent:  # molexp is gone: the command goes with it
        end_group(signal.SIGTERM)
        signal.signal(signal.SIGALRM, lambda s, f: end_group(signal.SIGKILL))
        signal.setitimer(signal.ITIMER_REAL, grace)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, on_signal)
for s in (signal.SIGUSR1, signal.SIGUSR2):  # relayed to the command, not fatal here
    signal.signal(s, signal.SIG_IGN)
if os.getppid() != parent:
    os._exit(137)
pid = os.fork()
if pid == 0:
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write("molexp: cannot execute %s: %s\n" % (argv[0], exc.strerror))
        os._exit(127)
def relay(sig, frame):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
for s in (signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, relay)
while True:
    try:
        _, status = os.waitpid(pid, 0)
        break
    except ChildProcessError:
        status = 0
        break
code = os.waitstatus_to_exitcode(status)
end_group(signal.SIGTERM)  # what the command left running in its group
os._exit(code if code >= 0 else 128 - code)
"""


@dataclass
class CommandResult:
    exit_code: int
    signal: int | None  # SIGINT/SIGTERM received by molexp during the attempt
    duration: float
    pid: int
    log_errors: tuple[str, ...] = ()  # logs that could not be written whole (a full disk)


class SignalState:
    """Forwards SIGINT/SIGTERM to every running command group while installed.

    SIGUSR1/SIGUSR2 (a scheduler's warning before the walltime, ``--signal=B:USR1@120``)
    are relayed to each command and change nothing else: the run goes on.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0
        self._groups: set[int] = set()
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            self._previous[sig] = signal.signal(sig, self._relay)

    def _relay(self, sig: int, frame: object) -> None:
        """Pass ``sig`` to each command's supervisor, which hands it to the command."""
        with self._lock:
            groups = list(self._groups)
        for pgid in groups:
            try:
                os.kill(pgid, sig)
            except OSError:
                pass

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, sig: int, frame: object) -> None:
        self.count += 1
        if self.received is None:
            self.received = sig
        # First signal: pass it on.  Second: insist.  Third and later: kill.
        forward = sig if self.count == 1 else (signal.SIGTERM if self.count == 2 else signal.SIGKILL)
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


def _pump(source: IO[bytes], log: AttemptLog, echo: IO[bytes] | None) -> None:
    fd = source.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        log.write(chunk)
        if echo is not None:
            try:
                echo.write(chunk)
                echo.flush()
            except (OSError, ValueError):
                echo = None


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
    """Run ``argv`` under the supervisor, tee its output, wait for it.

    A log that cannot be written (a full disk) does not stop the command: its
    output is drained and discarded, and the loss is in ``log_errors``.
    """
    started = time.monotonic()
    sup = [sys.executable, "-S", "-E", "-c", _SUPERVISOR, str(os.getpid()), str(KILL_GRACE), *argv]
    out_log = AttemptLog(stdout_log)
    try:
        err_log = AttemptLog(stderr_log)
    except BaseException:
        out_log.close()
        raise
    try:
        proc = subprocess.Popen(
            sup,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        signals.add(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, out_log, echo_stdout), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, err_log, echo_stderr), daemon=True),
        ]
        for t in pumps:
            t.start()
        try:
            code = proc.wait()
        finally:
            signals.discard(proc.pid)
        for t in pumps:
            t.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    finally:
        out_log.close()
        err_log.close()
    problems = tuple(p for p in (out_log.problem(), err_log.problem()) if p is not None)
    return CommandResult(
        exit_code=code,
        signal=signals.received,
        duration=time.monotonic() - started,
        pid=proc.pid,
        log_errors=problems,
    )


def write_json_file(path: Path, data: Any, root: Path) -> None:
    """The command's copies of params/config: atomic, re-created every attempt."""
    from molexp.core.store.files import atomic_write_bytes

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode(), root=root, durable=False)
