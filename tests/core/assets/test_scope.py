"""Scopes: the workspace, a project or an experiment, and the chain a lookup climbs."""

from __future__ import annotations

import pytest

from molexp.api.workspace import Workspace
from molexp.core.assets import Scope, all_scopes, parse_scope, run_scope, scope_of_ref
from molexp.core.execution.runenv import RunEnv
from molexp.errors import NotFoundError, UsageError


def test_text_label_path_and_chain(ws: Workspace) -> None:
    top = parse_scope(ws, ".")
    assert top == Scope(ws) == parse_scope(ws, "./") == parse_scope(ws, "")
    assert (top.text, top.label, top.path) == (".", "the workspace", ws.root)
    exp = parse_scope(ws, "qm9/base/")
    assert (exp.text, exp.label) == ("qm9/base", "qm9/base")
    assert exp.assets_dir == ws.root / "projects" / "qm9" / "experiments" / "base" / "assets"
    assert [s.text for s in exp.chain()] == ["qm9/base", "qm9", "."]
    assert [s.text for s in parse_scope(ws, "qm9").chain()] == ["qm9", "."]


def test_parse_checks_names_and_existence(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match="no project named 'nope'"):
        parse_scope(ws, "nope")
    assert parse_scope(ws, "nope/later", must_exist=False).text == "nope/later"
    with pytest.raises(UsageError, match="PROJECT/EXPERIMENT"):
        parse_scope(ws, "qm9/base/extra")
    with pytest.raises(UsageError):
        parse_scope(ws, "../x", must_exist=False)


def test_all_scopes_and_the_scope_of_a_ref(ws: Workspace) -> None:
    ws.project("zinc")
    assert [s.text for s in all_scopes(ws)] == [".", "qm9", "qm9/base", "zinc"]
    run = ws.project("qm9").experiment("base").run()
    # a run starts at its experiment
    assert scope_of_ref(ws, f"qm9/base/{run.id}").text == "qm9/base"
    assert scope_of_ref(ws, "qm9/base").text == "qm9/base"
    assert scope_of_ref(ws, "qm9").text == "qm9"
    assert scope_of_ref(ws, ".").text == "."


def test_a_run_looks_up_from_its_experiment(ws: Workspace) -> None:
    env = {"MOLEXP_RUN_ID": "r1", "MOLEXP_RUN_DIR": "/r1", "MOLEXP_WORKSPACE": str(ws.root)}
    assert run_scope(RunEnv(env), ws) == Scope(ws)
    inside = RunEnv({**env, "MOLEXP_PROJECT": "qm9", "MOLEXP_EXPERIMENT": "base"})
    assert run_scope(inside, ws) == Scope(ws, "qm9", "base")
    with pytest.raises(UsageError):
        run_scope(RunEnv({**env, "MOLEXP_PROJECT": "..", "MOLEXP_EXPERIMENT": "base"}), ws)
