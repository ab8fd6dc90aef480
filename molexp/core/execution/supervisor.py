"""The supervisor that ties every command's life to molexp's (SPEC §8).

One small ``python -S`` process serves all the attempts a thread of ``molexp run``
executes, one after the other; starting it costs ~10 ms, once, instead of once
per attempt.  It is started in its own session (a signal to molexp's process
group never reaches it) with a Linux parent-death signal, and for each command:

1. receives the argv, environment and working directory, and the write ends of
   the command's stdout and stderr pipes (passed over a Unix socket);
2. starts the command (``posix_spawn``, no copy of itself) in a session of its own,
   so the command and everything it spawns share one process group, whose id is
   the command's pid; answers with the pid once the group exists;
3. waits for the command, ends what it left running in its group, and answers
   with its exit code.  The command stays an unreaped zombie until the next
   request (or the supervisor's end), so its pid, which molexp uses to signal
   the group, cannot be given to another process while molexp may still use it.

When molexp dies (even by ``kill -9``, even with its whole process group) the
supervisor gets SIGTERM, passes it to the running command's group and kills the
group after :data:`KILL_GRACE` seconds, then exits: an interrupted command never
keeps running beside its retry.  When molexp closes its end, the supervisor exits.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

KILL_GRACE = 5.0

_HEADER = 4  # bytes of a message's length, then the message (marshal)

_SUPERVISOR = r"""
import os, sys, marshal, _socket, _signal as signal  # C modules: `signal` costs ~5 ms (enum)
parent = int(sys.argv[1]); grace = float(sys.argv[2])
try:  # PR_SET_PDEATHSIG through the C module: importing `ctypes` costs ~10 ms
    import _ctypes
    _ctypes.call_function(_ctypes.dlsym(_ctypes.dlopen(None, 2), "prctl"), (1, signal.SIGTERM))
except Exception:
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    except Exception:
        pass
sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, 0)
child = 0     # the command running now (its pid is its process group's id)
zombie = 0    # the last command, not reaped until molexp has stopped signalling it
orphaned = False
def end_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
def on_signal(sig, frame):
    global orphaned
    if os.getppid() == parent or orphaned:
        return  # (molexp signals the command's group itself)
    orphaned = True  # molexp is gone: the command goes with it
    if not child:
        os._exit(137)
    group = child
    end_group(group, signal.SIGTERM)
    signal.signal(signal.SIGALRM, lambda s, f: end_group(group, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, grace)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, on_signal)
for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
if os.getppid() != parent:
    os._exit(137)
RESET = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2)
def send(*reply):
    data = marshal.dumps(reply)
    sock.sendall(len(data).to_bytes(4, "big") + data)
def receive():
    data, anc, flags, addr = sock.recvmsg(65536, _socket.CMSG_SPACE(8))
    fds = []
    for level, kind, raw in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [int.from_bytes(raw[i:i + 4], sys.byteorder, signed=True)
                    for i in range(0, len(raw) - len(raw) % 4, 4)]
    if not data:
        return None, fds
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        more = sock.recv(1 << 20)
        if not more:
            return None, fds
        data += more
    return marshal.loads(data[4:]), fds
def spawn(argv, env, out, err):  # the command's pid; its session exists on return
    name = argv[0]
    found = [name] if b"/" in name else [
        os.path.join(os.fsencode(d), name) for d in os.get_exec_path(env)]
    for path in found:  # as execvpe searches (the command's own PATH)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            try:  # ~0.5 ms: no copy of this process, unlike fork (~3 ms)
                return os.posix_spawn(path, argv, env, setsid=True, setsigdef=RESET,
                    file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                  (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)])
            except (OSError, NotImplementedError):
                break  # fork, which says why on the command's stderr
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            for s in RESET:
                signal.signal(s, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0); os.dup2(out, 1); os.dup2(err, 2)
            os.execvpe(name, argv, env)
        except OSError as exc:
            os.write(2, ("molexp: cannot execute %s: %s\n" % (os.fsdecode(name), exc.strerror)).encode(errors="replace"))
        os._exit(127)
    os.close(ready_w)
    os.read(ready_r, 1)  # EOF once the command runs (its session exists) or has failed
    os.close(ready_r)
    return pid
while True:
    request, fds = receive()
    if zombie:
        os.waitpid(zombie, 0)
        zombie = 0
    if request is None:
        break
    argv, env, cwd = request
    out, err = fds
    os.set_inheritable(out, False); os.set_inheritable(err, False)  # (their dup2 copies are)
    try:
        os.chdir(cwd)
    except OSError as exc:
        os.close(out); os.close(err)
        send("error", exc.errno, exc.strerror)
        continue
    pid = spawn(argv, env, out, err)
    child = pid
    os.close(out); os.close(err)
    send("started", pid)
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            code = info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status
            break
        except ChildProcessError:
            code = 0
            break
    # What the command left running in its group; all of it when molexp is gone.
    end_group(pid, signal.SIGKILL if orphaned else signal.SIGTERM)
    zombie, child = pid, 0
    if orphaned:
        signal.setitimer(signal.ITIMER_REAL, 0)
        break
    send("exited", code)
if zombie:
    os.waitpid(zombie, 0)
os._exit(0)  # (no interpreter teardown: molexp waits for this exit)
"""


class SupervisorError(OSError):
    """The supervisor ended or answered nonsense: the attempt cannot be followed."""


class Supervisor:
    """molexp's side of one supervisor process (see the module docstring).

    Not thread-safe: one thread uses it at a time (:class:`Supervisors` lends them).
    """

    def __init__(self) -> None:
        import _socket

        mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-E", "-c", _SUPERVISOR, str(os.getpid()), str(KILL_GRACE)],
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.sock = mine
        self.usable = True  # False once a conversation went wrong: then it is ended

    def fileno(self) -> int:
        """The socket's descriptor, to poll for the exit code beside the pipes."""
        return int(self.sock.fileno())

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, stdout: int, stderr: int
    ) -> int:
        """Start ``argv`` in a session of its own with ``stdout``/``stderr`` (write
        ends, kept open here; the supervisor holds its own copies); its pid.

        A working directory that cannot be entered is raised as it would be by
        ``subprocess`` (an :class:`OSError` naming it); a command that cannot be
        executed runs as one that says so on stderr and exits 127.
        """
        import _socket

        request = (
            [os.fsencode(a) for a in argv],
            {os.fsencode(k): os.fsencode(v) for k, v in env.items()},
            os.fsencode(cwd),
        )
        data = marshal.dumps(request)
        message = len(data).to_bytes(_HEADER, "big") + data
        fds = (stdout, stderr)
        raw = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
        try:
            sent = self.sock.sendmsg(
                [message[:65536]], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, raw)]
            )
            if sent < len(message):
                self.sock.sendall(message[sent:])
        except OSError as exc:
            self.usable = False
            raise SupervisorError(f"the command's supervisor is gone ({exc})") from exc
        reply = self.receive()
        if reply[0] == "error" and len(reply) == 3:
            raise OSError(int(reply[1]), str(reply[2]), str(cwd))
        if reply[0] != "started":
            self.usable = False
            raise SupervisorError(f"the command's supervisor answered {reply!r}")
        return int(reply[1])

    def exit_code(self) -> int:
        """The exit code of the command started last (128+N when killed by signal N);
        once it has ended, which the socket says by becoming readable."""
        reply = self.receive()
        if reply[0] != "exited":
            self.usable = False
            raise SupervisorError(f"the command's supervisor answered {reply!r}")
        return int(reply[1])

    def receive(self) -> tuple[Any, ...]:
        """The next reply, read to its last byte and no further (the socket must
        stay readable for a reply that follows, such as the exit code)."""
        size = int.from_bytes(self._read(_HEADER), "big")
        reply = marshal.loads(self._read(size))
        if not isinstance(reply, tuple) or not reply:
            self.usable = False
            raise SupervisorError(f"the command's supervisor answered {reply!r}")
        return reply

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            try:
                more = self.sock.recv(size - len(data))
            except OSError as exc:
                more, why = b"", str(exc)
            else:
                why = "it ended"
            if not more:
                self.usable = False
                raise SupervisorError(f"lost the command's supervisor ({why})")
            data += more
        return data

    def close(self) -> None:
        """End the supervisor: it exits when its socket closes (at once when idle)."""
        self.sock.close()
        if not _ends_within(self.proc, KILL_GRACE):  # stuck: its command was ended already
            self.proc.kill()
        self.proc.wait()


def _ends_within(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``proc`` exits within ``timeout`` seconds, told by the kernel the
    moment it does (a pidfd), where ``Popen.wait(timeout)`` polls with sleeps that
    grow to 50 ms: a supervisor ending takes ~1 ms, the sleeps ~8 ms of every
    `molexp run`."""
    import select

    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # (before Linux 5.3; or reaped already)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(pidfd)


class Supervisors:
    """The supervisors of one batch of attempts: lent to one thread at a time,
    started when no idle one is left (so ``--jobs N`` starts at most N), ended by
    :meth:`close`.  The threads that start them outlive them (a Linux parent-death
    signal follows the thread that started the process)."""

    def __init__(self) -> None:
        import threading

        self._idle: list[Supervisor] = []
        self._lock = threading.Lock()

    def lend(self) -> Supervisor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return Supervisor()

    def prepare(self) -> None:
        """Have an idle supervisor ready: one started now starts up (~10 ms of
        Python) on another core while the caller prepares the attempt."""
        with self._lock:
            if self._idle:
                return
        supervisor = Supervisor()
        with self._lock:
            self._idle.append(supervisor)

    def give_back(self, supervisor: Supervisor) -> None:
        if not supervisor.usable:
            supervisor.close()
            return
        with self._lock:
            self._idle.append(supervisor)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for supervisor in idle:
            supervisor.close()
