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


def test_queue_view_gone_only_on_slurm_s_word() -> None:
    view = slurm.QueueView(
        {"1_0": "RUNNING", "1_1": "CANCELLED", "1_2": "COMPLETING"}, unknown={"1_3"}
    )
    assert not view.gone("1_0") and not view.gone("1_2")
    assert view.gone("1_1") and view.gone("1_3")
    assert not view.gone("1_9")  # absent from every answer: not a word about it
    blind = slurm.QueueView(unreachable="controller down", unknown={"1_3"})
    assert not blind.gone("1_1") and not blind.gone("1_3")


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


def test_release_failure_says_slurm_s_words(fake_tool: FakeTool, tmp_path: Path) -> None:
    fake_tool("scontrol", "echo 'scontrol: error: Invalid job id specified' >&2; exit 1")
    with pytest.raises(
        ExecutorError, match="scontrol release 9,10 failed: Invalid job id specified"
    ):
        slurm.release(["9", "10"])
    calls = tmp_path / "calls"
    fake_tool("scontrol", f'echo "$@" >>{calls}')
    slurm.release(["9", "10"])
    slurm.release([])
    assert calls.read_text() == "release 9,10\n"  # one call for every array


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
    assert calls.read_text() == "-h -r -t all -o %i %T -j 5,6\n"  # nothing missing: one call
    assert view.states == {"5_0": "RUNNING", "5_1": "PENDING", "6_0": "COMPLETED"}
    assert view.gone("6_0") and not view.gone("5_1")
    assert slurm.query([]).states == {}


SHOW_JOB = (
    "JobId=12 ArrayJobId=11 ArrayTaskId=1 JobName=molexp-p-e UserId=me(1) JobState=TIMEOUT "
    "Reason=TimeLimit Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 ExitCode=0:15 "
    "TimeLimit=00:01:00 StdOut=/ws/a dir/11_1.out Comment=molexp:x y\n"
    "JobId=11 ArrayJobId=11 ArrayTaskId=2-4,7%2 JobState=PENDING Reason=JobHeldUser Restarts=0\n"
)


def test_show_job_lines_are_read_with_their_pending_ranges() -> None:
    done, *pending = slurm.parse_show_job(SHOW_JOB)
    assert (done.job, done.state, done.reason, done.restarts) == ("11_1", "TIMEOUT", "TimeLimit", 2)
    assert done.stdout == "/ws/a dir/11_1.out" and done.exit_code == "0:15"
    assert done.time_limit == "00:01:00" and done.finished
    assert [p.job for p in pending] == ["11_2", "11_3", "11_4", "11_7"]
    assert {p.state for p in pending} == {"PENDING"}
    assert slurm.expand_indices("0-6:3,9%4") == [0, 3, 6, 9]
    assert slurm.expand_indices("x,1-y") == []
    assert slurm.parse_show_job("JobId=5 JobState=RUNNING")[0].job == "5"


def test_sacct_keeps_each_start_of_a_requeued_task() -> None:
    text = (
        "264_0|REQUEUED|0:0\n264_1|PREEMPTED|0:0\n264_0|COMPLETED|0:0\n"
        "264_[2-3]|PENDING|0:0\n264_1|CANCELLED by 0|0:15\n"
    )
    info = slurm.parse_sacct(text)
    assert set(info) == {"264_0", "264_1"}
    assert (info["264_0"].state, info["264_0"].earlier, info["264_0"].restarts) == (
        "COMPLETED",
        ("REQUEUED",),
        1,
    )
    assert (info["264_1"].state, info["264_1"].exit_code) == ("CANCELLED", "0:15")


def test_config_gives_the_array_limit_and_accounting() -> None:
    cfg = slurm.parse_config(
        "Configuration data as of 2026\nMaxArraySize            = 16\n"
        "SchedulerParameters     = kill_invalid_depend,max_array_tasks=8\n"
        "AccountingStorageType   = accounting_storage/slurmdbd\nClusterName = ci\n"
    )
    assert cfg["ClusterName"] == "ci"
    assert slurm.array_limit(cfg) == 8 and slurm.accounting(cfg)
    assert slurm.array_limit({}) == slurm.DEFAULT_MAX_ARRAY_SIZE
    assert not slurm.accounting({"AccountingStorageType": "accounting_storage/none"})
    with pytest.raises(ExecutorError, match="job arrays are disabled"):
        slurm.array_limit({"MaxArraySize": "0"})


def test_a_job_squeue_leaves_out_is_asked_with_scontrol_then_sacct(
    fake_tool: FakeTool, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    fake_tool("squeue", f'echo squeue >>{calls}; echo "5_0 RUNNING"')  # hides 5_1, 5_2 and 6
    fake_tool(
        "scontrol",
        f'echo scontrol "$@" >>{calls}; case "$*" in '
        '*"show config"*) echo "AccountingStorageType = accounting_storage/slurmdbd";; '
        '*"job 5") echo "JobId=9 ArrayJobId=5 ArrayTaskId=1 JobState=PENDING Reason=None";; '
        '*) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1;; esac',
    )
    fake_tool("sacct", f'echo sacct "$@" >>{calls}; echo "6_0|TIMEOUT|0:0"')
    view = slurm.query(["5_0", "5_1", "5_2", "6_0", "7_0"])
    assert view.states == {"5_0": "RUNNING", "5_1": "PENDING", "6_0": "TIMEOUT"}
    assert view.gone("6_0") and not view.gone("5_1")
    assert view.gone("5_2") and view.gone("7_0")  # scontrol and sacct know them not
    assert view.unknown == {"5_2", "7_0"}
    asked = calls.read_text().splitlines()
    assert asked[0] == "squeue" and "scontrol -o show job 5" in asked
    assert asked[-1].startswith("sacct -n -X -P -D -o JobID,State,ExitCode -j 5,6,7")


def test_query_of_unreachable_jobs_concludes_nothing(fake_tool: FakeTool) -> None:
    fake_tool("squeue", "echo 'squeue: error: Unable to contact slurm controller' >&2; exit 1")
    down = slurm.query(["8_0"])
    assert down.unreachable == "squeue failed: Unable to contact slurm controller"
    assert not down.gone("8_0")
    assert not slurm.queue_entry_gone({"scheduler_job_id": "8_0"})
    assert slurm.queue_entry_gone({})  # no job at all: nothing holds the run


def test_a_read_gives_up_at_once_when_no_controller_is_up(
    fake_tool: FakeTool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setattr(slurm, "PING_AFTER", 0.2)
    fake_tool("squeue", "exec sleep 20")  # SLURM's clients retry for ~18 s
    fake_tool("scontrol", "echo 'Slurmctld(primary) at ctl is DOWN'")
    started = time.monotonic()
    view = slurm.query(["8_0"])
    assert time.monotonic() - started < 5
    assert (
        view.unreachable
        == "the SLURM controller does not answer (Slurmctld(primary) at ctl is DOWN)"
    )
    fake_tool("scontrol", "echo 'Slurmctld(primary) at ctl is UP'")
    fake_tool("squeue", "sleep 0.5; echo '8_0 RUNNING'")  # slow, but the controller is up
    assert slurm.query(["8_0"]).states == {"8_0": "RUNNING"}


def test_jobs_with_comment(fake_tool: FakeTool) -> None:
    fake_tool("squeue", "printf '40|molexp:abc\\n41|molexp:abc\\n41|molexp:abc\\n42|(null)\\n'")
    assert slurm.jobs_with_comment("molexp:abc") == ["40", "41"]
    fake_tool("squeue", "echo 'squeue: error: down' >&2; exit 1")
    with pytest.raises(ExecutorError, match="squeue failed: down"):
        slurm.jobs_with_comment("molexp:abc")
