"""Safety (issue #4): nothing molexp writes lands outside the workspace, a
parameter value is never shell code, and files follow the user's umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from molexp.api.context import RESULTS_LOCK, RunContext
from molexp.api.workspace import Workspace
from molexp.core.execution.placeholders import format_value
from molexp.errors import NotFoundError, UsageError
from tests.conftest import Cli, molexp_exe
from tests.reliability.conftest import make_experiment, proc_env, records_snapshot

# --- run ids and names given by users ----------------------------------------


@pytest.mark.parametrize("run_id", ["..", "../..", "../../../etc", "a/b", "/etc", ".", ""])
def test_user_given_run_ids_never_build_paths(ws_root: Path, run_id: str) -> None:
    exp = make_experiment(ws_root)
    with pytest.raises((NotFoundError, UsageError)):
        exp.get_run(run_id)
    with pytest.raises(UsageError):
        exp.run(id=run_id)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "P/E/.."],
        ["show", "P/E/../../.."],
        ["show", "../../etc/passwd"],
        ["ls", "P/../.."],
        ["run", "P/../../x"],
        ["show", "/etc/passwd"],
        ["project", "create", "../outside"],
        ["project", "create", "/abs/outside"],
        ["experiment", "create", "P/../../outside"],
        ["experiment", "create", "../x/E"],
    ],
    ids=lambda a: " ".join(a),
)
def test_traversal_in_references_and_names_is_refused(
    workspace: Path, cli: Cli, argv: list[str]
) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    res = cli(*argv)
    assert res.exit_code in (2, 3), res.output
    assert not (workspace.parent / "outside").exists()
    assert not Path("/abs").exists()


# --- symlinks inside the workspace that lead out -----------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    return out


def _nothing_written(outside: Path) -> None:
    assert list(outside.rglob("*")) == [], "molexp wrote outside the workspace"


def test_a_runs_folder_linked_outside_is_refused(workspace: Path, cli: Cli, outside: Path) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    (workspace / "projects/P/experiments/E/runs").symlink_to(outside)
    res = cli("run", "P/E")
    assert res.exit_code == 3
    assert "leads outside the workspace" in res.stderr and len(res.stderr.splitlines()) <= 2
    _nothing_written(outside)
    doctor = cli("doctor", "--json")
    assert doctor.exit_code == 3
    assert [p["kind"] for p in json.loads(doctor.stdout)["problems"]] == ["outside"]


def test_a_run_directory_linked_outside_is_refused(
    workspace: Path, cli: Cli, outside: Path
) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    planned = json.loads(cli("run", "P/E", "--dry-run", "--json").stdout.splitlines()[0])
    runs = workspace / "projects/P/experiments/E/runs"
    runs.mkdir()
    (runs / planned["id"]).symlink_to(outside)
    res = cli("run", "P/E")
    assert res.exit_code == 3, res.output
    _nothing_written(outside)


@pytest.mark.parametrize("link", ["attempts", "attempts/2", "attempts/2/stdout.log"])
def test_attempt_folders_and_logs_linked_outside_are_refused(
    workspace: Path, cli: Cli, outside: Path, link: str
) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    assert cli("run", "P/E").exit_code == 0
    (run_dir,) = (workspace / "projects/P/experiments/E/runs").iterdir()
    before = (run_dir / "run.json").read_bytes()
    target = run_dir / link
    if link == "attempts":
        import shutil

        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(outside / "log" if link.endswith(".log") else outside)
    res = cli("run", "P/E", "--force")
    assert res.exit_code == 3, res.output
    assert "leads outside the workspace" in res.stderr
    _nothing_written(outside)
    assert (run_dir / "run.json").read_bytes() == before
    assert not (run_dir / ".lock").exists()


@pytest.mark.parametrize("link", ["projects", "projects/P/experiments"])
def test_definition_folders_linked_outside_are_refused(
    workspace: Path, cli: Cli, outside: Path, link: str
) -> None:
    if link != "projects":
        assert cli("project create P").exit_code == 0
    (workspace / link).symlink_to(outside)
    res = cli("experiment", "create", "P/E") if link != "projects" else cli("project create Q")
    assert res.exit_code == 3, res.output
    _nothing_written(outside)


def test_a_symlink_that_stays_inside_the_workspace_is_fine(workspace: Path, cli: Cli) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    (workspace / "storage").mkdir()
    (workspace / "projects/P/experiments/E/runs").symlink_to(workspace / "storage")
    assert cli("run", "P/E").exit_code == 0
    assert len(list((workspace / "storage").iterdir())) == 1


def test_the_results_lock_is_never_followed_out(tmp_path: Path, outside: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RESULTS_LOCK).symlink_to(outside / "lock")
    ctx = RunContext(
        {"MOLEXP_RUN_ID": "x", "MOLEXP_RUN_DIR": str(run_dir), "MOLEXP_WORKSPACE": str(tmp_path)}
    )
    with pytest.raises(OSError):
        ctx.set_result("a", 1)
    _nothing_written(outside)


# --- parameter values are never shell code -----------------------------------

HOSTILE = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "; touch PWNED",
    "&& touch PWNED",
    "| touch PWNED",
    "x' ; touch PWNED ; echo '",
    'x" ; touch PWNED ; echo "',
    "${IFS}touch${IFS}PWNED",
    "a\ntouch PWNED",
    "> PWNED",
    "$(echo {v})",
    "-n",
    "*",
    "~",
    "\\",
    "{seed}",
]


def test_substituted_values_are_never_executed_by_a_shell(
    workspace: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("OUT", str(out))
    assert cli("project create P").exit_code == 0
    made = cli(
        "experiment", "create", "P/E", "--param", "v=x", "--command", "printf '%s' {v} > \"$OUT\""
    )
    assert made.exit_code == 0, made.output
    for value in HOSTILE:
        res = cli("run", "P/E", "--param", f"v={value}", "--json")
        assert res.exit_code == 0, (value, res.output)
        run = json.loads(res.stdout)
        stored = json.loads((Path(run["run_dir"]) / "run.json").read_bytes())["params"]["v"]
        assert out.read_text() == format_value(stored), value
        assert not list(workspace.rglob("PWNED")) and not (tmp_path / "PWNED").exists()


def test_argv_commands_get_values_verbatim_without_a_shell(
    workspace: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("OUT", str(out))
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--param", "v=x").exit_code == 0
    writer = "import os, sys; open(os.environ['OUT'], 'w').write(sys.argv[1])"
    for value in HOSTILE:
        res = cli(
            "run",
            "P/E",
            "--param",
            f"v={value}",
            "--json",
            "--",
            sys.executable,
            "-c",
            writer,
            "{v}",
        )
        assert res.exit_code == 0, (value, res.output)
        run = json.loads(res.stdout)
        stored = json.loads((Path(run["run_dir"]) / "run.json").read_bytes())["params"]["v"]
        assert out.read_text() == format_value(stored), value
        assert not list(workspace.rglob("PWNED")) and not (tmp_path / "PWNED").exists()


# --- files follow the user's umask --------------------------------------------

SCRIPT = "import molexp as mx; mx.current_run().set_result('loss', 0.5)"


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o027], ids=["002", "022", "027"])
def test_files_and_folders_follow_the_umask_and_keep_setgid(tmp_path: Path, umask: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2777)  # a group-shared folder: setgid, inherited by subfolders
    root = shared / "ws"
    env = proc_env()

    def molexp(*args: str) -> None:
        proc = subprocess.run(
            ["/bin/sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *molexp_exe(), *args],
            cwd=shared,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr

    molexp("init", str(root))
    molexp("-w", str(root), "project", "create", "P")
    molexp(
        "-w",
        str(root),
        "experiment",
        "create",
        "P/E",
        "--command",
        f'{sys.executable} -c "{SCRIPT}"',
    )
    molexp("-w", str(root), "run", "P/E")
    molexp("-w", str(root), "ls")
    molexp("-w", str(root), "doctor")
    paths = [root, *root.rglob("*")]
    assert any(p.name == "results.json" for p in paths)
    assert any(p.name == "stdout.log" for p in paths)
    for p in paths:
        mode = p.lstat().st_mode
        if stat.S_ISDIR(mode):
            assert stat.S_IMODE(mode) & 0o777 == 0o777 & ~umask, p
            assert mode & stat.S_ISGID, f"{p} lost the group-shared setgid bit"
        else:
            assert stat.S_IMODE(mode) == 0o666 & ~umask, p
    assert Workspace(root).exists()


# --- every writer goes through the one check (issue #12) ------------------------


@pytest.fixture
def bundle(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundle of P/E (one run) and of assets at every scope, made in another workspace."""
    src = tmp_path / "src"
    src.mkdir()
    out = tmp_path / "b.tar.gz"
    with monkeypatch.context() as mp:
        mp.chdir(src)
        assert cli("init . --name src").exit_code == 0
        assert cli("project create P").exit_code == 0
        assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
        assert cli("run", "P/E").exit_code == 0
        (src / "data.txt").write_text("data\n")
        for scope in (".", "P", "P/E"):
            assert cli("assets", "add", scope, "data", "data.txt").exit_code == 0
        res = cli("export", ".", "-o", str(out))
        assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize(
    "link",
    [
        "projects",
        "projects/P/experiments",
        "projects/P/experiments/E/runs",
        "assets",
        "projects/P/assets",
        "projects/P/experiments/E/assets",
    ],
)
def test_import_never_writes_through_a_folder_linked_outside(
    workspace: Path, cli: Cli, outside: Path, bundle: Path, link: str
) -> None:
    if link not in ("projects", "assets"):
        assert cli("project create P").exit_code == 0
    if link.startswith("projects/P/experiments/"):
        assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    target = workspace / link
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(outside)
    before = records_snapshot(workspace)
    res = cli("import", str(bundle))
    assert res.exit_code == 3, res.output
    assert "leads outside the workspace" in res.stderr and len(res.stderr.splitlines()) <= 2
    _nothing_written(outside)
    assert records_snapshot(workspace) == before, "a refused import placed something"


@pytest.mark.parametrize("link", ["projects/P/assets", "projects/P/assets/data", "assets"])
def test_assets_add_and_rm_never_write_through_a_link_outside(
    workspace: Path, cli: Cli, outside: Path, tmp_path: Path, link: str
) -> None:
    assert cli("project create P").exit_code == 0
    data = tmp_path / "f.txt"
    data.write_text("x\n")
    scope = "." if link == "assets" else "P"
    (workspace / link).parent.mkdir(parents=True, exist_ok=True)
    (workspace / link).symlink_to(outside)
    res = cli("assets", "add", scope, "data", str(data))
    assert res.exit_code == 3, res.output
    assert "leads outside the workspace" in res.stderr
    _nothing_written(outside)
    # an asset already in the linked-out folder is neither replaced nor removed
    (workspace / link).unlink()
    assert cli("assets", "add", scope, "data", str(data)).exit_code == 0
    library = workspace / ("assets" if scope == "." else "projects/P/assets")
    library.rename(outside / "lib")
    library.symlink_to(outside / "lib")
    before = records_snapshot(outside)
    data.write_text("other\n")
    for argv in (
        ("assets", "add", scope, "data", str(data), "--replace"),
        ("assets", "rm", scope, "data"),
    ):
        res = cli(*argv)
        assert res.exit_code == 3, res.output
        assert "leads outside the workspace" in res.stderr
    assert records_snapshot(outside) == before


def test_a_linked_out_artifacts_folder_refuses_the_attempt(
    workspace: Path, cli: Cli, outside: Path
) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    assert cli("run", "P/E").exit_code == 0
    (run_dir,) = (workspace / "projects/P/experiments/E/runs").iterdir()
    (run_dir / "artifacts").rmdir()
    (run_dir / "artifacts").symlink_to(outside)
    res = cli("run", "P/E", "--force")
    assert res.exit_code == 3, res.output
    assert "leads outside the workspace" in res.stderr
    _nothing_written(outside)


def test_the_cache_and_index_are_never_written_through_a_link_outside(
    workspace: Path, cli: Cli, outside: Path
) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    assert cli("run", "P/E").exit_code == 0
    import shutil

    shutil.rmtree(workspace / ".molexp", ignore_errors=True)
    (workspace / ".molexp").symlink_to(outside)
    for argv in (("ls",), ("show", "P/E"), ("run", "P/E"), ("ls", "--format", "json")):
        res = cli(*argv)
        assert res.exit_code == 0, res.output  # derived data only: works without it
    _nothing_written(outside)


def test_a_run_context_never_writes_through_a_link_outside(
    ws_root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from molexp.core.assets import add_asset, find_for_run
    from molexp.core.assets.scope import Scope
    from molexp.errors import WorkspaceError

    exp = make_experiment(ws_root)
    data = ws_root.parent / "data.txt"
    data.write_text("x\n")
    add_asset(Scope(exp.workspace), "data", data)
    run = exp.run()
    run.dir.rename(outside / run.id)
    run.dir.symlink_to(outside / run.id)
    (outside / run.id / "attempts" / "1").mkdir(parents=True)
    before = records_snapshot(outside)
    env = {
        "MOLEXP_RUN_ID": run.id,
        "MOLEXP_RUN_DIR": str(run.dir),
        "MOLEXP_WORKSPACE": str(ws_root),
        "MOLEXP_PROJECT": "P",
        "MOLEXP_EXPERIMENT": "E",
        "MOLEXP_ATTEMPT": "1",
    }
    ctx = RunContext(env)
    with pytest.raises(WorkspaceError, match="leads outside the workspace"):
        ctx.set_result("a", 1)
    with pytest.raises(WorkspaceError, match="leads outside the workspace"):
        ctx.artifact_path("sub/x.txt")
    with pytest.raises(WorkspaceError, match="leads outside the workspace"):
        ctx.log(step=1, loss=0.5)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(WorkspaceError, match="leads outside the workspace"):
        find_for_run(ctx, "data", None)
    assert records_snapshot(outside) == before


# --- nothing is written under a record newer than this molexp (issue #12) -------

NEWER = "schema_version: 99"


@pytest.mark.parametrize(
    ("record", "argv"),
    [
        ("workspace.yaml", ("project", "create", "Q")),
        ("workspace.yaml", ("assets", "add", ".", "data", "{data}")),
        ("workspace.yaml", ("import", "{bundle}")),
        ("projects/P/project.yaml", ("experiment", "create", "P/E2")),
        ("projects/P/project.yaml", ("run", "P/E")),
        ("projects/P/project.yaml", ("assets", "add", "P", "data", "{data}")),
        ("projects/P/project.yaml", ("assets", "add", "P/E", "data", "{data}")),
        ("projects/P/project.yaml", ("import", "{bundle}")),
        ("projects/P/experiments/E/experiment.yaml", ("run", "P/E")),
        ("projects/P/experiments/E/experiment.yaml", ("assets", "add", "P/E", "data", "{data}")),
        ("projects/P/experiments/E/experiment.yaml", ("import", "{bundle}")),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]),
)
def test_nothing_is_written_under_a_newer_record(
    workspace: Path, cli: Cli, tmp_path: Path, bundle: Path, record: str, argv: tuple[str, ...]
) -> None:
    assert cli("project create P").exit_code == 0
    assert cli("experiment", "create", "P/E", "--command", "true").exit_code == 0
    path = workspace / record
    path.write_text(path.read_text().replace("schema_version: 1", NEWER))
    data = tmp_path / "d.txt"
    data.write_text("d\n")
    before = records_snapshot(workspace)
    res = cli(*(a.format(data=data, bundle=bundle) for a in argv))
    assert res.exit_code == 3, res.output
    assert record.split("/")[-1] in res.stderr and "newer than this molexp" in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2
    assert records_snapshot(workspace) == before


def test_the_python_api_writes_nothing_under_a_newer_record(ws_root: Path) -> None:
    from molexp.errors import SchemaVersionError

    exp = make_experiment(ws_root)
    project_file = ws_root / "projects/P/project.yaml"
    project_file.write_text(project_file.read_text().replace("schema_version: 1", NEWER))
    again = Workspace(ws_root).get_project("P").get_experiment("E")
    with pytest.raises(SchemaVersionError, match="project.yaml"):
        again.run()
    with pytest.raises(SchemaVersionError, match="project.yaml"):
        again.run_for(replica=0, cwd=ws_root)
    with pytest.raises(SchemaVersionError, match="project.yaml"):
        Workspace(ws_root).project("P").experiment("E2")
    assert not (exp.runs_dir).exists()
