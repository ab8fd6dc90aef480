"""Talking to SLURM (molexp/core/slurm/scheduler.py): parsing, and fake SLURM tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from molexp.core.slurm import scheduler as slurm
from molexp.errors import ExecutorError
from tests.core.slurm.conftest import FakeTool


def test_parse_squeue_lines() -> None:
    text = "12_0 RUNNING\n12_1 PENDING\n12_[2-5] PENDING\n13_0 COMPLETED\n\n"
    assert slurm.parse_squeue(text) == {"12_0": "RUNNING", "12_1": "PENDING", "13_0": "COMPLETED"}


def test_queue_view_gone_and_unknown() -> None:
    view = slurm.QueueView({"1_0": "RUNNING", "1_1": "CANCELLED", "1_2": "COMPLETING"})
    assert not view.gone("1_0") and not view.gone("1_2")
    assert view.gone("1_1") and view.gone("1_9")
    blind = slurm.QueueView(unreachable="controller down")
    assert not blind.gone("1_1") and not blind.gone("1_9")


def test_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert slurm.timeout() == slurm.DEFAULT_TIMEOUT
    monkeypatch.setenv("MOLEXP_SLURM_TIMEOUT", "2.5")
    assert slurm.timeout() == 2.5
    monkeypatch.setenv("MOLEXP_SLURM_TIMEOUT", "soon")
    assert slurm.timeout() == slurm.DEFAULT_TIMEOUT


def test_a_missing_tool_is_an_executor_error(fake_tool: FakeTool) -> None:
    with pytest.raises(ExecutorError, match="sbatch not found: SLURM is not installed"):
        slurm.sbatch_held("#!/bin/bash\n")
    view = slurm.query(["4_0"])
    assert view.unreachable is not None and "squeue not found" in view.unreachable
    assert not view.gone("4_0")


def test_sbatch_held_reads_the_script_and_returns_the_job_id(
    fake_tool: FakeTool, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    fake_tool("sbatch", f'echo "$@" >{seen}.args; cat >{seen}; echo "41;cluster"')
    assert slurm.sbatch_held("#!/bin/bash\necho hi\n") == "41"
    assert seen.read_text() == "#!/bin/bash\necho hi\n"
    assert Path(f"{seen}.args").read_text() == "--parsable --hold\n"


@pytest.mark.parametrize(
    "body",
    ["echo 'sbatch: error: Batch job submission failed: no partition' >&2; exit 1", "echo what"],
)
def test_sbatch_refusals_are_executor_errors(fake_tool: FakeTool, body: str) -> None:
    fake_tool("sbatch", f"cat >/dev/null; {body}")
    with pytest.raises(ExecutorError, match="sbatch refused the job array") as caught:
        slurm.sbatch_held("x")
    assert "sbatch: error:" not in caught.value.message
    assert "Nothing was queued" in str(caught.value.hint)


def test_release_failure_says_slurm_s_words(fake_tool: FakeTool) -> None:
    fake_tool("scontrol", "echo 'scontrol: error: Invalid job id specified' >&2; exit 1")
    with pytest.raises(ExecutorError, match="scontrol release 9 failed: Invalid job id specified"):
        slurm.release("9")
    fake_tool("scontrol", "exit 0")
    slurm.release("9")


def test_a_silent_controller_times_out(
    fake_tool: FakeTool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOLEXP_SLURM_TIMEOUT", "0.3")
    fake_tool("scancel", "exec sleep 30")
    with pytest.raises(ExecutorError, match="did not answer within 0s"):
        slurm.scancel(["1_0"])


def test_scancel_ignores_jobs_that_already_ended(fake_tool: FakeTool, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    slurm.scancel([])  # nothing to cancel: SLURM is not asked
    fake_tool(
        "scancel",
        f'echo "$@" >>{calls}; '
        "echo 'scancel: error: Kill job error on job id 3_1: Invalid job id specified' >&2; exit 1",
    )
    slurm.scancel(["3_1", "3_2"])
    assert calls.read_text() == "3_1 3_2\n"
    fake_tool("scancel", "echo 'scancel: error: Unable to contact slurm controller' >&2; exit 1")
    with pytest.raises(ExecutorError, match="scancel failed: Unable to contact slurm controller"):
        slurm.scancel(["3_1"])


def test_query_asks_once_per_array_and_reads_the_states(
    fake_tool: FakeTool, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    fake_tool(
        "squeue", f'echo "$@" >>{calls}; printf "5_0 RUNNING\\n5_1 PENDING\\n6_0 COMPLETED\\n"'
    )
    view = slurm.query(["5_0", "5_1", "6_0", ""])
    assert calls.read_text() == "-h -r -t all -o %i %T -j 5,6\n"
    assert view.states == {"5_0": "RUNNING", "5_1": "PENDING", "6_0": "COMPLETED"}
    assert view.gone("6_0") and view.gone("5_2") and not view.gone("5_1")
    assert slurm.query([]).states == {}


def test_query_of_forgotten_or_unreachable_jobs(fake_tool: FakeTool) -> None:
    fake_tool("squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1")
    forgotten = slurm.query(["8_0"])
    assert forgotten.unreachable is None and forgotten.gone("8_0")
    assert slurm.queue_entry_gone({"scheduler_job_id": "8_0"})
    assert slurm.queue_entry_gone({})  # no job at all: nothing holds the run
    fake_tool("squeue", "echo 'squeue: error: Unable to contact slurm controller' >&2; exit 1")
    down = slurm.query(["8_0"])
    assert down.unreachable == "squeue failed: Unable to contact slurm controller"
    assert not down.gone("8_0")
    assert not slurm.queue_entry_gone({"scheduler_job_id": "8_0"})
