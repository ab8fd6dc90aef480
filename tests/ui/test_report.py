"""`molexp report`: one self-contained HTML file, no reference to anything else."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from tests.ui.conftest import XSS, Lab

URL_ATTRS = {"src", "href", "action", "formaction", "srcset", "poster", "data", "background",
             "manifest", "xlink:href", "ping", "cite", "longdesc", "usemap", "codebase"}  # fmt: skip


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in = tag
        for name, value in attrs:
            if name in URL_ATTRS or (name == "content" and "url=" in (value or "").lower()):
                self.refs.append((tag, name, value or ""))
        if tag == "link":
            self.refs.append((tag, "link", str(attrs)))

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def _report(lab: Lab, ref: str, out: Path) -> str:
    proc = lab.molexp("report", ref, "-o", str(out))
    assert proc.stdout == ""
    assert f"wrote {out}: {ref}" in proc.stderr
    return out.read_text(encoding="utf-8")


def test_the_report_references_nothing_outside_itself(lab: Lab, tmp_path: Path) -> None:
    text = _report(lab, "lab/sweep", tmp_path / "sweep.html")
    parsed = _Refs()
    parsed.feed(text)
    assert parsed.refs == []  # no src=, href=, <link>: scripts, styles and data are inline
    assert {"iframe", "img", "object", "embed", "link", "base"}.isdisjoint(parsed.tags)
    # Nothing in the markup, styles or script text points elsewhere either.
    assert not re.search(
        r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:|[\w./-]+\.(js|css|png|svg)\b)""", text, re.I
    )
    assert not re.search(r"@import|url\(\s*['\"]?\s*(https?:|//|file:)", text, re.I)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert text.count("<script") == 3  # the data, uPlot, the page script


def test_the_report_holds_every_run_and_the_aggregate(lab: Lab, tmp_path: Path) -> None:
    text = _report(lab, "lab/sweep", tmp_path / "sweep.html")
    parsed = _Refs()
    parsed.feed(text)
    data = json.loads(parsed.scripts[0])
    assert data["kind"] == "molexp.report" and data["experiment"]["ref"] == "lab/sweep"
    ids = [r["id"] for r in lab.records("lab/sweep")]
    assert [r["id"] for r in data["runs"]["rows"]] == ids
    assert len(data["experiment"]["aggregate"]["points"]) == 3


def test_user_data_cannot_end_the_data_script(lab: Lab, tmp_path: Path) -> None:
    text = _report(lab, "lab/xss", tmp_path / "xss.html")
    assert "window.pwned" in text  # the param is there...
    assert XSS not in text and "<script>window" not in text and "<img" not in text  # ...as data
    assert "\\u003cscript\\u003ewindow.pwned=2\\u003c/script\\u003e" in text
    parsed = _Refs()
    parsed.feed(text)
    data = json.loads(parsed.scripts[0])
    assert data["runs"]["rows"][0]["values"]["params.name"] == XSS


def test_report_refuses_what_is_not_an_experiment(lab: Lab, tmp_path: Path) -> None:
    for ref in ("lab", "lab/nope", "."):
        proc = lab.molexp("report", ref, "-o", str(tmp_path / "x.html"), check=False)
        assert proc.returncode == 2, ref
        assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.html").exists()


def test_report_of_an_experiment_with_an_unreadable_record_names_it_and_exits_3(
    own_lab: Lab, tmp_path: Path
) -> None:
    run = own_lab.records("lab/sweep")[0]["id"]
    (own_lab.run_dir(f"lab/sweep/{run}") / "run.json").write_text("{")
    proc = own_lab.molexp("report", "lab/sweep", "-o", str(tmp_path / "r.html"), check=False)
    assert proc.returncode == 3 and "run.json" in proc.stderr
    assert "5 run(s)" in proc.stderr and (tmp_path / "r.html").exists()
