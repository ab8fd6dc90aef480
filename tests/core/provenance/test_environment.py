"""Environment facts, the command's Python, and package lists (SPEC §16)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from molexp.core.provenance import environment as env


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_python_a_command_names_is_found_on_its_path(tmp_path: Path) -> None:
    bin_a, bin_b = tmp_path / "a", tmp_path / "b"
    py3 = _exe(bin_a / "python3")
    py311 = _exe(bin_b / "python3.11")
    local = _exe(tmp_path / "work" / ".venv" / "bin" / "python")
    path = {"PATH": f"{bin_a}{os.pathsep}{bin_b}"}
    cwd = tmp_path / "work"
    assert env.find_python(["python3.11", "train.py"], cwd, path) == str(py311)
    assert env.find_python(["/bin/sh", "-c", "cd x && python3.11 -u t.py {lr}"], cwd, path) == str(
        py311
    )
    assert env.find_python(["/bin/sh", "-c", ".venv/bin/python t.py"], cwd, path) == str(local)
    assert env.find_python(["mpirun", "-n", "4", "lmp"], cwd, path) == str(py3)  # the PATH's
    assert env.find_python(["/bin/sh", "-c", "echo 'unclosed"], cwd, path) == str(py3)
    assert env.find_python(["true"], cwd, {"PATH": str(tmp_path / "none")}) is None


def test_facts_come_from_the_commands_environment() -> None:
    found = env.facts({
        "LOADEDMODULES": "gcc/12.2.0:openmpi/4.1.5", "CONDA_PREFIX": "/opt/conda/envs/md",
        "CONDA_DEFAULT_ENV": "md", "APPTAINER_CONTAINER": "/images/md.sif",
        "SLURM_JOB_ID": "123", "SLURM_JOB_PARTITION": "gpu", "SLURM_JOB_NODELIST": "n[1-2]",
        "SLURM_CPUS_PER_TASK": "8",
    })  # fmt: skip
    assert found["modules"] == ["gcc/12.2.0", "openmpi/4.1.5"]
    assert found["conda"] == {"prefix": "/opt/conda/envs/md", "env": "md"}
    assert found["container"] == {"kind": "apptainer", "image": "/images/md.sif"}
    assert found["slurm"]["job_id"] == "123" and found["slurm"]["partition"] == "gpu"
    assert found["slurm"]["nodelist"] == "n[1-2]" and found["slurm"]["cpus_per_task"] == "8"
    bare = env.facts({})
    assert bare["modules"] is None and bare["conda"] is None and bare["slurm"] is None
    assert env.facts({"SINGULARITY_CONTAINER": "x.sif"})["container"]["kind"] == "singularity"
    assert env.machine()["cpu_count"] == os.cpu_count()


def _dist(site: Path, name: str, meta: str | None = None) -> None:
    (site / name).mkdir(parents=True)
    if meta is not None:
        (site / name / ("PKG-INFO" if name.endswith(".egg-info") else "METADATA")).write_text(meta)


def test_packages_are_read_from_the_site_directories(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "NumPy-1.26.0.dist-info")
    _dist(first, "typing_extensions-4.8.0.dist-info")
    _dist(first, "odd.dist-info", "Metadata-Version: 2.1\nName: Odd.Name\nVersion: 2.0\n\nbody\n")
    _dist(first, "legacy-0.3-py3.11.egg-info")
    _dist(first, "devpkg.egg-info", "Name: devpkg\nVersion: 0.0.1\n")
    _dist(second, "numpy-1.20.0.dist-info")  # shadowed: the first on sys.path wins
    (first / "not-a-package").mkdir()
    listed = env.packages([str(first), str(second), str(tmp_path / "missing")])
    assert listed == [
        "devpkg==0.0.1", "legacy==0.3", "numpy==1.26.0", "odd-name==2.0",
        "typing-extensions==4.8.0",
    ]  # fmt: skip
    assert env.parse_packages("\n".join(listed) + "\n# c\n") == {
        "devpkg": "0.0.1", "legacy": "0.3", "numpy": "1.26.0", "odd-name": "2.0",
        "typing-extensions": "4.8.0",
    }  # fmt: skip


def test_the_fingerprint_changes_when_a_package_comes_or_goes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    dirs = [str(site), str(tmp_path / "user-site")]
    before = env.fingerprint(dirs)
    assert env.fingerprint(dirs) == before
    _dist(site, "tiny-0.1.dist-info")
    after = env.fingerprint(dirs)
    assert after != before
    (tmp_path / "user-site").mkdir()  # `pip install --user` creates it
    assert env.fingerprint(dirs) != after


def test_probe_asks_the_interpreter_itself(tmp_path: Path) -> None:
    found = env.probe(sys.executable, dict(os.environ))
    assert found["version"] == ".".join(map(str, sys.version_info[:3]))
    assert found["executable"] == sys.executable and found["path"]
    assert all(os.path.isdir(p) for p in found["path"])
    broken = _exe(tmp_path / "python3")
    broken.write_text("#!/bin/sh\necho oops >&2\nexit 4\n")
    assert "oops" in env.probe(str(broken), {})["error"]
    assert "error" in env.probe(str(tmp_path / "nope"), {})


@pytest.mark.parametrize("var", env.PATH_VARIABLES)
def test_the_interpreter_key_follows_what_changes_sys_path(var: str, tmp_path: Path) -> None:
    py = _exe(tmp_path / "bin" / "python")
    key = env.interpreter_key(str(py), {})
    assert env.interpreter_key(str(py), {var: "x"}) != key
    (tmp_path / "pyvenv.cfg").write_text("home = /usr\n")
    assert env.interpreter_key(str(py), {}) != key
