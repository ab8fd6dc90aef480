"""Each attempt records its environment (SPEC §16): facts in `attempt.env`, the
package list once per environment under `environments/`, differences in `diff`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from molexp.core.records.environments import CACHE_DIR, ENV_DIR
from tests.conftest import Cli, run_molexp
from tests.reliability.conftest import proc_env


def _wheel(tmp_path: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module, built by hand (no network, no backend)."""
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }  # fmt: skip
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    wheel = tmp_path / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A real virtual environment (without pip: molexp's own pip installs into it)."""
    target = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    return target


def _pip_install(venv: Path, wheel: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-index", "--no-deps", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip


def _attempts(workspace: Path, cli: Cli, ref: str) -> list[dict[str, Any]]:
    shown = json.loads(cli("show", ref, "--json").stdout)
    attempts: list[dict[str, Any]] = shown["attempts"]
    return attempts


def test_two_attempts_share_one_list_and_a_pip_install_shows_in_diff(
    workspace: Path, cli: Cli, venv: Path, tmp_path: Path
) -> None:
    assert cli("project create p").exit_code == 0
    assert (
        cli(
            "experiment", "create", "p/e", "--replicas", "2", "--command", "python -c 'print(1)'"
        ).exit_code
        == 0
    )
    env = proc_env(PATH=f"{venv / 'bin'}{os.pathsep}{proc_env()['PATH']}")
    _pip_install(venv, _wheel(tmp_path, "tinypkg", "0.1"))
    first = run_molexp("run", "p/e", "-r", "0", cwd=workspace, env=env)
    assert first.returncode == 0, first.stderr
    again = run_molexp("run", "p/e", "-r", "0", "--force", cwd=workspace, env=env)
    assert again.returncode == 0, again.stderr
    ref_a = run_molexp("ls", "p/e", "--format", "ids", cwd=workspace).stdout.split()[0]
    a1, a2 = _attempts(workspace, cli, ref_a)
    assert a1["env"]["packages"] == a2["env"]["packages"]  # one environment, one list
    assert a1["env"]["python"]["executable"] == str(venv / "bin" / "python")
    assert a1["env"]["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    lists = list((workspace / ENV_DIR).iterdir())
    assert [p.name for p in lists] == [f"{a1['env']['packages']}.txt"]
    assert lists[0].read_text() == "tinypkg==0.1\n"
    assert a1["env"]["package_count"] == 1
    # a package installed (and one upgraded) between two runs
    _pip_install(venv, _wheel(tmp_path, "tinypkg", "0.2"))
    _pip_install(venv, _wheel(tmp_path, "otherpkg", "1.0"))
    later = run_molexp("run", "p/e", "-r", "1", cwd=workspace, env=env)
    assert later.returncode == 0, later.stderr
    ids = run_molexp("ls", "p/e", "--format", "ids", cwd=workspace).stdout.split()
    ref_b = next(r for r in ids if r != ref_a)
    assert len(list((workspace / ENV_DIR).iterdir())) == 2
    diff = json.loads(cli("diff", ref_a, ref_b, "--json").stdout)
    assert diff["env"] == {
        "packages.tinypkg": {"a": "0.1", "b": "0.2"},
        "packages.otherpkg": {"b": "1.0"},
    }
    table = cli("diff", ref_a, ref_b).stdout
    assert "env.packages.tinypkg" in table and "env.packages.otherpkg" in table
    shown = cli("show", ref_b).stdout
    assert (
        f"python {a1['env']['python']['version']} ({venv / 'bin' / 'python'}); 2 packages" in shown
    )


def test_a_warm_environment_is_not_asked_again(
    workspace: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from molexp.core.provenance import environment

    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--replicas", "2", "--command", "true").exit_code == 0
    assert cli("run p/e -r 0").exit_code == 0
    assert list((workspace / CACHE_DIR).iterdir())

    def no_probe(*_: object) -> dict[str, Any]:
        raise AssertionError("the interpreter was asked again")

    monkeypatch.setattr(environment, "probe", no_probe)
    assert cli("run p/e -r 1").exit_code == 0
    first, second = (
        json.loads(cli("show", r, "--json").stdout)["attempts"][0]["env"]
        for r in cli("ls p/e --format ids").stdout.split()
    )
    assert first["packages"] == second["packages"] and first["python"] == second["python"]


def test_modules_conda_container_and_slurm_facts_are_recorded_and_diffed(
    workspace: Path, cli: Cli
) -> None:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--replicas", "2", "--command", "true").exit_code == 0
    facts = {"CONDA_PREFIX": "/opt/conda/envs/md", "CONDA_DEFAULT_ENV": "md", "SLURM_JOB_ID": "42",
             "SLURM_JOB_PARTITION": "gpu", "SLURM_JOB_NODELIST": "n1", "APPTAINER_CONTAINER": "md.sif"}  # fmt: skip
    for replica, modules in ((0, "gcc/12.2.0:openmpi/4.1"), (1, "gcc/13.1.0:openmpi/4.1")):
        env = proc_env(LOADEDMODULES=modules, **facts)
        assert run_molexp("run", "p/e", "-r", str(replica), cwd=workspace, env=env).returncode == 0
    a, b = cli("ls p/e --format ids").stdout.split()
    recorded = json.loads(cli("show", a, "--json").stdout)["attempts"][0]["env"]
    assert recorded["conda"] == {"prefix": "/opt/conda/envs/md", "env": "md"}
    assert recorded["container"] == {"kind": "apptainer", "image": "md.sif"}
    assert recorded["slurm"]["job_id"] == "42" and recorded["slurm"]["partition"] == "gpu"
    modules = {a: "gcc/12.2.0", b: "gcc/13.1.0"}
    assert (
        json.loads(cli("show", b, "--json").stdout)["attempts"][0]["env"]["modules"][0]
        == modules[b]
    )
    diff = json.loads(cli("diff", a, b, "--json").stdout)["env"]
    versions = {modules[a].split("/")[1], modules[b].split("/")[1]}
    assert set(diff) == {"modules.gcc"} and set(diff["modules.gcc"].values()) == versions
    shown = cli("show", a).stdout
    assert "modules gcc/" in shown and "conda md" in shown and "SLURM job 42 on gpu (n1)" in shown


def test_capture_can_be_turned_down_or_off(workspace: Path, cli: Cli) -> None:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--replicas", "3", "--command", "true").exit_code == 0
    for replica, mode in ((0, "off"), (1, "basic")):
        res = run_molexp(
            "run", "p/e", "-r", str(replica), cwd=workspace, env=proc_env(MOLEXP_ENV=mode)
        )
        assert res.returncode == 0, res.stderr
    res = run_molexp("run", "p/e", "-r", "2", cwd=workspace, env=proc_env(MOLEXP_ENV="lots"))
    assert res.returncode == 2 and "MOLEXP_ENV" in res.stderr
    by_replica = {r["replica"]: r for r in json.loads(cli("ls p/e --format json").stdout)}
    assert by_replica[0]["attempts"][0]["env"] is None
    basic = by_replica[1]["attempts"][0]["env"]
    assert (
        basic["python"] is None
        and basic["packages"] is None
        and basic["cpu_count"] == os.cpu_count()
    )
    assert not (workspace / ENV_DIR).exists()


def test_export_and_import_carry_the_package_lists(
    workspace: Path, cli: Cli, tmp_path: Path
) -> None:
    assert cli("project create p").exit_code == 0
    assert cli("experiment", "create", "p/e", "--command", "true").exit_code == 0
    assert cli("run p/e").exit_code == 0
    (listed,) = (workspace / ENV_DIR).iterdir()
    bundle = tmp_path / "b.tar.gz"
    assert cli("export", "p", "-o", str(bundle)).exit_code == 0
    other = tmp_path / "other"
    assert cli("init", str(other)).exit_code == 0
    r = cli("-w", str(other), "import", str(bundle), "--json")
    assert r.exit_code == 0, r.output
    assert {
        "kind": "environment",
        "ref": listed.stem,
        "path": f"{ENV_DIR}/{listed.name}",
    } in json.loads(r.stdout)["imported"]
    assert (other / ENV_DIR / listed.name).read_bytes() == listed.read_bytes()
    again = json.loads(cli("-w", str(other), "import", str(bundle), "--json").stdout)
    assert again["imported"] == [] and again["conflicts"] == []


def test_a_bundle_whose_list_does_not_match_its_name_is_refused(
    workspace: Path, cli: Cli, tmp_path: Path
) -> None:
    from tests.core.bundle.conftest import make_bundle

    other = tmp_path / "other"
    assert cli("init", str(other)).exit_code == 0
    forged = tmp_path / "forged.tar.gz"
    forged.write_bytes(make_bundle({f"{ENV_DIR}/{'0' * 32}.txt": b"evil==1\n"}).getvalue())
    r = cli("-w", str(other), "import", str(forged))
    assert r.exit_code == 3 and "hash" in r.stderr
    assert not (other / ENV_DIR).exists()
