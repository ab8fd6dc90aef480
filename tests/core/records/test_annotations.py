"""Tags and notes on records: applying, queueing, folding, editing definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from molexp.core.model import identity
from molexp.core.model.yaml12 import load_yaml
from molexp.core.records import annotations as annotation
from molexp.core.records.runs import validate_record
from molexp.errors import InvalidNameError, UsageError
from tests.conftest import ROOT

VECTORS = json.loads((ROOT / "tests" / "data" / "run-id-vectors.json").read_text())["cases"]


def test_tags_are_a_sorted_set_and_ops_apply_in_order() -> None:
    record: dict[str, Any] = {}
    assert annotation.apply(record, annotation.tag_ops(["+b", "+a", "+b"]))
    assert record["tags"] == ["a", "b"]
    assert not annotation.apply(record, annotation.tag_ops(["-a", "+c", "+a", "-c"]))
    assert record["tags"] == ["a", "b"]  # in order: the net change is none
    assert annotation.apply(record, annotation.tag_ops(["-a", "+c"]))
    assert record["tags"] == ["b", "c"]


@pytest.mark.parametrize("bad", ["+", "-", "+-x", "tag", "+a b", "+" + "x" * 65, "+a/b"])
def test_bad_tag_operations_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        annotation.tag_ops(["+fine", bad])


def test_notes_keep_order_and_are_not_doubled() -> None:
    record: dict[str, Any] = {}
    first = annotation.change(note="one")
    annotation.apply(record, first)
    annotation.apply(record, annotation.change(note="two\nlines"))
    annotation.apply(record, first)  # folded twice (a crash before the queue was cleared)
    assert [n["text"] for n in record["notes"]] == ["one", "two\nlines"]
    assert record["notes"][0]["time"] == first.time


@pytest.mark.parametrize("text", ["", "   \n", "a\0b", "x" * (annotation.MAX_NOTE + 1)])
def test_bad_notes_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        annotation.change(note=text)


@pytest.mark.parametrize("case", VECTORS, ids=[c["run_id"] for c in VECTORS])
def test_tags_and_notes_leave_every_shared_id_unchanged(
    case: dict[str, Any], tmp_path: Path
) -> None:
    project, experiment = case["experiment"].split("/")
    record = {
        "schema_version": 1, "id": case["run_id"], "project": project,
        "experiment": experiment, "identity": "derived", "params": case["params"],
        "replica": case["replica"], "seed": case["seed"], "profile": case["profile"],
        "config": case["config"], "config_hash": case["config_hash"], "status": "succeeded",
        "attempts": [],
    }  # fmt: skip
    annotation.apply(record, annotation.change(add=["keep", "paper-1"], note="the good one"))
    path = tmp_path / case["run_id"] / "run.json"
    validate_record(record, path, project, experiment)  # the id is recomputed and matches
    again = identity.run_id(
        case["experiment"], record["params"], record["replica"], record["seed"],
        record["profile"], record["config"],
    )  # fmt: skip
    assert again == case["run_id"]


def test_queued_changes_fold_once_and_the_queue_is_removed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    annotation.queue(run_dir, annotation.change(add=["a"]), tmp_path)
    annotation.queue(run_dir, annotation.change(remove=["a"], add=["b"], note="n"), tmp_path)
    (run_dir / annotation.QUEUE_DIR / "0-broken.json").write_text("{not json")
    seen = annotation.with_pending({}, run_dir)
    assert seen["tags"] == ["b"] and seen["notes"][0]["text"] == "n"
    record: dict[str, Any] = {"tags": ["z"]}
    applied = annotation.fold(record, run_dir)
    assert len(applied) == 3 and record["tags"] == ["b", "z"]
    annotation.forget(run_dir, applied)
    assert not (run_dir / annotation.QUEUE_DIR).exists()
    assert annotation.pending(run_dir) == []


DEFINITION = """\
# The baseline: keep this comment
schema_version: 1
name: e
project: p
description: ''
params:
  lr: 0.1   # the learning rate
replicas: 2
command: echo hi
tags:
- old
# a comment before notes
workflow_source: null
"""


def test_a_definition_keeps_its_comments_when_tagged() -> None:
    record = load_yaml(DEFINITION, "d")
    annotation.apply(record, annotation.change(add=["new"], remove=["old"], note="why: x # y"))
    text = annotation.edit_definition_text(DEFINITION, record)
    assert "# The baseline: keep this comment" in text and "# the learning rate" in text
    assert "# a comment before notes" in text
    assert load_yaml(text, "d") == record
    assert yaml.safe_load(text) == record  # a YAML 1.1 reader agrees


def test_a_flow_style_definition_is_rewritten_whole() -> None:
    text = "{schema_version: 1, name: e, project: p, tags: [a], replicas: 1}\n"
    record = load_yaml(text, "d")
    annotation.apply(record, annotation.change(add=["on"]))
    edited = annotation.edit_definition_text(text, record)
    assert load_yaml(edited, "d") == record == yaml.safe_load(edited)
    assert record["tags"] == ["a", "on"]


def test_known_tags_are_a_hint_that_survives_a_read_only_cache(tmp_path: Path) -> None:
    assert annotation.known_tags(tmp_path) == []
    annotation.remember_tags(tmp_path, ["b", "a"])
    annotation.remember_tags(tmp_path, ["a", "c"])
    assert annotation.known_tags(tmp_path) == ["a", "b", "c"]
    (tmp_path / annotation.TAGS_CACHE).write_text("{oops")
    assert annotation.known_tags(tmp_path) == []


def test_tag_names_follow_the_name_rules() -> None:
    with pytest.raises(InvalidNameError):
        annotation.change(add=[".hidden"])
