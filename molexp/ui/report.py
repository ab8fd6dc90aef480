"""`molexp report REF -o FILE.html`: the experiment page as one self-contained file.

The file holds the page's script, the vendored uPlot, the style sheets and the
data (the same JSON the served page reads) inline, and a Content-Security-Policy
that forbids loading anything: it opens from disk, from a CI artifact or an
e-mail, with no server and no network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, NamedTuple

from molexp.core.records.workspace import Workspace
from molexp.ui import views

STATIC = Path(__file__).resolve().parent / "static"
REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
)
SCRIPTS = ("vendor/uPlot.iife.min.js", "app.js")
STYLES = ("vendor/uPlot.min.css", "style.css")


class Report(NamedTuple):
    html: str
    ref: str
    runs: int
    problems: list[str]


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment."""
    text = json.dumps(
        data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=repr
    )
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text


def _inline(name: str, closing: str) -> str:
    text = (STATIC / name).read_text(encoding="utf-8")
    if closing in text.lower():
        raise AssertionError(f"static/{name} holds {closing!r}: it cannot be inlined")
    return text


def build(ws: Workspace, ref: str) -> Report:
    """The report of the experiment ``ref``."""
    from molexp._version import __version__
    from molexp.core.store.files import now_iso

    experiment = views.experiment_view(ws, {"ref": [ref]})
    runs = views.runs_view(ws, {"ref": [experiment["ref"]], "limit": [str(views.MAX_PAGE)]})
    data = {
        "kind": "molexp.report",
        "version": __version__,
        "generated_at": now_iso(),
        "workspace": ws.name,
        "experiment": experiment,
        "runs": runs,
    }
    styles = "\n".join(_inline(n, "</style") for n in STYLES)
    scripts = "\n".join(f"<script>\n{_inline(n, '</script')}\n</script>" for n in SCRIPTS)
    title = html.escape(f"{experiment['ref']} · molexp report", quote=True)
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="molexp {html.escape(__version__)}">
<title>{title}</title>
<style>
{styles}
</style>
</head>
<body class="report">
<header class="top"><span class="brand">molexp report</span><nav id="crumbs"></nav><span id="live" class="live"></span></header>
<main id="main"><p class="muted">This report needs JavaScript to draw its table and plot.</p></main>
<script type="application/json" id="molexp-data">{_json_for_script(data)}</script>
{scripts}
</body>
</html>
"""
    problems = list(dict.fromkeys([*experiment["problems"], *runs["problems"]]))
    return Report(page, experiment["ref"], runs["total"], problems)


def write(ws: Workspace, ref: str, path: Path) -> Report:
    """Build the report of ``ref`` and write it to ``path`` (atomically)."""
    from molexp.core.store.files import atomic_write_bytes

    report = build(ws, ref)
    # Where the user asks (not the workspace's record): the file's own folder is its root.
    atomic_write_bytes(path, report.html.encode("utf-8"), durable=False, root=path.parent)
    return report
