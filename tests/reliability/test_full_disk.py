"""A full disk (issue #12): `molexp run` whose command writes more than the disk
holds neither hangs nor tracebacks, and says where; `import` and `export` say
"no space left" naming the path (exit 3), not "unreadable bundle".

The real thing first: a 1 MB tmpfs (needs root; skipped otherwise).  Then the
same paths through the ENOSPC seams (``execute._write``, ``os.write``), which
run everywhere and let the record be written after the log could not be.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from molexp.core.execution import execute
from molexp.core.store.files import leftover_temp_files
from tests.conftest import Cli, run_molexp, snapshot
from tests.reliability.conftest import make_experiment, proc_env, spawn, wait_for

# Writes 5 MB to stdout (more than the 1 MB disk), then exits 0.
LOUD = f"{sys.executable} -c \"import sys; [print('x' * 1023) for _ in range(5000)]\""
# Keeps a 3 MB artifact (a bundle too big for the 1 MB disk).
BIG = (
    f'{sys.executable} -c "import os; '
    "open(os.environ['MOLEXP_RUN_DIR'] + '/artifacts/big', 'wb').write(os.urandom(3_000_000))\""
)


def _one_short_message(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) <= 3, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


def test_a_command_filling_the_disk_ends_and_exit_3_names_the_log(small_fs: Path) -> None:
    root = small_fs / "ws"
    make_experiment(root, command=LOUD)
    started = time.monotonic()
    res = run_molexp("run", "P/E", cwd=root, timeout=60)
    assert time.monotonic() - started < 30, "molexp must not block on a full pipe"
    assert res.returncode == 3, res.stderr
    _one_short_message(res.stderr, "stdout.log", "No space left on device")
    (run_dir,) = (root / "projects/P/experiments/E/runs").iterdir()
    assert not (run_dir / ".lock").exists()
    assert leftover_temp_files(root) == []
    listed = run_molexp("ls", "P/E", "--format", "json", cwd=root)
    (record,) = json.loads(listed.stdout)
    # The disk is still full: the outcome may not fit; then the run reads
    # interrupted (never `running` forever), and a later run starts attempt 2.
    assert record["status"] in ("succeeded", "interrupted"), record


def test_sigterm_while_the_disk_is_full_exits_143_without_a_traceback(
    small_fs: Path, tmp_path: Path
) -> None:
    root = small_fs / "ws"
    make_experiment(root, command="yes molexp")
    proc = spawn("run", "P/E", cwd=root, env=proc_env())
    log = wait_for(lambda: next(root.rglob("stdout.log"), None), "the log")

    def full() -> bool:
        size = log.stat().st_size
        time.sleep(0.3)
        return size > 0 and log.stat().st_size == size

    wait_for(full, "the disk to fill")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err


def test_import_on_a_full_disk_says_no_space_left(small_fs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_experiment(src, command=BIG)
    assert run_molexp("run", "P/E", cwd=src).returncode == 0
    bundle = tmp_path / "b.tar.gz"
    assert run_molexp("export", "P/E", "-o", str(bundle), cwd=src).returncode == 0
    root = small_fs / "ws"
    make_experiment(root)
    before = snapshot(root)
    res = run_molexp("import", str(bundle), cwd=root)
    assert res.returncode == 3, res.stderr
    _one_short_message(res.stderr, "No space left on device", str(bundle))
    assert "not a readable" not in res.stderr
    assert snapshot(root) == before, "a refused import placed something"
    assert leftover_temp_files(root) == [] and not list(root.glob(".tmp-*"))


def test_export_onto_a_full_disk_says_no_space_left(small_fs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_experiment(src, command=BIG)
    assert run_molexp("run", "P/E", cwd=src).returncode == 0
    out = small_fs / "b.tar.gz"
    res = run_molexp("export", "P/E", "-o", str(out), cwd=src)
    assert res.returncode == 3, res.stderr
    _one_short_message(res.stderr, str(out), "No space left on device")
    assert list(small_fs.iterdir()) == []


# --- the same through the ENOSPC seams (no root needed) --------------------------


def test_a_log_write_failing_mid_run_keeps_draining_and_records_the_attempt(
    ws_root: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_experiment(ws_root, command=LOUD)
    monkeypatch.chdir(ws_root)
    real = execute._write
    budget = [100_000]

    def disk_fills(fd: int, data: memoryview) -> int:
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real(fd, data[: budget[0]])
        budget[0] -= written
        return written

    monkeypatch.setattr(execute, "_write", disk_fills)
    res = cli("run", "P/E", "--json")
    assert res.exit_code == 3, res.output
    line = json.loads(res.stdout)
    assert line["action"] == "executed" and line["status"] == "succeeded"
    assert "stdout.log: No space left on device" in line["message"]
    assert "output after 100,000 bytes was not saved" in line["message"]
    # (with --json the command's stdout streams to stderr: molexp's line comes last)
    _one_short_message(res.stderr.splitlines()[-1], "stdout.log", "No space left on device")
    record = json.loads((Path(line["run_dir"]) / "run.json").read_bytes())
    (attempt,) = record["attempts"]
    assert attempt["status"] == "succeeded" and attempt["exit_code"] == 0
    assert "No space left on device" in attempt["error"]
    assert (Path(line["run_dir"]) / "attempts/1/stdout.log").stat().st_size == 100_000


def test_a_record_that_cannot_be_written_is_exit_3_naming_it(
    ws_root: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from molexp.core.store import files

    make_experiment(ws_root, replicas=2, command="true")
    monkeypatch.chdir(ws_root)
    real = os.write

    def full_for_records(fd: int, data: bytes) -> int:
        if ".tmp-run.json-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(files.os, "write", full_for_records)
    res = cli("run", "P/E", "--json")
    monkeypatch.undo()
    assert res.exit_code == 3, res.output
    assert "run.json: No space left on device" in res.stderr and "Traceback" not in res.stderr
    assert [json.loads(x)["action"] for x in res.stdout.splitlines()] == ["refused", "refused"]
