"""Bad input (issue #4): a table of hostile and mistaken inputs across every
command.  Each exits 2 or 3 with a short message on stderr (no traceback), and
the workspace's files stay byte-for-byte the same.  Plus property-based fuzzing
of the value parser and of name validation."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from molexp.cli.main import MAX_LINE, app
from molexp.core.model.identity import normalise
from molexp.core.model.names import NAME_PATTERN, is_valid_name, validate_name
from molexp.core.model.values import parse_assignment, parse_grid, parse_value
from molexp.errors import InvalidNameError, UsageError
from tests.conftest import Cli, molexp_exe, snapshot
from tests.reliability.conftest import proc_env, records_snapshot

LONG = "x" * 100_000
MOLCFG = "defaults: {epochs: 10}\nprofiles:\n  smoke: {epochs: 1}\n"


def alias_bomb(levels: int = 9, width: int = 9, top: str = "defaults") -> bytes:
    """YAML whose ``levels`` levels of ``width`` aliases stand for ``width ** levels``
    values (9 x 9: 387 million) in a few hundred bytes."""
    lines = [f"{top}:", "  a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


ALIAS_BOMB_VALUE = (
    "["
    + ", ".join(
        ["&a0 [x, x, x, x, x, x, x, x, x]"]
        + [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    )
    + "]"
)

# Input files, written outside the workspace: name -> bytes.
FILES: dict[str, bytes] = {
    "not-utf8.yaml": b"lr: \xff\xfe\n",
    "malformed.yaml": b"lr: [1, 2\n",
    "list.yaml": b"- 1\n- 2\n",
    "nul.yaml": b"lr: 1\x00\n",
    "dup-keys.yaml": b"lr: 1\nlr: 2\n",
    "tabs.yaml": b"a:\n\t- 1\n",
    "newer.yaml": b"version: 99\ndefaults: {}\n",
    "cycle.yaml": b"profiles: {a: {extends: b}, b: {extends: a}}\n",
    "unknown-base.yaml": b"profiles: {a: {extends: nope}}\n",
    "clash.yaml": b"profiles: {large-batch: {}, large_batch: {}}\n",
    "top-level-list.yaml": b"[1, 2]\n",
    "unknown-key.yaml": b"defaults: {}\nprofile: {}\n",
    "config.toml": b"[defaults]\n",
    "malformed.json": b'{"defaults": {',
    "not-a-tarball.tar.gz": b"this is not a tarball\n",
    "data.txt": b"some data\n",
    "alias-bomb.yaml": alias_bomb(),
    "alias-bomb-params.yaml": alias_bomb(top="lr"),
    "alias-bomb-grid.yaml": alias_bomb(top="lr"),
    "typo-grid.yaml": b"lrr: [1, 2]\n",
}


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    needs: str | None = None  # a command added by another issue: skipped if absent
    setup: str | None = None  # a change to the workspace first (SETUPS)


def c(case_id: str, *argv: str, needs: str | None = None, setup: str | None = None) -> Case:
    return Case(case_id, argv, needs, setup)


def _link_out(workspace: Path, outside: Path, rel: str) -> None:
    """Move ``rel`` (if it exists) out of the workspace and leave a symlink to it."""
    target = outside / rel.replace("/", "_")
    here = workspace / rel
    if here.exists():
        here.rename(target)
    else:
        target.mkdir()
    here.parent.mkdir(parents=True, exist_ok=True)
    here.symlink_to(target)


def _command(workspace: Path, command: str) -> None:
    """Give P/E another command (a hand-edited experiment.yaml)."""
    path = workspace / "projects/P/experiments/E/experiment.yaml"
    path.write_text(path.read_text().replace("command: 'true'", f"command: {json.dumps(command)}"))


def _workdir(workspace: Path, workdir: str) -> None:
    path = workspace / "projects/P/experiments/E/experiment.yaml"
    path.write_text(path.read_text().replace("workdir: .", f"workdir: {workdir}"))


def _newer(workspace: Path, rel: str) -> None:
    path = workspace / rel
    path.write_text(path.read_text().replace("schema_version: 1", "schema_version: 99"))


# Changes made to the workspace before a case runs: name -> f(workspace, outside).
SETUPS: dict[str, Callable[[Path, Path], None]] = {
    "projects-linked-out": lambda ws, out: _link_out(ws, out, "projects"),
    "runs-linked-out": lambda ws, out: _link_out(ws, out, "projects/P/experiments/E/runs"),
    "project-assets-linked-out": lambda ws, out: _link_out(ws, out, "projects/P/assets"),
    "workspace-assets-linked-out": lambda ws, out: _link_out(ws, out, "assets"),
    "project-newer": lambda ws, out: _newer(ws, "projects/P/project.yaml"),
    "workspace-newer": lambda ws, out: _newer(ws, "workspace.yaml"),
    "command-config-missing": lambda ws, out: _command(ws, "lmp -var T {config.md.temp}"),
    "command-backtick": lambda ws, out: _command(ws, "echo `echo {lr}`"),
    "command-arithmetic": lambda ws, out: _command(ws, "echo $(( {lr} * 2 ))"),
    "command-heredoc": lambda ws, out: _command(ws, "cat <<EOF\n{lr}\nEOF"),
    "workdir-gone": lambda ws, out: _workdir(ws, "gone"),
}


CASES: list[Case] = [
    # init
    c("init-under-a-file", "init", "/dev/null/ws"),
    c("init-onto-a-file", "init", "{in}/data.txt"),
    c("init-bad-name", "init", "{in}/new-ws", "--name", "../evil"),
    c("init-empty-name", "init", "{in}/new-ws", "--name", ""),
    c("init-nul-path", "init", "{in}/a\x00b"),
    # project create / ls
    c("project-traversal", "project", "create", "../evil"),
    c("project-slash", "project", "create", "a/b"),
    c("project-absolute", "project", "create", "/tmp/evil"),
    c("project-dot", "project", "create", "."),
    c("project-dotdot", "project", "create", ".."),
    c("project-hidden", "project", "create", ".hidden"),
    c("project-empty", "project", "create", ""),
    c("project-65-chars", "project", "create", "p" * 65),
    c("project-very-long", "project", "create", LONG),
    c("project-newline", "project", "create", "a\nb"),
    c("project-trailing-newline", "project", "create", "a\n"),
    c("project-space", "project", "create", "my project"),
    c("project-non-utf8", "project", "create", "caf\udce9"),
    c("project-nul", "project", "create", "P\x00"),
    c("project-bad-tag", "project", "create", "Q", "--tag", "bad tag"),
    c("project-ls-extra-arg", "project", "ls", "extra"),
    # experiment create / ls
    c("experiment-traversal", "experiment", "create", "P/../x"),
    c("experiment-no-slash", "experiment", "create", "P"),
    c("experiment-bad-name", "experiment", "create", "P/-x"),
    c("experiment-unknown-project", "experiment", "create", "Nope/E2"),
    c("replicas-negative", "experiment", "create", "P/E2", "--replicas", "-1"),
    c("replicas-zero", "experiment", "create", "P/E2", "--replicas", "0"),
    c("replicas-not-int", "experiment", "create", "P/E2", "--replicas", "two"),
    c("seeds-wrong-length", "experiment", "create", "P/E2", "--seeds", "1,2,3", "--replicas", "2"),
    c("seeds-not-int", "experiment", "create", "P/E2", "--seeds", "a,b"),
    c("seeds-float", "experiment", "create", "P/E2", "--seeds", "[1, 2.5]"),
    c("seeds-empty", "experiment", "create", "P/E2", "--seeds", ""),
    c("params-missing-file", "experiment", "create", "P/E2", "--params", "{in}/nope.yaml"),
    c("params-directory", "experiment", "create", "P/E2", "--params", "{in}"),
    c("params-not-utf8", "experiment", "create", "P/E2", "--params", "{in}/not-utf8.yaml"),
    c("params-malformed", "experiment", "create", "P/E2", "--params", "{in}/malformed.yaml"),
    c("params-a-list", "experiment", "create", "P/E2", "--params", "{in}/list.yaml"),
    c("params-nul-byte", "experiment", "create", "P/E2", "--params", "{in}/nul.yaml"),
    c("params-duplicate-keys", "experiment", "create", "P/E2", "--params", "{in}/dup-keys.yaml"),
    c("params-tabs", "experiment", "create", "P/E2", "--params", "{in}/tabs.yaml"),
    c(
        "params-alias-bomb",
        "experiment",
        "create",
        "P/E2",
        "--params",
        "{in}/alias-bomb-params.yaml",
    ),
    c("param-no-equals", "experiment", "create", "P/E2", "--param", "lr"),
    c("param-empty-key", "experiment", "create", "P/E2", "--param", "=1"),
    c("param-nan", "experiment", "create", "P/E2", "--param", "lr=.nan"),
    c("param-control-char", "experiment", "create", "P/E2", "--param", "lr=\x1b[31m"),
    c("command-empty", "experiment", "create", "P/E2", "--command", " "),
    c("command-nul", "experiment", "create", "P/E2", "--command", "echo \x00"),
    c("experiment-conflict", "experiment", "create", "P/E", "--replicas", "5"),
    c("experiment-builtin-param", "experiment", "create", "P/E3", "--param", "seed=1"),
    c("experiment-params-param", "experiment", "create", "P/E3", "--param", "config=1"),
    c("experiment-workdir-missing", "experiment", "create", "P/E4", "--workdir", "{in}/nope"),
    c("experiment-workdir-a-file", "experiment", "create", "P/E4", "--workdir", "{in}/data.txt"),
    c("experiment-ls-unknown", "experiment", "ls", "Nope"),
    c("experiment-ls-long", "experiment", "ls", LONG),
    # run
    c("run-unknown-project", "run", "Nope/E"),
    c("run-unknown-experiment", "run", "P/Nope"),
    c("run-a-project", "run", "P"),
    c("run-a-run", "run", "P/E/{run_id}"),
    c("run-replica-negative", "run", "P/E", "--replica", "-1"),
    c("run-replica-out-of-range", "run", "P/E", "--replica", "2"),
    c("run-replica-huge", "run", "P/E", "--replica", "9" * 30),
    c("run-jobs-zero", "run", "P/E", "--jobs", "0"),
    c("run-jobs-negative", "run", "P/E", "--jobs", "-4"),
    c("run-unknown-profile", "run", "P/E", "--profile", "nope"),
    c("run-defaults-profile", "run", "P/E", "--profile", "defaults"),
    c("run-profile-no-file", "run", "P/E", "--profile", "smoke", "--config", "{in}/nope.yaml"),
    c("run-config-directory", "run", "P/E", "--config", "{in}"),
    c("run-config-malformed", "run", "P/E", "--config", "{in}/malformed.yaml"),
    c("run-config-malformed-json", "run", "P/E", "--config", "{in}/malformed.json"),
    c("run-config-newer", "run", "P/E", "--config", "{in}/newer.yaml"),
    c("run-config-cycle", "run", "P/E", "--config", "{in}/cycle.yaml", "--profile", "a"),
    c(
        "run-config-unknown-base",
        "run",
        "P/E",
        "--config",
        "{in}/unknown-base.yaml",
        "--profile",
        "a",
    ),
    c("run-config-name-clash", "run", "P/E", "--config", "{in}/clash.yaml"),
    c("run-config-top-level-list", "run", "P/E", "--config", "{in}/top-level-list.yaml"),
    c("run-config-unknown-key", "run", "P/E", "--config", "{in}/unknown-key.yaml"),
    c("run-config-toml", "run", "P/E", "--config", "{in}/config.toml"),
    c("run-config-not-utf8", "run", "P/E", "--config", "{in}/not-utf8.yaml"),
    c("run-config-alias-bomb", "run", "P/E", "--config", "{in}/alias-bomb.yaml"),
    c("run-grid-file-alias-bomb", "run", "P/E", "--grid-file", "{in}/alias-bomb-grid.yaml"),
    c("run-param-alias-bomb", "run", "P/E", "--param", "lr=" + ALIAS_BOMB_VALUE),
    c("run-override-no-equals", "run", "P/E", "--override", "epochs"),
    c("run-override-below-scalar", "run", "P/E", "--override", "a=1", "--override", "a.b=2"),
    c("run-override-empty-segment", "run", "P/E", "--override", "a..b=1"),
    c("run-param-inf", "run", "P/E", "--param", "lr=-.inf"),
    c("run-grid-no-values", "run", "P/E", "--grid", "lr="),
    c("run-grid-no-key", "run", "P/E", "--grid", "=1,2"),
    c("run-grid-twice", "run", "P/E", "--grid", "lr=1,2", "--grid", "lr=3"),
    c("run-argv-nul", "run", "P/E", "--", "echo", "a\x00b"),
    c("run-param-typo", "run", "P/E", "--param", "lrr=0.2"),
    c("run-param-nested-typo", "run", "P/E", "--param", "lr.x=0.2"),
    c("run-grid-typo", "run", "P/E", "--grid", "lrr=1,2"),
    c("run-grid-file-typo", "run", "P/E", "--grid-file", "{in}/typo-grid.yaml"),
    c("run-config-placeholder-missing", "run", "P/E", setup="command-config-missing"),
    c("run-placeholder-in-backticks", "run", "P/E", "-p", "lr=a b", setup="command-backtick"),
    c(
        "run-placeholder-in-arithmetic",
        "run",
        "P/E",
        "-p",
        "lr=x",
        "--dry-run",
        setup="command-arithmetic",
    ),
    c("run-placeholder-in-heredoc", "run", "P/E", "-p", "lr=$(x)", setup="command-heredoc"),
    c("run-workdir-gone", "run", "P/E", setup="workdir-gone"),
    c("run-very-long-ref", "run", LONG),
    # ls
    c("ls-unknown", "ls", "Nope"),
    c("ls-a-run", "ls", "P/E/{run_id}"),
    c("ls-too-deep", "ls", "P/E/x/y"),
    c("ls-bad-status", "ls", "--status", "bogus"),
    c("ls-bad-format", "ls", "--format", "xml"),
    c("ls-where-no-equals", "ls", "--where", "lr"),
    c("ls-where-control-char", "ls", "--where", "lr=\x07"),
    c("ls-long-status", "ls", "--status", LONG),
    c("ls-where-double-operator", "ls", "--where", "lr>>1"),
    c("ls-where-unknown-operator", "ls", "--where", "lr=>1"),
    c("ls-where-empty-key", "ls", "--where", "<1"),
    c("ls-where-bad-regex", "ls", "--where", "lr~("),
    c("ls-where-long", "ls", "--where", LONG + "<<1"),
    c("ls-sort-empty", "ls", "--sort", "-"),
    c("ls-limit-negative", "ls", "--limit", "-1"),
    # metrics
    c("metrics-not-a-run", "metrics", "P/E"),
    c("metrics-no-such-run", "metrics", "P/E/abcd"),
    c("metrics-no-attempt", "metrics", "P/E/{run_id}", "--attempt", "7"),
    c("metrics-unknown-metric", "metrics", "P/E/{run_id}", "--metric", "nope"),
    c("metrics-bad-format", "metrics", "P/E/{run_id}", "--format", "xml"),
    c("metrics-plot-follow", "metrics", "P/E/{run_id}", "--plot", "--follow"),
    # show
    c("show-unknown", "show", "zzzz"),
    c("show-no-such-run", "show", "P/E/abcd"),
    c("show-short-prefix", "show", "ab"),
    c("show-dotdot", "show", "P/E/.."),
    c("show-traversal", "show", "../../etc/passwd"),
    c("show-very-long", "show", LONG),
    c("show-non-utf8", "show", "\udcff\udcfe"),
    c("no-workspace-here", "-w", "{in}", "show"),
    c("workspace-is-a-file", "-w", "{in}/data.txt", "ls"),
    # doctor, and the command line itself
    c("doctor-unknown-option", "doctor", "--repair"),
    c("doctor-extra-arg", "doctor", "extra"),
    c("unknown-command", "frobnicate"),
    c("unknown-global-option", "--frobnicate", "ls"),
    # commands of other issues, when present
    c("assets-add-traversal", "assets", "add", ".", "../evil", "{in}/data.txt", needs="assets"),
    c("assets-add-missing-file", "assets", "add", ".", "data", "{in}/nope", needs="assets"),
    c("assets-add-unknown-scope", "assets", "add", "Nope", "data", "{in}/data.txt", needs="assets"),
    c("assets-show-unknown", "assets", "show", ".", "nope", needs="assets"),
    c("assets-path-unknown", "assets", "path", "nope", needs="assets"),
    c("assets-rm-unknown", "assets", "rm", ".", "nope", needs="assets"),
    c("compare-unknown", "compare", "Nope", needs="compare"),
    c("compare-bad-format", "compare", "P/E", "--format", "xml", needs="compare"),
    c("compare-where-operator", "compare", "P/E", "--where", "lr=<1", needs="compare"),
    c("compare-plot-alone", "compare", "P/E", "--plot", "lr", needs="compare"),
    c("compare-plot-unknown", "compare", "P/E", "--aggregate", "--plot", "nope", needs="compare"),
    c(
        "compare-sort-unknown-aggregate",
        "compare",
        "P/E",
        "--aggregate",
        "--sort",
        "nope",
        needs="compare",
    ),
    c("diff-unknown", "diff", "zzzz", "yyyy", needs="diff"),
    c("cancel-unknown", "cancel", "P/E/abcd", needs="cancel"),
    c("run-retry-missing", "run-retry", "{in}/nope.json"),
    c("run-retry-not-a-manifest", "run-retry", "{in}/not-a-tarball.tar.gz"),
    c("run-slurm-pack-zero", "run", "P/E", "--executor", "slurm", "--pack", "0"),
    c("run-slurm-abbreviated-array", "run", "P/E", "--executor", "slurm", "--sbatch-arg=--arr=0"),
    c("run-slurm-own-output", "run", "P/E", "--executor", "slurm", "--sbatch-arg=-o/tmp/x.out"),
    c("run-slurm-own-chdir", "run", "P/E", "--executor", "slurm", "--sbatch-arg=--chdir=/tmp"),
    c("run-local-retries", "run", "P/E", "--retries", "2"),
    c("export-unknown", "export", "Nope", "-o", "{in}/out.tar.gz", needs="export"),
    c("import-missing", "import", "{in}/nope.tar.gz", needs="import"),
    c("import-not-a-tarball", "import", "{in}/not-a-tarball.tar.gz", needs="import"),
    # writes through a symlink out of the workspace, and under a newer record
    c("import-projects-linked-out", "import", "{in}/bundle.tar.gz", setup="projects-linked-out"),
    c("import-runs-linked-out", "import", "{in}/bundle.tar.gz", setup="runs-linked-out"),
    c("import-alias-bomb", "import", "{in}/alias-bomb.tar.gz"),
    c("import-under-newer-project", "import", "{in}/bundle.tar.gz", setup="project-newer"),
    c("run-runs-linked-out", "run", "P/E", "-r", "1", setup="runs-linked-out"),
    c("run-under-newer-project", "run", "P/E", "-r", "1", setup="project-newer"),
    c("experiment-under-newer-project", "experiment", "create", "P/E2", setup="project-newer"),
    c("project-under-newer-workspace", "project", "create", "Q", setup="workspace-newer"),
    c(
        "assets-add-project-linked-out",
        "assets",
        "add",
        "P",
        "data",
        "{in}/data.txt",
        setup="project-assets-linked-out",
    ),  # fmt: skip
    c(
        "assets-add-workspace-linked-out",
        "assets",
        "add",
        ".",
        "data",
        "{in}/data.txt",
        setup="workspace-assets-linked-out",
    ),  # fmt: skip
    c(
        "assets-add-under-newer-project",
        "assets",
        "add",
        "P",
        "d",
        "{in}/data.txt",
        setup="project-newer",
    ),
    c("tag-under-newer-project", "tag", "P/E", "+keep", needs="tag", setup="project-newer"),
    c("tag-run-linked-out", "tag", "P/E/{run_id}", "+keep", needs="tag", setup="runs-linked-out"),
    c("note-under-newer-project", "note", "P", "text", needs="note", setup="workspace-newer"),
    c("tag-unknown", "tag", "Nope", "+keep", needs="tag"),
    c("tag-bad-tag", "tag", "P/E", "+bad tag", needs="tag"),
    c("tag-traversal", "tag", "P/E", "+../x", needs="tag"),
    c("tag-no-ref", "tag", "+keep", needs="tag"),
    c("tag-short-prefix", "tag", "ab", "+keep", needs="tag"),
    c("tag-control-char", "tag", "P/E", "+a\x1b", needs="tag"),
    c("note-unknown", "note", "Nope", "text", needs="note"),
    c("note-no-text", "note", "P/E", needs="note"),
    c("note-nul", "note", "P/E", "a\x00b", needs="note"),
    c("rm-unknown", "rm", "Nope", "-y", needs="rm"),
    c("rm-nothing-named", "rm", "-y", needs="rm"),
    c("rm-the-workspace", "rm", ".", "-y", needs="rm"),
    c("rm-bad-where", "rm", "P/E", "--where", "x>>1", "-y", needs="rm"),
    c("rm-without-yes", "rm", "P/E", needs="rm"),
    c("rm-run-linked-out", "rm", "P/E/{run_id}", "-y", needs="rm", setup="runs-linked-out"),
    c("rm-under-newer-project", "rm", "P/E/{run_id}", "-y", needs="rm", setup="project-newer"),
    c("rm-project-under-newer-workspace", "rm", "P", "-y", needs="rm", setup="workspace-newer"),
    c("trash-restore-unknown", "trash", "restore", "nope", needs="trash"),
    c("trash-restore-traversal", "trash", "restore", "../x", needs="trash"),
    c("trash-empty-negative-days", "trash", "empty", "--older-than", "-1", "-y", needs="trash"),
    c("logs-unknown", "logs", "zzzz", needs="logs"),
    c("logs-an-experiment", "logs", "P/E", needs="logs"),
    c("logs-no-such-attempt", "logs", "P/E/{run_id}", "--attempt", "9", needs="logs"),
    c("logs-negative-tail", "logs", "P/E/{run_id}", "--tail", "-1", needs="logs"),
    c("ui-port-out-of-range", "ui", "--port", "99999", needs="ui"),
    c("ui-port-not-a-number", "ui", "--port", "http", needs="ui"),
    c("report-a-project", "report", "P", "-o", "{in}/r.html", needs="report"),
    c("report-unknown", "report", "P/Nope", "-o", "{in}/r.html", needs="report"),
    c("report-a-run", "report", "P/E/{run_id}", "-o", "{in}/r.html", needs="report"),
    c("report-no-output", "report", "P/E", needs="report"),
    c("report-into-a-missing-folder", "report", "P/E", "-o", "{in}/nope/r.html", needs="report"),
]


def _registered() -> set[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return set(group.list_commands(typer.Context(group)))


REGISTERED = _registered()
ACTIVE = [case for case in CASES if case.needs is None or case.needs in REGISTERED]


def test_the_table_is_large_and_covers_every_command() -> None:
    assert len({case.id for case in CASES}) == len(CASES)
    core = [case for case in CASES if case.needs is None]
    print(
        f"\nbad inputs: {len(ACTIVE)} tried ({len(core)} core + "
        f"{len(ACTIVE) - len(core)} for commands of other issues)"
    )
    assert len(core) >= 40
    covered = {case.argv[0] if case.argv[0] != "-w" else case.argv[2] for case in ACTIVE}
    for command in ("init", "project", "experiment", "run", "ls", "show", "doctor"):
        assert command in covered
    for command in REGISTERED - {"run-task"}:
        assert command in covered, f"no bad input for `molexp {command}`"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A workspace with P/E (2 replicas) and one succeeded run, built once."""
    root = tmp_path_factory.mktemp("template") / "ws"
    root.mkdir()
    cli = Cli()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HOME", str(root.parent))
        assert cli("init", ".", "--name", "lab").exit_code == 0
        (root / "molcfg.yaml").write_text(MOLCFG)
        assert cli("project create P").exit_code == 0
        made = cli(
            "experiment",
            "create",
            "P/E",
            "--param",
            "lr=0.1",
            "--replicas",
            "2",
            "--command",
            "true",
        )
        assert made.exit_code == 0, made.output
        ran = cli("run", "P/E", "--replica", "0", "--json")
        assert ran.exit_code == 0, ran.output
        bundle = root.parent / "bundle.tar.gz"
        assert cli("export", "P/E", "-o", str(bundle)).exit_code == 0
    replace_member(
        bundle,
        root.parent / "alias-bomb.tar.gz",
        "projects/P/experiments/E/experiment.yaml",
        (root / "projects/P/experiments/E/experiment.yaml").read_bytes() + alias_bomb(top="x"),
    )
    shutil.rmtree(root / ".molexp", ignore_errors=True)
    return root, str(json.loads(ran.stdout)["id"])


def replace_member(src: Path, dst: Path, name: str, data: bytes) -> None:
    """Copy the bundle ``src`` to ``dst`` with member ``name`` holding ``data``,
    its manifest entry updated to match (a well-formed bundle with hostile content)."""
    import io
    import tarfile

    from molexp.core.bundle.manifest import MANIFEST, Hasher

    hasher = Hasher()
    hasher.update(data)
    with (
        tarfile.open(src, "r:gz") as tin,
        tarfile.open(dst, "w:gz", format=tarfile.PAX_FORMAT) as tout,
    ):
        for member in tin:
            body = tin.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            if member.name == name:
                body = data
            elif member.name == MANIFEST:
                manifest = json.loads(body or b"{}")
                for entry in manifest["files"]:
                    if entry["path"] == name:
                        entry.update(size=hasher.size, hash=hasher.digest)
                body = json.dumps(manifest).encode()
            if body is not None:
                member.size = len(body)
                tout.addfile(member, io.BytesIO(body))
            else:
                tout.addfile(member)


@pytest.fixture
def bad_ws(
    template: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, str]]:
    """A fresh copy of the template (the current directory) and the input files."""
    workspace = tmp_path / "ws"
    shutil.copytree(template[0], workspace, symlinks=True)
    monkeypatch.chdir(workspace)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, data in FILES.items():
        (inputs / name).write_bytes(data)
    for bundle in ("bundle.tar.gz", "alias-bomb.tar.gz"):
        shutil.copy(template[0].parent / bundle, inputs / bundle)
    (tmp_path / "outside").mkdir()
    return workspace, {"in": str(inputs), "run_id": template[1]}


def check_refusal(code: int, stderr: str) -> None:
    assert code in (2, 3), f"exit {code}: {stderr}"
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, stderr
    assert all(len(line) <= MAX_LINE + len("error: ") for line in lines), "message too long"


@pytest.mark.parametrize("case", ACTIVE, ids=lambda case: case.id)
def test_bad_input_is_refused_cleanly_and_changes_nothing(
    bad_ws: tuple[Path, dict[str, str]], cli: Cli, case: Case
) -> None:
    workspace, where = bad_ws
    outside = workspace.parent / "outside"
    if case.setup is not None:
        SETUPS[case.setup](workspace, outside)
    before, before_outside = records_snapshot(workspace), snapshot(outside)
    argv = [arg.format(**where) if "{" in arg else arg for arg in case.argv]
    started = time.monotonic()
    res = cli(*argv)
    check_refusal(res.exit_code, res.stderr)
    assert time.monotonic() - started < 10, "a refusal should be quick"
    assert records_snapshot(workspace) == before, "the workspace changed"
    assert snapshot(outside) == before_outside, "molexp wrote outside the workspace"
    assert not (Path(where["in"]) / "new-ws").exists()


@pytest.mark.parametrize(
    ("where", "argv", "code"),
    [
        ("molcfg.yaml", ("run", "P/E"), 2),
        ("molcfg.yaml", ("run", "P/E", "--dry-run"), 2),
        ("projects/P/experiments/E/experiment.yaml", ("run", "P/E"), 3),
        ("projects/P/experiments/E/experiment.yaml", ("show", "P/E"), 3),
        ("projects/P/project.yaml", ("experiment", "create", "P/E3"), 3),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_an_alias_bomb_in_a_workspace_file_is_refused_within_a_second(
    bad_ws: tuple[Path, dict[str, str]], cli: Cli, where: str, argv: tuple[str, ...], code: int
) -> None:
    workspace, _ = bad_ws
    (workspace / where).write_bytes(alias_bomb(top="params" if "experiment" in where else "x"))
    before = records_snapshot(workspace)
    started = time.monotonic()
    res = cli(*argv)
    elapsed = time.monotonic() - started
    check_refusal(res.exit_code, res.stderr)
    assert res.exit_code == code, res.stderr
    assert "alias bomb" in res.stderr and where.split("/")[-1] in res.stderr
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert records_snapshot(workspace) == before


REAL_ARGV: list[list[bytes]] = [
    [b"project", b"create", b"caf\xe9"],
    [b"show", b"\xff\xfe"],
    [b"experiment", b"create", b"P/\xc3("],
    [b"run", b"P/E", b"--param", b"lr=\xff"],
    [b"ls", b"--where", b"lr=\xfe"],
    [b"show", b"P/E/" + b"a" * 100_000],
]


@pytest.mark.parametrize("argv", REAL_ARGV, ids=lambda a: a[0].decode() + "-" + str(len(a)))
def test_non_utf8_and_huge_arguments_from_a_real_shell(
    bad_ws: tuple[Path, dict[str, str]], argv: list[bytes]
) -> None:
    workspace, _ = bad_ws
    before = records_snapshot(workspace)
    proc = subprocess.run(
        [*(os.fsencode(a) for a in molexp_exe()), *argv],
        cwd=workspace,
        env=proc_env(),
        capture_output=True,
        timeout=60,
    )
    check_refusal(proc.returncode, proc.stderr.decode("utf-8", "replace"))
    assert records_snapshot(workspace) == before


# --- property-based fuzzing ----------------------------------------------------

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(
        list("[]{},:'\"#&*!|>%@`-?=.\\/ \t\n\r~$") + ["\x00", "\x07", "\x1b", "\udcff"]
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_parse_value_never_fails_except_with_a_usage_error(text: str) -> None:
    try:
        value = parse_value(text)
    except UsageError as exc:
        assert "control character" in exc.message or "not valid UTF-8" in exc.message
        return
    try:
        normalise(value)
    except UsageError:
        pass  # .nan / .inf: refused later, with exit 2


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_assignments_and_grids_parse_or_refuse_cleanly(text: str) -> None:
    for parse in (lambda t: parse_assignment(t, "--param"), parse_grid):
        try:
            parse(text)
        except UsageError:
            pass


NAMEISH = st.text(st.sampled_from(list("aZ09._-/\\ \n\x00~$*?:é\udcff")), max_size=70)


@settings(max_examples=500, deadline=None)
@given(st.one_of(NAMEISH, TEXT, st.from_regex(NAME_PATTERN, fullmatch=True)))
def test_a_name_is_valid_exactly_when_it_is_one_safe_path_component(name: str) -> None:
    valid = re.fullmatch(NAME_PATTERN, name) is not None and name not in (".", "..")
    assert is_valid_name(name) == valid
    if valid:
        assert validate_name(name, "project") == name
        root = Path("/ws/projects")
        assert (root / name).parent == root and os.path.normpath(root / name) == str(root / name)
    else:
        with pytest.raises(InvalidNameError) as info:
            validate_name(name, "project")
        assert info.value.exit_code == 2 and len(str(info.value)) < 300


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(NAMEISH)
def test_project_create_never_writes_for_an_invalid_name(
    workspace: Path, cli: Cli, name: str
) -> None:
    assume(not is_valid_name(name))
    before = records_snapshot(workspace)
    res = cli("project", "create", name)
    check_refusal(res.exit_code, res.stderr)
    assert records_snapshot(workspace) == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(TEXT)
def test_run_dry_run_with_any_param_value_is_ok_or_refused(
    bad_ws: tuple[Path, dict[str, str]], cli: Cli, text: str
) -> None:
    workspace, _ = bad_ws
    before = records_snapshot(workspace)
    res = cli("run", "P/E", "--dry-run", "--param", f"lr={text}")
    if res.exit_code != 0:
        check_refusal(res.exit_code, res.stderr)
    assert records_snapshot(workspace) == before
