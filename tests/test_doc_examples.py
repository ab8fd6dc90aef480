"""Docs that cannot drift: every code block of README.md and docs/*.md is exercised.

The convention (also described in docs/index.md, "Writing these pages"):

- A ```` ```console ```` block is a shell session: lines starting with ``$ `` are
  commands (a line ending in ``\\`` continues on the next, as do lines starting
  with the ``> `` prompt; a heredoc runs to its delimiter), the lines after a command are its output (stdout and stderr as a
  terminal shows them). All commands of a page run in order in one ``bash``, in a
  fresh directory holding a copy of ``examples/``; it is also ``$HOME`` and prints as ``~``.
- A command must exit 0, unless it ends with a comment ``# exit N`` (then it must
  exit N) or the next command is ``echo $?`` (which shows the code).
- Output lines, when given, must match: ``...`` (or ``…``) on a line of its own
  stands for any number of lines, inside a line for any text. Timestamps, durations
  and runs of spaces (table alignment) are normalised on both sides. A command
  without output lines has its output unchecked.
- A ``python``, ``yaml``, ``sh``, ``make`` ... block whose first line is a comment
  naming a file (``# train.py``, ``# sweep.yaml — a grid``) is written to that file
  (in the session's current directory) when the session reaches it.
- Other ``python`` and ``sh``/``bash`` blocks run in the session (exit 0, output
  unchecked); ``yaml`` and ``json`` blocks must parse. Blocks without a language or
  marked ``text`` are diagrams and grammar, not code.
- ``<!-- not-tested: REASON -->`` on the line before a block skips it (a reason is
  required); ``<!-- doc-setup: COMMANDS -->`` runs COMMANDS at that point, unseen.

docs/cli.md is generated from the app and diffed by tests/test_docs.py.

``python -m tests.test_doc_examples PAGE.md`` prints the real transcript of a page
(to write or refresh its output lines).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")]
)
PAGE_TIMEOUT = 120

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^\n]*$")
_NOT_TESTED = re.compile(r"<!--\s*not-tested:\s*(.*?)\s*-->", re.S)
_SETUP = re.compile(r"^\s*<!--\s*doc-setup:\s*(.*?)\s*-->\s*$", re.S | re.M)
_FILE_COMMENT = re.compile(r"^(?:#|//)\s*([\w.-]+\.[\w]+|Makefile|makefile)(?:\s|$)")
_EXIT = re.compile(r"#\s*exit\s+(\d+)\b[^'\"]*$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]\w*)\1")
_SHELL = {"sh", "bash", "shell", "zsh"}
_PYTHON = {"python", "py", "python3"}
_PARSED = {"yaml", "yml", "json"}
_WRITABLE = _SHELL | _PYTHON | {"yaml", "yml", "json", "make", "makefile", "toml", "ini", "csv"}
_EXEMPT = {"", "text", "txt", "plain", "diff", "output"}


@dataclass
class Step:
    kind: str  # cmd | file | script | python
    line: int
    text: str
    expected: list[str] | None = None
    exit_code: int | None = 0
    name: str | None = None


@dataclass
class Page:
    path: Path
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    parsed: int = 0
    skipped: int = 0
    exempt: int = 0


def _blocks(text: str) -> list[tuple[int, str, list[str], str]]:
    """``(line of the fence, language, body lines, text before the fence)``."""
    lines = text.splitlines()
    out = []
    i = 0
    before_start = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        body = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence[0] * len(fence))
            and lines[j].strip().strip(fence[0]) == ""
        ):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        out.append((i + 1, lang, body, "\n".join(lines[before_start:i])))
        before_start = j + 1
        i = j + 1
    return out


def _console_steps(first_line: int, body: list[str]) -> tuple[list[Step], str | None]:
    steps: list[Step] = []
    i = 0
    if body and not body[0].startswith("$ "):
        return [], "a console block must start with a `$ ` command"
    while i < len(body):
        line = body[i]
        if line.startswith("$ "):
            start = i
            command = [line[2:]]
            while i + 1 < len(body) and (
                command[-1].endswith("\\") or body[i + 1].startswith("> ")
            ):
                i += 1
                command.append(body[i][2:] if body[i].startswith("> ") else body[i])
            for m in _HEREDOC.finditer(command[0]):
                delimiter = m.group(2)
                while i + 1 < len(body):
                    i += 1
                    command.append(body[i])
                    if body[i].strip() == delimiter:
                        break
            text = "\n".join(command)
            exit_match = _EXIT.search(command[-1])
            steps.append(
                Step(
                    "cmd",
                    first_line + 1 + start,
                    text,
                    [],
                    int(exit_match.group(1)) if exit_match else 0,
                )
            )
        else:
            assert steps[-1].expected is not None
            steps[-1].expected.append(line)
        i += 1
    for step, nxt in zip(steps, steps[1:]):
        if nxt.text.strip() == "echo $?":
            step.exit_code = None
    for step in steps:
        if step.expected == []:
            step.expected = None
    return steps, None


def parse_page(path: Path) -> Page:
    page = Page(path)
    for fence_line, lang, body, before in _blocks(path.read_text()):
        for setup in _SETUP.findall(before):
            page.steps.append(Step("script", fence_line, setup, None))
        where = f"{path.name}:{fence_line}"
        marker = None
        preceding = [x for x in before.splitlines() if x.strip()]
        if preceding:
            marker = _NOT_TESTED.search(preceding[-1])
        if marker is not None:
            if not marker.group(1):
                page.problems.append(f"{where}: `not-tested` needs a reason")
            page.skipped += 1
            continue
        file_match = _FILE_COMMENT.match(body[0]) if body else None
        if lang in _WRITABLE and file_match:
            page.steps.append(
                Step("file", fence_line, "\n".join(body) + "\n", name=file_match.group(1))
            )
        elif lang == "console":
            steps, problem = _console_steps(fence_line, body)
            if problem:
                page.problems.append(f"{where}: {problem} (or mark it `<!-- not-tested: why -->`)")
            page.steps.extend(steps)
        elif lang in _SHELL:
            page.steps.append(Step("script", fence_line, "\n".join(body)))
        elif lang in _PYTHON:
            page.steps.append(Step("python", fence_line, "\n".join(body)))
        elif lang in _PARSED:
            page.parsed += 1
            problem = _parse(lang, "\n".join(body))
            if problem:
                page.problems.append(f"{where}: {lang} block does not parse: {problem}")
        elif lang in _EXEMPT:
            page.exempt += 1
        else:
            page.problems.append(
                f"{where}: a `{lang}` block is neither run nor parsed: name a file in its first "
                "line, or mark it `<!-- not-tested: why -->`"
            )
    # a doc-setup comment after the last block
    tail = path.read_text().rsplit("```", 1)[-1]
    for setup in _SETUP.findall(tail):
        page.steps.append(Step("script", 0, setup, None))
    return page


def _parse(lang: str, text: str) -> str | None:
    from molexp.core.model.yaml12 import load_yaml
    from molexp.errors import MolexpError

    try:
        if lang == "json":
            json.loads(text)
        else:
            load_yaml(text, "block")
    except (ValueError, MolexpError) as exc:
        return str(exc).splitlines()[0]
    return None


# --- running a page --------------------------------------------------------------------

_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")
_DURATION = re.compile(r"\b\d+\.\d+s\b")
_SPACES = re.compile(r"(?<=\S) {2,}")


def normalise(text: str, work: str | None = None) -> list[str]:
    if work:
        text = text.replace(work, "~")
    text = _TIME.sub("<time>", text)
    text = _DURATION.sub("<dur>", text)
    lines = [_SPACES.sub("  ", line.rstrip()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in normalise("\n".join(expected)):
        if line.strip() in ("...", "…"):
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = re.split(r"\.\.\.|…", line)
            parts.append(r"[^\n]*?".join(re.escape(p) for p in pieces) + r"\n")
    return re.compile("".join(parts))


def matches(expected: list[str], actual: list[str]) -> bool:
    return _pattern(expected).fullmatch("".join(line + "\n" for line in actual)) is not None


def _script(page: Page, tmp: Path) -> str:
    out = ["set +e +u", "__rc=0"]
    for i, step in enumerate(page.steps):
        rec = f'"{tmp}/{i}"'
        if step.kind == "file":
            data = base64.b64encode(step.text.encode()).decode()
            out.append(f"printf '%s' '{data}' | base64 -d > '{step.name}'; echo $? > {rec}.rc")
            continue
        if step.kind == "python":
            body = f"python3 - <<'__MOLEXP_DOC_PY__'\n{step.text}\n__MOLEXP_DOC_PY__"
        else:
            body = step.text
        out.append(f"( exit $__rc )\n{{ {body}\n}} > {rec}.out 2>&1 < /dev/null")
        out.append(f"__rc=$?; echo $__rc > {rec}.rc")
    return "\n".join(out) + "\n"


@dataclass
class Outcome:
    step: Step
    exit_code: int
    output: list[str]


def run_page(page: Page, work: Path, env: dict[str, str]) -> list[Outcome]:
    shutil.copytree(ROOT / "examples", work / "examples")
    with tempfile.TemporaryDirectory(prefix="molexp-doc-") as tmp:
        script = Path(tmp) / "page.sh"
        script.write_text(_script(page, Path(tmp)))
        subprocess.run(
            ["bash", str(script)],
            cwd=work,
            env=env,
            timeout=PAGE_TIMEOUT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        outcomes = []
        for i, step in enumerate(page.steps):
            rc_file, out_file = Path(tmp) / f"{i}.rc", Path(tmp) / f"{i}.out"
            rc = int(rc_file.read_text()) if rc_file.exists() else -1
            text = out_file.read_text(errors="replace") if out_file.exists() else ""
            outcomes.append(Outcome(step, rc, normalise(text, str(work))))
    return outcomes


def page_env(home: Path) -> dict[str, str]:
    # Not MOLEXP_*, and not a parent make's flags (under `make test`, a make run by a
    # page would print "Entering directory" lines a reader's shell never shows).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MOLEXP_") and k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }
    env.update(
        HOME=str(home),
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        TZ="UTC",
        LC_ALL="C.UTF-8",
        COLUMNS="100",
        GIT_CONFIG_NOSYSTEM="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
    )
    return env


def describe(outcome: Outcome, page: Path) -> str:
    step = outcome.step
    shown = step.text if step.kind == "cmd" else f"({step.kind} block)\n{step.text}"
    expected = "\n".join(normalise("\n".join(step.expected or []))) or "(unchecked)"
    return (
        f"{page.name}:{step.line}: $ {shown}\n--- exit {outcome.exit_code} "
        f"(expected {step.exit_code}); output:\n"
        + "\n".join(outcome.output)
        + f"\n--- expected output:\n{expected}"
    )


@pytest.fixture(scope="module")
def page_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Path, Future[tuple[Page, list[Outcome]]]]]:
    """The selected pages, run side by side (independent; most time is waiting)."""
    selected = {
        item.callspec.params["page"]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_code_blocks_run"
    }

    def run(page: Path, work: Path) -> tuple[Page, list[Outcome]]:
        parsed = parse_page(page)
        if parsed.problems or not parsed.steps:
            return parsed, []
        work.mkdir()
        return parsed, run_page(parsed, work, page_env(work))

    # tmp_path_factory is not thread-safe: every directory is made here, before the
    # workers start, never while other tests set up their own.
    chosen = [page for page in PAGES if page in selected]
    works = {page: tmp_path_factory.mktemp(page.stem) / "work" for page in chosen}
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {page: pool.submit(run, page, works[page]) for page in chosen}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_code_blocks_run(
    page: Path, page_runs: dict[Path, Future[tuple[Page, list[Outcome]]]]
) -> None:
    parsed, outcomes = page_runs[page].result(timeout=PAGE_TIMEOUT + 60)
    assert not parsed.problems, "\n".join(parsed.problems)
    for outcome in outcomes:
        step = outcome.step
        ok = step.exit_code is None or outcome.exit_code == step.exit_code
        if ok and step.expected is not None:
            ok = matches(step.expected, outcome.output)
        assert ok, describe(outcome, page)


def test_the_matcher() -> None:
    assert matches(["a ... c", "...", "z"], ["a b c", "x", "y", "z"])
    assert matches(["run  status", "x  ok"], normalise("run     status\nx       ok"))
    assert not matches(["a", "b"], ["a", "b", "c"])
    assert matches(
        ["took 0.27s at 2026-11-25 16:50:36"], normalise("took 1.5s at 2030-01-01 00:00:00")
    )
    steps, problem = _console_steps(
        1,
        ["$ false  # exit 1", "$ echo a \\", "  b", "a b", "$ if true; then", "> echo c; fi", "c"],
    )
    assert problem is None
    assert [(s.text, s.exit_code, s.expected) for s in steps] == [
        ("false  # exit 1", 1, None),
        ("echo a \\\n  b", 0, ["a b"]),
        ("if true; then\necho c; fi", 0, ["c"]),
    ]


def main(argv: list[str]) -> int:
    """Print the real transcript of a page's console blocks."""
    for name in argv:
        page = parse_page(Path(name).resolve())
        for problem in page.problems:
            print(f"problem: {problem}", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "work"
            work.mkdir()
            for outcome in run_page(page, work, page_env(work)):
                step = outcome.step
                if step.kind != "cmd":
                    if outcome.exit_code:
                        print(f"# {step.kind} block at line {step.line} exited {outcome.exit_code}")
                        print("\n".join(outcome.output))
                    continue
                flag = (
                    ""
                    if outcome.exit_code == 0 or _EXIT.search(step.text)
                    else (f"   # exit {outcome.exit_code}")
                )
                print(f"$ {step.text}{flag}")
                print("\n".join(outcome.output)) if outcome.output else None
                if step.expected is not None and not matches(step.expected, outcome.output):
                    print("^^^ differs from the page", file=sys.stderr)
    return 0


def test_the_index_links_every_page() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]*)?\)", index))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"
    for name in linked:
        assert (ROOT / "docs" / name).exists() or name == "cli.md", f"index links missing {name}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
