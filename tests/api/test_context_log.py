"""`ctx.log`: buffered metric lines, written at least once a second and at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import molexp as mx
from molexp.api.context import RunContext, _MetricsWriter
from molexp.errors import UsageError


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunContext:
    run_dir = tmp_path / "run"
    (run_dir / "attempts" / "1").mkdir(parents=True)
    env = {"MOLEXP_RUN_ID": "0123456789abcdef", "MOLEXP_RUN_DIR": str(run_dir),
           "MOLEXP_WORKSPACE": str(tmp_path), "MOLEXP_ATTEMPT": "1"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return mx.current_run()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_are_buffered_then_written_within_a_second(ctx: RunContext) -> None:
    path = ctx.metrics_file
    assert path == ctx.attempt_dir / "metrics.jsonl"  # no MOLEXP_METRICS_FILE: the default
    before = time.time()
    ctx.log(step=1, loss=0.5, T=300)
    ctx.log(loss=0.4)
    assert not path.exists()  # buffered
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    got = lines(path)
    assert [{k: v for k, v in line.items() if k != "time"} for line in got] == [
        {"step": 1, "loss": 0.5, "T": 300},
        {"loss": 0.4},
    ]
    assert all(before <= line["time"] <= time.time() for line in got)
    ctx.log(step=2, loss=0.3, time=12.5)  # a given time is kept
    ctx.flush_metrics()
    assert lines(path)[-1] == {"step": 2, "loss": 0.3, "time": 12.5}
    ctx.flush_metrics()  # nothing left: nothing written
    assert len(lines(path)) == 3


def test_values_json_cannot_carry_are_converted_or_refused(ctx: RunContext) -> None:
    class Scalar:  # like numpy.float32: .item() gives the Python number
        def item(self) -> float:
            return 0.25

    class Number:  # anything with __float__
        def __float__(self) -> float:
            return 1.5

    ctx.log(step=1, a=Scalar(), b=Number(), c=[Scalar(), (1, 2)], d={"x": Scalar()}, e=float("nan"))
    with pytest.raises(UsageError, match="ctx.log: object values cannot be recorded"):
        ctx.log(step=2, bad=object())
    ctx.flush_metrics()
    text = ctx.metrics_file.read_text()
    assert '"e":NaN' in text  # the file keeps NaN; records store it as null
    (line,) = lines(ctx.metrics_file)
    assert {k: line[k] for k in "abcd"} == {
        "a": 0.25,
        "b": 1.5,
        "c": [0.25, [1, 2]],
        "d": {"x": 0.25},
    }


def test_many_lines_are_written_without_waiting(ctx: RunContext) -> None:
    for i in range(_MetricsWriter.MAX_LINES):
        ctx.log(step=i, x=i)
    assert len(ctx.metrics_file.read_text().splitlines()) == _MetricsWriter.MAX_LINES


def test_threads_lose_and_tear_nothing(ctx: RunContext) -> None:
    def work(k: int) -> None:
        for i in range(2000):
            ctx.log(step=i, worker=k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctx.flush_metrics()
    got = lines(ctx.metrics_file)
    assert len(got) == 8000
    for k in range(4):
        assert [g["step"] for g in got if g["worker"] == k] == list(range(2000))


def test_a_forked_child_does_not_write_its_parents_lines(ctx: RunContext) -> None:
    ctx.log(step=1, who="parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ctx.log(step=2, who="child")
        ctx.flush_metrics()
        os._exit(0)
    os.waitpid(pid, 0)
    ctx.flush_metrics()
    assert sorted(line["who"] for line in lines(ctx.metrics_file)) == ["child", "parent"]


def test_lines_are_written_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    code = "import molexp as mx\nctx = mx.current_run()\nfor i in range(3):\n    ctx.log(step=i, x=i)\n"
    env = dict(os.environ, MOLEXP_RUN_ID="x", MOLEXP_RUN_DIR=str(tmp_path),
               MOLEXP_WORKSPACE=str(tmp_path), MOLEXP_METRICS_FILE=str(path))  # fmt: skip
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert [line["x"] for line in lines(path)] == [0, 1, 2]
    assert time.monotonic() - started < 30  # the timer thread does not hold the exit
