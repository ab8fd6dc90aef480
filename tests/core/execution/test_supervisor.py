"""The long-lived supervisor (molexp/core/execution/supervisor.py): one process
serves every attempt of a batch's thread, and still ties each command's whole
process group to molexp's life.  Real processes throughout."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from molexp.core.execution.execute import SignalState, run_command
from molexp.core.execution.supervisor import Supervisor, SupervisorError
from tests.reliability.conftest import pid_gone, wait_for


def _run(
    tmp_path: Path, argv: list[str], signals: SignalState | None = None, **env: str
) -> tuple[int, str, str]:
    signals = signals or SignalState()
    try:
        result = run_command(
            argv, dict(os.environ, **env), tmp_path, tmp_path / "out.log", tmp_path / "err.log",
            signals, None, None,
        )  # fmt: skip
    finally:
        if signals is not None:
            signals.supervisors.close()
    out, err = (
        (tmp_path / name).read_bytes().decode("utf-8", "surrogateescape")
        for name in ("out.log", "err.log")
    )
    return result.exit_code, out, err


def test_exit_codes_output_and_a_command_killed_by_a_signal(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (code, out, err) == (3, "out\n", "err\n")
    assert _run(tmp_path, ["sh", "-c", "kill -9 $$"])[0] == 128 + signal.SIGKILL
    code, _, err = _run(tmp_path, ["no-such-command-here"])
    assert code == 127 and "molexp: cannot execute no-such-command-here" in err


def test_commands_are_found_on_their_own_path_or_said_why_not(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hello").write_text("#!/bin/sh\necho hello from $0\n")
    (bin_dir / "no-shebang").write_text("echo hi\n")
    for name in ("hello", "no-shebang"):
        (bin_dir / name).chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    code, out, _ = _run(tmp_path, ["hello"], PATH=path)  # the command's PATH, not molexp's
    assert (code, out) == (0, f"hello from {bin_dir / 'hello'}\n")
    assert _run(tmp_path, ["./bin/hello"])[:2] == (0, "hello from ./bin/hello\n")
    code, _, err = _run(tmp_path, ["no-shebang"], PATH=path)
    assert code == 127 and "molexp: cannot execute no-shebang: Exec format error" in err


def test_the_command_gets_its_environment_devnull_and_no_other_descriptor(tmp_path: Path) -> None:
    code, out, _ = _run(
        tmp_path,
        ["sh", "-c", 'echo "$MOLEXP_TEST"; ls /proc/$$/fd; read x; echo $?'],
        MOLEXP_TEST="caf\udce9",  # a byte that is not UTF-8 (surrogate-escaped) survives
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].encode("utf-8", "surrogateescape") == b"caf\xe9"
    assert sorted(lines[1:-1], key=int) == ["0", "1", "2"]  # the shell's: nothing leaked
    assert lines[-1] == "1"  # stdin is /dev/null: `read` finds end of file


def test_a_working_directory_that_cannot_be_entered_is_raised_naming_it(tmp_path: Path) -> None:
    signals = SignalState()
    try:
        with pytest.raises(FileNotFoundError) as raised:
            run_command(["true"], dict(os.environ), tmp_path / "gone", tmp_path / "o",
                        tmp_path / "e", signals, None, None)  # fmt: skip
        assert raised.value.filename == str(tmp_path / "gone")
        # the supervisor survives it and serves the next command
        assert _run(tmp_path, ["true"], signals)[0] == 0
    finally:
        signals.supervisors.close()


def test_one_supervisor_serves_every_attempt_and_ends_with_the_batch(tmp_path: Path) -> None:
    signals = SignalState()
    parents = set()
    for _ in range(3):
        result = run_command(["sh", "-c", "echo $PPID"], dict(os.environ), tmp_path,
                             tmp_path / "o", tmp_path / "e", signals, None, None)  # fmt: skip
        assert result.exit_code == 0
        parents.add(int((tmp_path / "o").read_text()))
    (supervisor,) = parents
    assert supervisor != os.getpid()
    signals.uninstall()  # the end of a batch
    assert pid_gone(supervisor)


def test_usr1_reaches_the_command_and_the_run_goes_on(tmp_path: Path) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    ready = tmp_path / "ready"
    signals = SignalState()
    signals.install()
    try:
        sender = threading.Thread(
            target=lambda: (
                wait_for(ready.exists, "the command to start"),
                os.kill(os.getpid(), signal.SIGUSR1),
            )
        )
        sender.start()
        script = f"trap 'echo got USR1; exit 0' USR1; touch {ready}; while :; do sleep 0.05; done"
        code, out, _ = _run(tmp_path, ["sh", "-c", script], signals)
        sender.join()
    finally:
        signals.uninstall()
    assert (code, out, signals.received) == (0, "got USR1\n", None)


def test_a_lost_supervisor_ends_the_attempt_and_its_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f'sleep 300 & echo "$PPID $$ $!" > {pids}; wait'
    killer = threading.Thread(
        target=lambda: os.kill(
            int(wait_for(lambda: pids.exists() and pids.read_text().split(), "the pids")[0]),
            signal.SIGKILL,
        )
    )
    killer.start()
    signals = SignalState()
    try:
        with pytest.raises(SupervisorError, match="lost the command's supervisor"):
            run_command(["sh", "-c", script], dict(os.environ), tmp_path, tmp_path / "o",
                        tmp_path / "e", signals, None, None)  # fmt: skip
    finally:
        killer.join()
        signals.uninstall()
    _, command, child = (int(p) for p in pids.read_text().split())
    wait_for(lambda: pid_gone(command) and pid_gone(child), "the command's group to end")


def test_a_supervisor_that_answers_nothing_is_an_error_not_a_hang() -> None:
    supervisor = Supervisor()
    supervisor.proc.kill()
    supervisor.proc.wait()
    with pytest.raises(SupervisorError):
        supervisor.start(["true"], dict(os.environ), Path.cwd(), 1, 2)
    assert not supervisor.usable
    supervisor.close()


@pytest.mark.parametrize("pidfd", [True, False])
def test_closing_waits_for_the_supervisor_and_kills_a_stuck_one(
    monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    """An idle supervisor exits when its socket closes and is reaped at once; one
    that does not exit within the grace is killed (with a pidfd, or polling where
    the kernel has none)."""
    from molexp.core.execution import supervisor as sup

    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open")
    idle = Supervisor()
    assert idle.start(["true"], dict(os.environ), Path.cwd(), 1, 2) > 0
    assert idle.exit_code() == 0
    idle.close()
    assert idle.proc.returncode == 0

    monkeypatch.setattr(sup, "KILL_GRACE", 0.2)
    stuck = Supervisor()
    os.kill(stuck.proc.pid, signal.SIGSTOP)  # cannot see its socket close
    stuck.close()
    assert stuck.proc.returncode == -signal.SIGKILL
