"""The JSON the pages read: the same answers as the commands' own JSON."""

from __future__ import annotations

import json
import statistics
from typing import Any
from urllib.parse import quote

from tests.ui.conftest import XSS, Lab, Served


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


def test_workspace_lists_projects_experiments_and_counts(served: Served) -> None:
    ws = served.get_json("/api/workspace")
    assert ws["name"] == "lab" and ws["runs"] == 7 and ws["by_status"] == {"succeeded": 7}
    (project,) = ws["projects"]
    assert project["name"] == "lab" and project["description"] == "tests of the web view"
    experiments = {e["name"]: e for e in project["experiments"]}
    assert experiments["sweep"]["runs"] == 6 and experiments["sweep"]["by_status"] == {
        "succeeded": 6
    }
    assert experiments["xss"]["params"] == {"name": XSS}
    assert ws["problems"] == []
    assert served.get_json("/api/workspace?project=lab")["projects"][0]["name"] == "lab"


def test_runs_are_the_runs_ls_lists(served: Served) -> None:
    records = served.lab.records("lab/sweep")
    table = served.get_json("/api/runs?ref=lab/sweep")
    assert table["total"] == 6 and table["counts"] == {"succeeded": 6}
    assert [r["id"] for r in table["rows"]] == _ids(records)  # ls order: oldest first
    by_id = {r["id"]: r for r in records}
    for row in table["rows"]:
        record = by_id[row["id"]]
        assert row["ref"] == f"lab/sweep/{row['id']}"
        assert row["values"]["results.y"] == record["results"]["y"]
        assert row["values"]["params.x"] == record["params"]["x"]
        assert row["status"] == record["status"] and row["replica"] == record["replica"]
        assert row["duration"] == record["attempts"][-1]["duration"]
        assert row["host"] == record["attempts"][-1]["host"]
        assert row["attempts"] == len(record["attempts"])
    assert table["columns"][:1] == ["params.x"] and "results.y" in table["columns"]
    assert table["constant"] == {}
    everything = served.get_json("/api/runs")
    assert everything["total"] == 7 and everything["ref"] == "."
    assert "params.name" in everything["columns"]


def test_runs_filter_with_the_query_grammar_and_sort(served: Served) -> None:
    lab = served.lab
    for where in ("x>=2", "results.y<5", "x!=2", "params.x=3"):
        expected = _ids(json.loads(lab.molexp("ls", "lab/sweep", "--where", where,
                                              "--format", "json").stdout))  # fmt: skip
        got = served.get_json(f"/api/runs?ref=lab/sweep&where={quote(where)}")
        assert [r["id"] for r in got["rows"]] == expected, where
    two = served.get_json("/api/runs?ref=lab/sweep&where=x%3E%3D2&where=results.y%3C5")
    assert {r["values"]["params.x"] for r in two["rows"]} == {2}
    for sort in ("-results.y", "results.y", "replica", "-id"):
        expected = _ids(json.loads(lab.molexp("ls", "lab/sweep", "--sort", sort,
                                              "--format", "json").stdout))  # fmt: skip
        got = served.get_json(f"/api/runs?ref=lab/sweep&sort={quote(sort)}")
        assert [r["id"] for r in got["rows"]] == expected, sort
    durations = [
        r["duration"] for r in served.get_json("/api/runs?ref=lab/sweep&sort=-duration")["rows"]
    ]
    assert durations == sorted(durations, reverse=True)


def test_runs_page_and_status_filter(served: Served) -> None:
    all_ids = [r["id"] for r in served.get_json("/api/runs?ref=lab/sweep")["rows"]]
    first = served.get_json("/api/runs?ref=lab/sweep&limit=4")
    second = served.get_json("/api/runs?ref=lab/sweep&limit=4&offset=4")
    assert first["total"] == second["total"] == 6
    assert [r["id"] for r in first["rows"] + second["rows"]] == all_ids
    failed = served.get_json("/api/runs?ref=lab/sweep&status=failed")
    assert failed["total"] == 0 and failed["rows"] == [] and failed["counts"] == {"succeeded": 6}


def test_bad_queries_are_400_with_the_message_ls_gives(served: Served) -> None:
    for query, words in (
        ("where=x%3E%3E1", "unknown operator"),
        ("where=%3D1", "empty key"),
        ("status=done", "unknown status"),
        ("limit=-1", "limit"),
        ("offset=abc", "whole number"),
    ):
        status, _, body = served.request("GET", f"/api/runs?ref=lab/sweep&{query}")
        assert status == 400, query
        assert words in json.loads(body)["error"], query
    status, _, body = served.request("GET", "/api/runs?ref=lab/nope")
    assert status == 404 and "nope" in json.loads(body)["error"]
    cli = served.lab.molexp("ls", "lab/sweep", "--where", "x>>1", check=False)
    assert cli.returncode == 2
    err = json.loads(served.request("GET", "/api/runs?ref=lab/sweep&where=x%3E%3E1")[2])["error"]
    assert err.splitlines()[0] in cli.stderr


def test_tags_filter_runs(own_served: Served) -> None:
    lab = own_served.lab
    first, second = _ids(lab.records("lab/sweep"))[:2]
    lab.molexp("tag", f"lab/sweep/{first}", f"lab/sweep/{second}", "+keep")
    lab.molexp("tag", f"lab/sweep/{second}", "+best")
    table = own_served.get_json("/api/runs?ref=lab/sweep&tag=keep")
    assert [r["id"] for r in table["rows"]] == [first, second]
    assert table["tags"] == ["best", "keep"]
    assert [
        r["id"] for r in own_served.get_json("/api/runs?ref=lab/sweep&tag=keep&tag=best")["rows"]
    ] == [second]
    assert own_served.get_json("/api/runs?ref=lab/sweep&sort=tags")["total"] == 6


def test_experiment_aggregates_replicas_per_point(served: Served) -> None:
    exp = served.get_json("/api/experiment?ref=lab/sweep")
    records = served.lab.records("lab/sweep")
    assert exp["ref"] == "lab/sweep" and exp["definition"]["description"] == "y against x"
    assert exp["point_keys"] == ["params.x"]
    assert len(exp["runs"]) == 6
    points = {p["point"]["params.x"]: p for p in exp["aggregate"]["points"]}
    assert sorted(points) == [1, 2, 3]
    for x, point in points.items():
        ys = [r["results"]["y"] for r in records if r["params"]["x"] == x]
        stats = point["values"]["results.y"]
        assert point["n"] == len(ys) == 2
        assert stats["mean"] == statistics.fmean(ys) and stats["std"] == statistics.stdev(ys)
        assert (stats["min"], stats["max"]) == (min(ys), max(ys))
        assert point["values"]["results.label"] == {"value": "ok", "varies": False}
        assert {r["point_key"] for r in exp["runs"] if r["y"]["results.y"] in ys} == {point["key"]}
    assert "results.y" in exp["aggregate"]["numeric"]
    assert "results.label" in exp["aggregate"]["other"]
    status, _, body = served.request("GET", "/api/experiment?ref=lab")
    assert status == 400 and "not an experiment" in json.loads(body)["error"]


def test_run_is_its_show_record_with_its_files(served: Served) -> None:
    lab = served.lab
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    shown = json.loads(lab.molexp("show", ref, "--json").stdout)
    run = served.get_json(f"/api/run?ref={ref}")
    for key in ("id", "params", "config", "results", "attempts", "status", "replica", "seed"):
        assert run[key] == shown[key], key
    assert run["ref"] == ref
    files = run["files"]
    assert [a["name"] for a in files["artifacts"]] == ["out.txt"]
    url = files["artifacts"][0]["url"]
    status, _, body = served.request("GET", "/files/" + url)
    assert status == 200 and body.startswith(b"artifact of x=")
    first = files["attempts"]["1"]
    assert set(first) >= {"stdout.log", "stderr.log", "artifacts"}
    assert served.request("GET", "/files/" + first["stderr.log"]["url"])[2].startswith(
        b"stderr of x="
    )
    env = run["attempts"][0]["env"]
    assert env["package_count"] > 0
    status, _, packages = served.request("GET", "/files/" + first["packages"]["url"])
    assert status == 200 and first["packages"]["url"] == f"environments/{env['packages']}.txt"
    assert b"selenium" in packages.lower()  # the venv the command ran in
    by_prefix = served.get_json(f"/api/run?ref={run['id'][:8]}")  # an id prefix (a producer link)
    assert by_prefix["ref"] == ref
    status, _, _ = served.request("GET", "/api/run?ref=lab/sweep")
    assert status == 400


def test_logs_tail_and_follow_by_offset(own_served: Served) -> None:
    lab = own_served.lab
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    log = lab.run_dir(ref) / "attempts" / "1" / "stdout.log"
    start = own_served.get_json(f"/api/log?ref={ref}&stream=stdout")
    assert start["text"] == log.read_text() and start["offset"] == log.stat().st_size
    with open(log, "ab") as fh:
        fh.write("more: é".encode() + "€".encode()[:2])  # a character cut mid-write
    more = own_served.get_json(f"/api/log?ref={ref}&stream=stdout&offset={start['offset']}")
    assert more["text"] == "more: é" and more["size"] == log.stat().st_size
    with open(log, "ab") as fh:
        fh.write("€".encode()[2:] + b"\n")
    rest = own_served.get_json(f"/api/log?ref={ref}&stream=stdout&offset={more['offset']}")
    assert rest["text"] == "€\n" and rest["offset"] == log.stat().st_size
    big = "\n".join(f"line {i}" for i in range(20000)) + "\n"
    log.write_text(big)
    tail = own_served.get_json(f"/api/log?ref={ref}")
    assert 0 < tail["start"] and tail["text"].startswith("line ") and big.endswith(tail["text"])
    assert len(tail["text"]) <= 64 * 1024
    status, _, body = own_served.request("GET", f"/api/log?ref={ref}&attempt=7")
    assert status == 404 and "no attempt 7" in json.loads(body)["error"]
    assert own_served.request("GET", f"/api/log?ref={ref}&stream=env")[0] == 400


def test_etag_answers_304_until_the_record_changes(own_served: Served) -> None:
    path = "/api/runs?ref=lab/sweep"
    status, headers, _ = own_served.request("GET", path)
    etag = headers["etag"]
    assert own_served.request("GET", path, headers={"If-None-Match": etag})[0] == 304
    lab = own_served.lab
    lab.molexp("run", "lab/sweep", "--grid", "x=4")
    status, headers, body = own_served.request("GET", path, headers={"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag and json.loads(body)["total"] == 8


def test_tag_and_note_write_through_the_core(own_served: Served) -> None:
    lab = own_served.lab
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    headers = {"Content-Type": "application/json", "X-Molexp-Request": "1",
               "Origin": f"http://127.0.0.1:{own_served.port}", "Sec-Fetch-Site": "same-origin"}  # fmt: skip

    def post(path: str, data: Any) -> tuple[int, Any]:
        status, _, body = own_served.request("POST", path, headers=headers,
                                             body=json.dumps(data).encode())  # fmt: skip
        return status, json.loads(body)

    status, done = post("/api/tag", {"ref": ref, "ops": ["+keep", "+draft", "-draft"]})
    assert status == 200 and done["tags"] == ["keep"]
    status, done = post("/api/note", {"ref": ref, "text": f"looks fine {XSS}"})
    assert status == 200 and done["notes"][-1]["text"] == f"looks fine {XSS}"
    shown = json.loads(lab.molexp("show", ref, "--json").stdout)
    assert shown["tags"] == ["keep"] and shown["notes"][-1]["text"] == f"looks fine {XSS}"
    assert post("/api/tag", {"ref": ref, "ops": ["+bad tag"]})[0] == 400
    assert post("/api/tag", {"ref": ref})[0] == 400
    assert post("/api/note", {"ref": ref, "text": "  "})[0] == 400
    assert post("/api/note", {"ref": "lab/sweep/ffffffffffffffff", "text": "x"})[0] == 404
    status, _, body = own_served.request("POST", "/api/tag", headers=headers, body=b"[1, 2]")
    assert status == 400
    status, _, body = own_served.request("POST", "/api/tag", headers=headers, body=b"{nope")
    assert status == 400
    assert json.loads(lab.molexp("show", ref, "--json").stdout)["tags"] == ["keep"]


def test_asset_and_its_lineage(own_served: Served) -> None:
    lab = own_served.lab
    data = lab.root.parent / "data.csv"
    data.write_text("a,b\n1,2\n")
    lab.molexp("assets", "add", "lab", "table", str(data))
    lab.molexp("experiment", "create", "lab/reader", "--command", "molexp assets path table")
    lab.molexp("run", "lab/reader")
    (reader,) = lab.records("lab/reader")
    run = own_served.get_json(f"/api/run?ref=lab/reader/{reader['id']}")
    (used,) = run["inputs"]
    assert used["asset_ref"] == "lab:table" and used["current_hash"] == used["content_hash"]
    asset = own_served.get_json("/api/asset?ref=lab:table")
    assert asset["name"] == "table" and asset["kind"] == "file"
    assert asset["used_by"] == [f"lab/reader/{reader['id']}"]
    status, _, body = own_served.request("GET", "/files/" + asset["url"])
    assert status == 200 and body == b"a,b\n1,2\n"


def test_an_unreadable_record_is_named_and_hides_nothing(own_served: Served) -> None:
    lab: Lab = own_served.lab
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    (lab.run_dir(ref) / "run.json").write_text("{ not json")
    table = own_served.get_json("/api/runs?ref=lab/sweep")
    assert (
        table["total"] == 5 and len(table["problems"]) == 1 and "run.json" in table["problems"][0]
    )
    exp = own_served.get_json("/api/experiment?ref=lab/sweep")
    assert len(exp["runs"]) == 5 and exp["problems"]


def test_metrics_are_the_series_molexp_metrics_reads(served: Served) -> None:
    lab = served.lab
    record = lab.records("lab/sweep")[0]
    ref = f"lab/sweep/{record['id']}"
    cli = json.loads(lab.molexp("metrics", ref, "--format", "json").stdout)
    got = served.get_json(f"/api/metrics?ref={ref}")
    assert got["attempt"] == 1 and got["names"] == ["loss"]
    y = record["results"]["y"]
    assert got["series"]["loss"] == {"step": [1, 2, 3, 4, 5], "value": [y / s for s in range(1, 6)]}
    assert got["series"]["loss"]["value"] == [p["loss"] for p in cli]
    assert served.get_json(f"/api/run?ref={ref}")["metrics"] == {"loss": y / 5}
    table = served.get_json("/api/runs?ref=lab/sweep&sort=-metrics.loss")
    assert "metrics.loss" in table["columns"]
    losses = [r["values"]["metrics.loss"] for r in table["rows"]]
    assert losses == sorted(losses, reverse=True)
    status, _, body = served.request("GET", f"/api/metrics?ref={ref}&attempt=9")
    assert status == 404 and "no attempt 9" in json.loads(body)["error"]


def test_a_long_metric_series_is_thinned_for_the_chart(own_served: Served) -> None:
    lab = own_served.lab
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    path = lab.run_dir(ref) / "attempts" / "1" / "metrics.jsonl"
    path.write_text(
        "".join(json.dumps({"step": i, "loss": 1 / i}) + "\n" for i in range(1, 50_001))
    )
    got = own_served.get_json(f"/api/metrics?ref={ref}")
    steps = got["series"]["loss"]["step"]
    assert got["thinned"] == ["loss"] and 10_000 < len(steps) <= 20_001
    assert steps[0] == 1 and steps[-1] == 50_000 and steps == sorted(steps)
