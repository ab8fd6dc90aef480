"""The JSON of the web view's run page and what it loads: the run, its logs, its
metric series, an asset it used.  Core calls only, as in :mod:`molexp.ui.views`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from molexp.core.records.workspace import Workspace
from molexp.errors import MolexpError, UsageError
from molexp.ui.query_string import Query, integer, need, one
from molexp.ui.views import is_number

LOG_TAIL = 64 * 1024  # bytes of a log shown at first
LOG_CHUNK = 256 * 1024  # bytes of a log sent at most per request


def _run_target(ws: Workspace, text: str) -> Any:
    from molexp.core.records.refs import resolve

    target = resolve(ws, text)
    if target.kind != "run":
        raise UsageError(f"{text!r} is a {target.kind}, not a run")
    return target


def run_view(ws: Workspace, query: Query) -> dict[str, Any]:
    """A run's record (as `show --json`) with what its page links to: the files of
    each attempt (logs, artifacts, patch), its inputs' assets and their producers."""
    from molexp.core.views.summary import run_record

    target = _run_target(ws, need(query, "ref"))
    record = run_record(target)
    run_dir = Path(record["run_dir"])
    record["ref"] = target.text
    envs = {a.get("n"): a.get("env") for a in record.get("attempts") or [] if isinstance(a, dict)}
    record["files"] = _run_files(ws.root, run_dir, envs)
    record["inputs"] = [
        _with_lineage(ws, i) for i in record.get("inputs") or [] if isinstance(i, dict)
    ]
    return record


def _run_files(root: Path, run_dir: Path, attempt_env: dict[Any, Any]) -> dict[str, Any]:
    """URL paths below ``/files/`` of the run's artifacts and of each attempt's files
    (with the package list its environment refers to)."""
    from molexp.ui.files import workspace_path

    def listing(folder: Path) -> list[dict[str, Any]]:
        out = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                url = workspace_path(root, path)
                if url is None or path.is_symlink():
                    continue
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                out.append({"name": path.relative_to(folder).as_posix(), "size": size,
                            "url": url})  # fmt: skip
                if len(out) >= 1000:
                    return out
        return out

    attempts: dict[str, Any] = {}
    attempts_dir = run_dir / "attempts"
    try:
        numbers = sorted(int(n) for n in os.listdir(attempts_dir) if n.isdigit())
    except OSError:
        numbers = []
    for n in numbers:
        folder = attempts_dir / str(n)
        entry: dict[str, Any] = {}
        for name in ("stdout.log", "stderr.log", "git.patch", "metrics.jsonl", "inputs.jsonl"):
            path = folder / name
            if path.is_file():
                entry[name] = {"url": workspace_path(root, path), "size": path.stat().st_size}
        entry["artifacts"] = listing(folder / "artifacts")
        digest = (attempt_env.get(n) or {}).get("packages")
        if isinstance(digest, str):
            from molexp.core.records.environments import env_file

            url = workspace_path(root, env_file(root, digest))
            if url is not None and (root / url).is_file():
                entry["packages"] = {"url": url}
        attempts[str(n)] = entry
    return {"artifacts": listing(run_dir / "artifacts"), "attempts": attempts}


def _with_lineage(ws: Workspace, item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    scope, name = item.get("scope"), item.get("name")
    if isinstance(scope, str) and isinstance(name, str):
        out["asset_ref"] = f"{scope}:{name}"
        try:
            from molexp.core import assets

            asset = assets.asset_by_ref(ws, out["asset_ref"])
        except MolexpError:
            out["asset_missing"] = True
        else:
            out["current_hash"] = asset.content_hash
            producer = asset.record.get("producer")
            if producer:
                out["producer"] = producer
    return out


def log_view(ws: Workspace, query: Query) -> dict[str, Any]:
    """A piece of an attempt's ``stdout``/``stderr``: from ``offset`` (bytes) to the
    end, or the last part when ``offset`` is -1; follow a running run by asking
    again from the returned ``offset``."""
    from molexp.core.views.logs import STREAMS, locate

    stream = one(query, "stream", "stdout")
    if stream not in STREAMS:
        raise UsageError(f"stream={stream!r}: use {' or '.join(STREAMS)}")
    offset = integer(query, "offset", -1, -1, 2**62)
    logs = locate(ws, need(query, "ref"), integer(query, "attempt", 0, 0, 10**9) or None)
    attempt, path = logs.attempt, logs.path(str(stream))
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            start = max(0, size - LOG_TAIL) if offset < 0 else min(offset, size)
            fh.seek(start)
            data = fh.read(min(size - start, LOG_CHUNK))
    except FileNotFoundError:
        return {"attempt": attempt, "stream": stream, "text": "", "start": 0, "offset": 0,
                "size": 0, "exists": False}  # fmt: skip
    if offset < 0 and start > 0:  # begin at a whole line
        cut = data.find(b"\n")
        if 0 <= cut < len(data) - 1:
            start += cut + 1
            data = data[cut + 1 :]
    data = data[: _whole_utf8(data)]  # a character cut at the end comes with the next piece
    end = start + len(data)
    return {"attempt": attempt, "stream": stream, "text": data.decode("utf-8", "replace"),
            "start": start, "offset": end, "size": size, "exists": True}  # fmt: skip


def _whole_utf8(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 character cut off at its end."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 != 0x80:  # not a continuation byte
            if byte >= 0xC0:  # the lead byte of a character of 2 to 4 bytes
                need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
                return n - back if back < need else n
            return n
    return n


MAX_POINTS = 20_000  # points of one metric sent to a chart (evenly thinned, the last kept)


def metrics_view(ws: Workspace, query: Query) -> dict[str, Any]:
    """An attempt's metric series (as `molexp metrics --format json`), numbers only,
    each as ``{"step": [...], "value": [...]}``."""
    from molexp.core.views.metrics import series

    found = series(ws, need(query, "ref"), integer(query, "attempt", 0, 0, 10**9) or None)
    out: dict[str, dict[str, list[Any]]] = {name: {"step": [], "value": []} for name in found.names}
    for point in found.points:
        step = point.step if is_number(point.step) else point.line
        for name, value in point.values.items():
            if is_number(value) and name in out:
                out[name]["step"].append(step)
                out[name]["value"].append(value)
    thinned = []
    for name, data in out.items():
        count = len(data["step"])
        if count > MAX_POINTS:
            stride = -(-count // MAX_POINTS)
            keep = [*range(0, count - 1, stride), count - 1]
            out[name] = {k: [v[i] for i in keep] for k, v in data.items()}
            thinned.append(name)
    return {"attempt": found.attempt, "status": found.status, "names": found.names,
            "series": {k: v for k, v in out.items() if v["step"]}, "thinned": thinned,
            "torn": found.torn, "ignored": found.ignored}  # fmt: skip


def asset_view(ws: Workspace, query: Query) -> dict[str, Any]:
    """An asset's record and the runs that used it (as `molexp assets show --json`)."""
    from molexp.core import assets
    from molexp.ui.files import workspace_path

    text = need(query, "ref")
    asset = assets.asset_by_ref(ws, text)
    record = assets.describe(asset)
    record["ref"] = text
    if asset.mode != "ref" and asset.kind == "file":
        record["url"] = workspace_path(ws.root, asset.path)
    return record
