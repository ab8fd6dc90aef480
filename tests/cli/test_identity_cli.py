"""Every shared run-id vector, reproduced through `molexp run --dry-run --json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "run-id-vectors.json").read_text())[
    "cases"
]


@pytest.mark.parametrize("case", VECTORS, ids=[c["run_id"] for c in VECTORS])
def test_vector_through_the_cli(case: dict[str, Any], workspace: Path, cli: Cli) -> None:
    project, name = case["experiment"].split("/")
    replica, seed = case["replica"], case["seed"]
    seeds = [1000 + i for i in range(replica + 1)]
    seeds[replica] = seed
    (workspace / "params.json").write_text(json.dumps(case["params"]))
    args = ["run", case["experiment"], "--dry-run", "--json", "-r", str(replica)]
    if case["profile"] is not None or case["config"]:
        key = "profiles" if case["profile"] else "defaults"
        body = {case["profile"]: case["config"]} if case["profile"] else case["config"]
        (workspace / "cfg.json").write_text(json.dumps({"version": 1, key: body}))
        args += ["--config", "cfg.json"]
        if case["profile"]:
            args += ["--profile", case["profile"]]
    assert cli("project", "create", project).exit_code == 0
    r = cli(
        "experiment",
        "create",
        case["experiment"],
        "--params",
        "params.json",
        "--seeds",
        ",".join(map(str, seeds)),
        "--command",
        "true",
    )
    assert r.exit_code == 0, r.output
    res = cli(*args)
    assert res.exit_code == 0, res.output
    (planned,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert planned["id"] == case["run_id"]
    assert planned["config_hash"] == case["config_hash"]
    assert not (workspace / "projects" / project / "experiments" / name / "runs").exists()
