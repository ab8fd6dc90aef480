"""molexp.core.records.metrics: reading metrics.jsonl, never failing on its content."""

from __future__ import annotations

import json
from pathlib import Path

from molexp.core.records.metrics import fold, last_values, live, read, summarise


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_steps_times_and_several_metrics_a_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.jsonl",
        '{"step": 10, "loss": 0.9, "T": 300.5, "time": 1700000000.5}\n'
        '{"loss": 0.8}\n'  # no step: its line number
        "\n"  # blank lines are skipped (but counted)
        '{"step": "x", "acc": 0.5}\n',  # a step that is not a number: the line number
    )
    found = read(path)
    assert [(p.line, p.step, p.time, p.values) for p in found.points] == [
        (1, 10, 1700000000.5, {"loss": 0.9, "T": 300.5}),
        (2, 2, None, {"loss": 0.8}),
        (4, 4, None, {"acc": 0.5}),
    ]
    assert (found.ignored, found.torn, found.lines) == (0, False, 4)
    assert found.offset == path.stat().st_size


def test_a_torn_last_line_is_ignored_and_junk_is_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", '{"loss": 1}\nnot json\n[1, 2]\n{"loss": 2}\n{"loss": 0.')
    found = read(path)
    assert [p.values["loss"] for p in found.points] == [1, 2]
    assert found.ignored == 2 and found.torn
    # A last line without its newline that parses is a point, once the command ended.
    write(path, '{"loss": 1}\n{"loss": 3}')
    assert [p.values["loss"] for p in read(path).points] == [1, 3]


def test_reading_on_while_a_command_writes(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", '{"loss": 1}\n{"loss": 0.')
    first = read(path, final=False)
    assert [p.values for p in first.points] == [{"loss": 1}]
    assert first.offset == len('{"loss": 1}\n') and not first.torn
    with path.open("a") as fh:
        fh.write('5}\n{"loss": 0.25}\n')
    more = read(path, first.offset, first.lines, final=False)
    assert [(p.line, p.values["loss"]) for p in more.points] == [(2, 0.5), (3, 0.25)]
    assert read(path, more.offset, more.lines).points == []


def test_a_missing_file_has_no_points(tmp_path: Path) -> None:
    found = read(tmp_path / "nope.jsonl")
    assert found.points == [] and found.offset == 0
    assert fold(tmp_path / "nope.jsonl") is None
    assert fold(write(tmp_path / "empty.jsonl", "\n")) is None


def test_fold_keeps_the_last_value_its_step_and_a_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.jsonl",
        '{"step": 1, "loss": 0.9, "T": 300}\n{"step": 2, "loss": NaN}\n'
        '{"step": 3, "T": 301, "phase": "solid", "v": [1, Infinity]}\n',
    )
    summary = fold(path)
    assert summary == {
        "loss": {"last": None, "step": 2, "n": 2},  # NaN cannot be stored in a record
        "T": {"last": 301, "step": 3, "n": 2},
        "phase": {"last": "solid", "step": 3, "n": 1},
        "v": {"last": None, "step": 3, "n": 1},
    }
    assert last_values(summary) == {"loss": None, "T": 301, "phase": "solid", "v": None}
    json.dumps(summary, allow_nan=False)
    assert summarise([]) == {}


def test_live_reads_a_running_attempt_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "attempts" / "2").mkdir(parents=True)
    write(run_dir / "attempts" / "2" / "metrics.jsonl", '{"loss": 0.5}\n{"loss": 0.4')
    record = {"status": "running", "attempts": [{"n": 1}, {"n": 2}], "metrics": {"loss": 9}}
    live(record, run_dir)
    assert record["metrics"] == {"loss": 0.5}  # the line being written is not read yet
    assert record["metrics_live"] == {
        "attempt": 2,
        "metrics": {"loss": {"last": 0.5, "step": 1, "n": 1}},
    }
    assert record["attempts"][-1] == {"n": 2}  # the attempts are the record's
    # observed interrupted (its owner died): still the file's, not the old record's
    dead = {"status": "interrupted", "recorded_status": "running", "attempts": [{"n": 2}]}
    live(dead, run_dir)
    assert dead["metrics"] == {"loss": 0.5}
    done = {"status": "succeeded", "attempts": [{"n": 2}], "metrics": {"loss": 9}}
    live(done, run_dir)
    assert done["metrics"] == {"loss": 9}  # folded when it ended: not read again
    for record in ({"status": "running", "attempts": []}, {"status": "running"}):
        live(record, run_dir)
        assert "metrics" not in record
