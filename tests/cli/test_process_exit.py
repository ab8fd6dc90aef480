"""How a `molexp` process ends: its output written, then no interpreter teardown
unless something needs it; output that cannot be written is exit 3 in one line,
a reader that went away (`| head`) is not an error."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from molexp.cli import main as cli_main
from tests.conftest import molexp_exe, run_molexp
from tests.reliability.conftest import make_experiment


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    make_experiment(root, replicas=120)
    assert run_molexp("run", "P/E", cwd=root).returncode == 0
    return root


def _to_full_device(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [*molexp_exe(), *args], cwd=cwd, stdout=full, stderr=subprocess.PIPE, text=True
        )


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("ls", "--format", "json"), ("ls",), ("show", "P/E", "--json")],
)
def test_output_that_cannot_be_written_is_exit_3_in_one_line(
    lab: Path, args: tuple[str, ...]
) -> None:
    res = _to_full_device(*args, cwd=lab)
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: <output>: No space left on device"), res.stderr
    assert len(res.stderr.splitlines()) == 2, res.stderr


def test_a_reader_that_goes_away_is_exit_0_without_noise(lab: Path) -> None:
    for args in (("ls", "--format", "json"), ("ls",), ("ls", "--format", "ids")):
        shell = f"{' '.join(molexp_exe())} {' '.join(args)} | head -c 10 >/dev/null"
        script = f'{shell}; echo "exit ${{PIPESTATUS[0]}}" >&2'
        res = subprocess.run(["bash", "-c", script], cwd=lab, capture_output=True, text=True)
        assert res.stderr == "exit 0\n", (args, res.stderr)


def test_everything_printed_arrives_whole(lab: Path) -> None:
    """The buffered output is written before the process ends (no teardown flushes it)."""
    res = run_molexp("ls", "--format", "ids", cwd=lab)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 120 and res.stdout.endswith("\n")


def test_an_atexit_handler_of_the_environment_still_runs(lab: Path, tmp_path: Path) -> None:
    """Coverage, a profiler, a site's own hook: their atexit handlers keep the teardown."""
    site = tmp_path / "site"
    site.mkdir()
    mark = tmp_path / "mark"
    (site / "sitecustomize.py").write_text(
        "import atexit, os\n"
        "atexit.register(lambda: open(os.environ['MOLEXP_TEST_MARK'], 'w').write('ran'))\n"
    )
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    res = run_molexp(
        "ls", "--format", "ids", cwd=lab, env={"PYTHONPATH": path, "MOLEXP_TEST_MARK": str(mark)}
    )
    assert res.returncode == 0, res.stderr
    assert mark.read_text() == "ran"


class _Ended(Exception):
    pass


def _ended(code: int) -> None:
    raise _Ended(code)


def test_the_teardown_is_skipped_only_when_nothing_needs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import atexit

    monkeypatch.setattr(os, "_exit", _ended)
    monkeypatch.setattr(atexit, "_ncallbacks", lambda: 0, raising=False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    with pytest.raises(_Ended) as fast:
        cli_main._exit(4)
    assert fast.value.args == (4,)

    monkeypatch.setattr(atexit, "_ncallbacks", lambda: 1, raising=False)
    with pytest.raises(SystemExit) as full:
        cli_main._exit(4)
    assert full.value.code == 4

    monkeypatch.setattr(atexit, "_ncallbacks", lambda: 0, raising=False)
    monkeypatch.undo()
    monkeypatch.setattr(os, "_exit", _ended)
    monkeypatch.setattr(atexit, "_ncallbacks", lambda: 0, raising=False)
    release = threading.Event()
    worker = threading.Thread(target=release.wait)  # not a daemon: it must be joined
    worker.start()
    try:
        with pytest.raises(SystemExit):
            cli_main._exit(0)
    finally:
        release.set()
        worker.join()


def test_python_m_molexp_and_the_console_script_end_the_same_way(lab: Path) -> None:
    script = Path(sys.executable).parent / "molexp"
    res = subprocess.run(
        [str(script), "run", "P/E", "--replica", "0"], cwd=lab, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "up to date" in res.stderr
