"""The run lock (SPEC §8): exclusive create, owner identity, heartbeat, staleness.

``runs/<id>/.lock`` exists only while a process holds the run.  It is created
exclusively and whole (a finished temporary file hard-linked into place: atomic
on local filesystems and on NFS), holds the owner's host, pid, the pid's start
time and the boot id (so a recycled pid is never mistaken for the owner), and
its mtime is the heartbeat.

A lock is *stale* when its owner is gone: on the same host, the pid no longer
runs with the recorded start time; on another host, the heartbeat is older than
:data:`heartbeat_timeout` seconds.  Breaking a stale lock happens under a second
short-lived lock (``.lock.break``) so two processes never both break and claim.

Fencing: an owner judged gone may in fact only have paused (a suspended VM, an
NFS stall longer than the timeout) and wake up after another host broke its lock
and started a new attempt.  So every record write re-checks, just before it,
that the lock in place is still this process's own (same inode, same owner):
:func:`check_held`, which :meth:`Run.save` calls.  A holder that lost its lock
writes nothing more (:class:`~molexp.errors.LockLostError`, exit 3), its
heartbeat stops touching the new owner's lock, and releasing it leaves the new
owner's lock alone.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from molexp.errors import LockLostError, RunLockedError, UsageError

LOCK_NAME = ".lock"
BREAK_NAME = ".lock.break"
DEFAULT_HEARTBEAT_TIMEOUT = 120.0


def heartbeat_timeout() -> float:
    """Seconds after which another host's lock without a heartbeat is stale
    (``MOLEXP_HEARTBEAT_TIMEOUT``, default 120); anything but a positive, finite
    number is refused (exit 2) rather than guessed at: a timeout of ``nan`` or
    ``-1`` would make every other host's lock look stale, or none."""
    raw = os.environ.get("MOLEXP_HEARTBEAT_TIMEOUT")
    if raw is None or not raw.strip():
        return DEFAULT_HEARTBEAT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(
            f"MOLEXP_HEARTBEAT_TIMEOUT must be a positive number of seconds, got {raw!r}",
            f"Set the same value on every node (default {DEFAULT_HEARTBEAT_TIMEOUT:.0f}), "
            "or unset it.",
        )
    return value


def hostname() -> str:
    """This host's name (``uname -n``, what ``socket.gethostname()`` returns on POSIX,
    without importing ``socket``: ~5 ms a no-op `molexp run` need not pay)."""
    return os.uname().nodename


_BOOT_ID: list[str | None] = []  # read once per process: a process never outlives a boot


def _boot_id() -> str | None:
    if not _BOOT_ID:
        try:
            _BOOT_ID.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        except OSError:
            _BOOT_ID.append(None)
    return _BOOT_ID[0]


_OWN_START: dict[int, str | None] = {}  # this process's start time (by pid: a fork is another)


def pid_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether ``pid`` runs here and (when known) is the process that started then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_time is not None:
        current = pid_start_time(pid)
        if current is not None and current != start_time:
            return False
    return True


def _own_start(pid: int) -> str | None:
    _OWN_START[pid] = start = pid_start_time(pid)
    return start


def owner_info(purpose: str = "run") -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": hostname(),
        "pid": pid,
        "pid_start": _OWN_START[pid] if pid in _OWN_START else _own_start(pid),
        "boot_id": _boot_id(),
        "purpose": purpose,
        "since": time.time(),
    }


class LockState(NamedTuple):
    """What a lock file says about its owner, read at one moment."""

    path: Path
    owner: dict[str, Any]
    heartbeat: float  # mtime of the lock file
    inode: int

    @property
    def host(self) -> str:
        return str(self.owner.get("host", "?"))

    @property
    def pid(self) -> int:
        pid = self.owner.get("pid")
        return pid if isinstance(pid, int) else -1

    def is_stale(self, now: float | None = None) -> bool:
        if self.host == hostname() and self.owner.get("boot_id") == _boot_id():
            return not pid_alive(self.pid, self.owner.get("pid_start"))
        if self.host == hostname() and self.owner.get("boot_id") is None:
            return not pid_alive(self.pid, self.owner.get("pid_start"))
        age = (now if now is not None else time.time()) - self.heartbeat
        return age > heartbeat_timeout()

    def describe(self) -> str:
        since = self.owner.get("since")
        age = f", for {time.time() - since:.0f}s" if isinstance(since, (int, float)) else ""
        return f"pid {self.pid} on {self.host}{age}"


def read_lock(run_dir: Path) -> LockState | None:
    """The current lock of ``run_dir``, or None when the run is not held."""
    path = run_dir / LOCK_NAME
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            raw = fh.read()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(raw) if raw else {}
        if not isinstance(owner, dict):
            owner = {}
    except (ValueError, UnicodeDecodeError):
        owner = {}
    if not owner:
        # Being written right now (created, not yet filled): treat as live unless old.
        owner = {"host": "?", "pid": -1}
    return LockState(path, owner, st.st_mtime, st.st_ino)


# The locks this process holds, by lock path: what :func:`check_held` checks
# before every record write.
_HELD: dict[Path, RunLock] = {}
_HELD_GUARD = threading.Lock()


class RunLock:
    """An acquired lock on one run directory; release it with :meth:`release`."""

    def __init__(self, run_dir: Path, owner: dict[str, Any], inode: int) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_NAME
        self.owner = owner
        self.inode = inode  # of the lock file this process created
        self.lost = threading.Event()  # set once the heartbeat finds another owner's lock
        with _HELD_GUARD:
            _HELD[self.path] = self

    def is_mine(self, state: LockState | None) -> bool:
        """Whether ``state`` (the lock as read now) is the lock this process created."""
        return state is not None and state.inode == self.inode and state.owner == self.owner

    def check(self) -> None:
        """Raise :class:`LockLostError` unless the lock in place is still this one."""
        current = read_lock(self.run_dir)
        if self.is_mine(current):
            return
        self.lost.set()
        now = "nobody holds it now" if current is None else f"now held by {current.describe()}"
        raise LockLostError(
            f"run {self.run_dir.name}: this process lost the run's lock ({now}); "
            "nothing more was recorded",
            "Another process judged this one gone (heartbeat older than "
            "MOLEXP_HEARTBEAT_TIMEOUT: a paused machine or a stalled filesystem?); "
            "its attempt is the record.",
        )

    def start_heartbeat(self, interval: float | None = None) -> None:
        """Touch the lock every ``interval`` seconds while the attempt runs, as long
        as it is still this process's lock (one thread beats for every lock the
        process holds: :class:`_Heartbeat`)."""
        period = interval if interval is not None else max(1.0, heartbeat_timeout() / 4)
        _HEARTBEAT.add(self, period)

    def beat(self) -> bool:
        """One heartbeat: touch the lock if it is still this one; return whether it is."""
        try:
            # Inode and owner: an inode number may be reused at once.
            if not self.is_mine(read_lock(self.run_dir)):
                self.lost.set()  # broken (and maybe taken over): never keep it alive
                return False
            os.utime(self.path)
        except OSError:
            pass
        return True

    def release(self) -> None:
        _HEARTBEAT.discard(self)
        with _HELD_GUARD:
            if _HELD.get(self.path) is self:
                del _HELD[self.path]
        try:
            if self.is_mine(read_lock(self.run_dir)):
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Heartbeat:
    """The one thread of a process that touches the locks it holds, each at its
    own period (a batch of a thousand runs starts one thread, not a thousand).

    It starts with the first lock and stops once the last is released, unless a
    batch keeps it (:func:`keep_heartbeat`) for its next attempt; so no thread is
    left behind when the command ends.
    """

    def __init__(self) -> None:
        self._due: dict[RunLock, tuple[float, float]] = {}  # lock -> (next beat, period)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._kept = 0

    def add(self, held: RunLock, period: float) -> None:
        with self._wake:
            self._due[held] = (time.monotonic() + period, period)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="molexp-heartbeat", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def discard(self, held: RunLock) -> None:
        """Stop beating for ``held``; once this returns, no beat of it is under way."""
        with self._wake:
            self._due.pop(held, None)
            idle = self._stop_if_idle()
        if idle is not None:
            idle.join(timeout=5)

    def keep(self) -> Callable[[], None]:
        """Keep the thread between locks until the returned function is called."""
        with self._wake:
            self._kept += 1
        done = threading.Event()

        def release() -> None:
            if done.is_set():
                return
            done.set()
            with self._wake:
                self._kept -= 1
                idle = self._stop_if_idle()
            if idle is not None:
                idle.join(timeout=5)

        return release

    def _stop_if_idle(self) -> threading.Thread | None:
        """(Under the condition.) Tell the thread to end when nothing needs it; return it."""
        if self._due or self._kept or self._thread is None:
            return None
        thread, self._thread = self._thread, None
        self._wake.notify_all()
        return thread

    def _run(self) -> None:
        me = threading.current_thread()
        with self._wake:
            while self._thread is me:
                now = time.monotonic()
                for held in [h for h, (at, _) in self._due.items() if at <= now]:
                    period = self._due[held][1]
                    # Under the condition: a release waits for a beat under way,
                    # so a released lock (maybe another owner's by then) is never
                    # touched.
                    if held.beat():
                        self._due[held] = (now + period, period)
                    else:
                        del self._due[held]
                if not self._due and not self._kept:  # every lock lost: nothing to beat
                    self._thread = None
                    return
                wait = min((at for at, _ in self._due.values()), default=None)
                self._wake.wait(None if wait is None else max(0.0, wait - time.monotonic()))


_HEARTBEAT = _Heartbeat()


def keep_heartbeat() -> Callable[[], None]:
    """Keep the heartbeat's thread from one attempt to the next (a batch of runs);
    call the returned function when the batch is over."""
    return _HEARTBEAT.keep()


def check_held(run_dir: Path) -> None:
    """Before writing the record of ``run_dir``: raise :class:`LockLostError` unless
    this process holds the run's lock and the lock in place is still its own
    (fencing; see the module docstring)."""
    with _HELD_GUARD:
        held = _HELD.get(run_dir / LOCK_NAME)
    if held is None:
        raise LockLostError(
            f"run {run_dir.name}: not saved, this process does not hold the run's lock",
            "Records are written only under the run's lock (SPEC §8).",
        )
    held.check()


def _try_create(path: Path, owner: dict[str, Any], root: Path) -> int | None:
    """Create ``path`` holding ``owner`` unless it exists; the new file's inode.

    A finished temporary file is linked into place (exclusive like ``O_EXCL``, and
    atomic on NFS too, where a lost reply to a link that succeeded is recognised),
    so a reader never meets an empty lock whose owner it cannot name.
    """
    from molexp.core.store.files import create_exclusive_inode

    # No fsync: a lock only matters while its owner lives; one lost or emptied by a
    # crash of the machine names no live owner and goes stale (read_lock).
    return create_exclusive_inode(path, json.dumps(owner).encode(), durable=False, root=root)


def _break_stale(run_dir: Path, seen: LockState, root: Path) -> None:
    """Remove the stale lock ``seen`` if it is still the one in place."""
    guard = run_dir / BREAK_NAME
    if _try_create(guard, owner_info("break"), root) is None:
        try:
            if time.time() - guard.stat().st_mtime > 30:
                guard.unlink(missing_ok=True)  # a breaker that crashed
        except FileNotFoundError:
            pass
        return
    try:
        current = read_lock(run_dir)
        if current is not None and current.inode == seen.inode and current.owner == seen.owner:
            current.path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def try_acquire(run_dir: Path, purpose: str = "run", *, root: Path) -> RunLock | LockState:
    """Take the lock of ``run_dir`` (inside the workspace ``root``), breaking a
    stale one; else return the live holder."""
    owner = owner_info(purpose)
    path = run_dir / LOCK_NAME
    for _ in range(50):
        inode = _try_create(path, owner, root)
        if inode is not None:
            return RunLock(run_dir, owner, inode)
        state = read_lock(run_dir)
        if state is None:
            continue
        if state.owner.get("pid") == -1 and time.time() - state.heartbeat < 5:
            time.sleep(0.01)  # being created right now
            continue
        if not state.is_stale():
            return state
        _break_stale(run_dir, state, root)
    state = read_lock(run_dir)
    if state is None:  # pragma: no cover - extreme contention
        raise RunLockedError(f"could not take the lock of {run_dir}")
    return state


def acquire(
    run_dir: Path,
    purpose: str = "run",
    wait: bool = False,
    poll: float = 0.2,
    give_up: Callable[[], bool] | None = None,
    *,
    root: Path,
) -> RunLock:
    """Take the run's lock or raise :class:`RunLockedError` naming the holder.

    With ``wait``, poll until the holder is gone, or until ``give_up()`` is true
    (a signal arrived): then raise as if not waiting.
    """
    while True:
        got = try_acquire(run_dir, purpose, root=root)
        if isinstance(got, RunLock):
            return got
        if not wait or (give_up is not None and give_up()):
            raise RunLockedError(
                f"run {run_dir.name} is held by {got.describe()}",
                "Wait for it (`molexp run --wait`) or stop it with `molexp cancel`.",
            )
        time.sleep(poll)
