"""The server's own edges: errors, bodies, addresses, and which files it serves."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from molexp.core.records.workspace import Workspace
from molexp.errors import UsageError
from molexp.ui import files, server
from tests.ui.conftest import Lab, Served


def _write_headers(served: Served) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Molexp-Request": "1"}


def test_a_bug_is_a_500_and_the_server_keeps_serving(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ws: Workspace, query: dict[str, list[str]]) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(server.API, "workspace", broken)
    status, _, body = served.request("GET", "/api/workspace")
    assert status == 500 and json.loads(body)["error"] == "internal error: RuntimeError: a bug"
    monkeypatch.undo()
    assert served.request("GET", "/api/workspace")[0] == 200


def test_a_record_the_workspace_refuses_is_a_409(own_served: Served) -> None:
    lab = own_served.lab
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    (lab.run_dir(ref) / "run.json").write_text("{ broken")
    status, _, body = own_served.request("GET", f"/api/run?ref={ref}")
    assert status == 409 and "run.json" in json.loads(body)["error"]


def test_write_bodies_are_checked(served: Served) -> None:
    headers = _write_headers(served)
    # Refused on its Content-Length, before a byte of it is read (the body itself is
    # not sent: the server closes the connection, and a client still sending a
    # megabyte would meet that close instead of the answer).
    too_big = {**headers, "Content-Length": str(server.MAX_BODY + 1)}
    status, response, _ = served.request("POST", "/api/note", headers=too_big)
    assert status == 413 and response["connection"] == "close"
    status, _, _ = served.request("POST", "/api/note", headers={**headers, "Content-Length": "x"})
    assert status == 400
    status, _, body = served.request("POST", "/api/note", headers=headers, body=b'"text"')
    assert status == 400 and "JSON object" in json.loads(body)["error"]


def test_an_accepted_write_keeps_the_connection(own_served: Served) -> None:
    import http.client

    ref = "lab/sweep/" + own_served.lab.records("lab/sweep")[0]["id"]
    conn = http.client.HTTPConnection("127.0.0.1", own_served.port, timeout=30)
    try:
        body = json.dumps({"ref": ref, "ops": ["+kept"]})
        conn.request("POST", "/api/tag", body=body, headers=_write_headers(own_served))
        first = conn.getresponse()
        assert first.status == 200 and json.loads(first.read())["tags"] == ["kept"]
        conn.request("GET", "/api/workspace")  # the same connection
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_ipv6_loopback(lab: Lab) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        srv = server.make_server(Workspace(lab.root), "::1", 0)
    except UsageError as exc:
        pytest.skip(f"::1 cannot be bound here: {exc}")
    try:
        assert srv.url.startswith("http://[::1]:")
        assert "::1" in srv.allowed
    finally:
        srv.server_close()


def test_an_address_of_another_machine_cannot_be_bound(lab: Lab) -> None:
    with pytest.raises(UsageError, match=r"cannot listen on 192\.0\.2\.1:0"):
        server.make_server(Workspace(lab.root), "192.0.2.1", 0)  # TEST-NET-1


def test_a_wildcard_address_is_shown_as_loopback(lab: Lab) -> None:
    srv = server.make_server(Workspace(lab.root), "0.0.0.0", 0)
    try:
        assert srv.url == f"http://127.0.0.1:{srv.server_port}/"
    finally:
        srv.server_close()


# --- which files, shown how --------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    art = root / "projects" / "p" / "experiments" / "e" / "runs" / "r" / "artifacts"
    art.mkdir(parents=True)
    (art / "notes").write_text("plain text without a suffix\n")
    (art / "blob").write_bytes(b"\x00\x01binary")
    (art / "data.bin").write_bytes(b"\x89PNG not really")
    (art / "latin1").write_bytes("un caf\xe9 au lait".encode("latin-1"))
    (art / "cut").write_bytes(("x" * 4095 + "é").encode())  # a character cut at 4 KiB
    (art / "plot.png").write_bytes(b"\x89PNG\r\n")
    (art / "sub").mkdir()
    return root


def _rel(name: str) -> str:
    return f"projects/p/experiments/e/runs/r/artifacts/{name}"


def test_files_are_shown_or_downloaded_by_what_they_hold(tree: Path) -> None:
    assert files.resolve(tree, _rel("notes")).content_type == "text/plain; charset=utf-8"
    assert files.resolve(tree, _rel("cut")).content_type == "text/plain; charset=utf-8"
    for name in ("blob", "data.bin", "latin1"):
        found = files.resolve(tree, _rel(name))
        assert (found.content_type, found.attachment) == ("application/octet-stream", True), name
    png = files.resolve(tree, _rel("plot.png"))
    assert (png.content_type, png.attachment) == ("image/png", False)
    assert files.resolve(tree, _rel("plot.png"), download=True).attachment
    with pytest.raises(files.Refused) as refused:
        files.resolve(tree, _rel("sub"))
    assert refused.value.status == 404


def test_only_served_paths_get_a_url(tree: Path) -> None:
    assert files.workspace_path(tree, tree / _rel("notes")) == _rel("notes")
    assert files.workspace_path(tree, tree / "workspace.yaml") is None
    assert files.workspace_path(tree, tree.parent / "elsewhere") is None
    assert files.workspace_path(tree, tree / ".molexp" / "index") is None
