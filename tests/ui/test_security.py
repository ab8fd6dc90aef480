"""The web view's security points (SPEC §18), as plain HTTP requests.

Host header (DNS rebinding), methods, CSRF on the two writes, files only from
inside the workspace, and user data never served as markup.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.conftest import XSS, Lab, Served, build_lab, serve

# --- Host header ---------------------------------------------------------------------


@pytest.mark.parametrize("host", [
    "evil.example:{port}", "evil.example", "127.0.0.1.evil.example:{port}",
    "localhost.evil.example", "[::2]:{port}", "0.0.0.0:{port}",
])  # fmt: skip
def test_a_foreign_host_header_is_refused(served: Served, host: str) -> None:
    for path in ("/", "/api/workspace", "/static/app.js", "/files/projects/lab/project.yaml"):
        status, _, body = served.request("GET", path, host=host.format(port=served.port))
        assert status == 403, (path, host)
        assert b"not an address of this server" in body
        assert b"lab" not in body.split(b"(")[0]  # nothing of the workspace


def test_no_host_header_is_refused(served: Served) -> None:
    status, _, _ = served.request("GET", "/api/workspace", host="")
    assert status == 403


@pytest.mark.parametrize("host", [
    "127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "localhost.:{port}",
    "[::1]:{port}", "127.0.0.1", "localhost:9000",  # an SSH tunnel may change the port
])  # fmt: skip
def test_the_served_names_are_answered(served: Served, host: str) -> None:
    status, _, body = served.request("GET", "/api/workspace", host=host.format(port=served.port))
    assert status == 200
    assert json.loads(body)["name"] == "lab"


def test_allowed_names_follow_the_bound_address() -> None:
    from molexp.ui.server import host_names

    assert host_names("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert "node17.cluster" in host_names("127.0.0.1", ("Node17.Cluster",))
    wildcard = host_names("0.0.0.0")
    assert socket.gethostname().lower() in wildcard and "evil.example" not in wildcard


# --- methods -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO"])
def test_other_methods_are_refused(served: Served, method: str) -> None:
    for path in ("/", "/api/tag", "/files/projects/lab/project.yaml"):
        status, headers, _ = served.request(method, path)
        assert status == 405, (method, path)
        assert headers["allow"] == "GET, HEAD, POST"


@pytest.mark.parametrize("path", ["/", "/api/runs", "/api/workspace", "/files/projects/lab/project.yaml",
                                  "/static/app.js", "/api/tags"])  # fmt: skip
def test_post_is_refused_outside_the_two_write_endpoints(served: Served, path: str) -> None:
    status, headers, _ = served.request(
        "POST", path, headers={"Content-Type": "application/json", "X-Molexp-Request": "1"},
        body=b"{}",
    )  # fmt: skip
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_head_answers_like_get_without_a_body(served: Served) -> None:
    for path in ("/", "/api/workspace", "/static/app.js", "/files/projects/lab/project.yaml"):
        get_status, get_headers, get_body = served.request("GET", path)
        status, headers, body = served.request("HEAD", path)
        assert (status, body) == (get_status, b"")
        assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))


# --- CSRF: what a write needs --------------------------------------------------------


def _run_ref(served: Served) -> str:
    return str(served.lab.records("lab/sweep")[0]["id"])


def test_a_write_needs_the_custom_header_json_and_a_same_origin(served: Served) -> None:
    body = json.dumps({"ref": _run_ref(served), "ops": ["+x"]}).encode()
    before = served.lab.records("lab/sweep")
    cases = [
        ({"Content-Type": "application/json"}, 403),  # no X-Molexp-Request: a plain form or fetch
        ({"Content-Type": "text/plain", "X-Molexp-Request": "1"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded", "X-Molexp-Request": "1"}, 415),
        ({"Content-Type": "application/json", "X-Molexp-Request": "1",
          "Origin": "http://evil.example"}, 403),
        ({"Content-Type": "application/json", "X-Molexp-Request": "1",
          "Origin": f"http://127.0.0.1.evil.example:{served.port}"}, 403),
        ({"Content-Type": "application/json", "X-Molexp-Request": "1",
          "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "application/json", "X-Molexp-Request": "1",
          "Sec-Fetch-Site": "same-site"}, 403),
    ]  # fmt: skip
    for headers, expected in cases:
        for path in ("/api/tag", "/api/note"):
            status, _, answer = served.request("POST", path, headers=headers, body=body)
            assert status == expected, (headers, path, answer)
    assert served.lab.records("lab/sweep") == before  # nothing was written


def test_a_refused_post_does_not_poison_the_connection(served: Served) -> None:
    """The body of a refused POST is never read as a next request."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    smuggled = b"GET /api/workspace HTTP/1.1\r\nHost: evil.example\r\n\r\n"
    conn.request("POST", "/api/runs", body=smuggled, headers={"Host": f"127.0.0.1:{served.port}"})
    res = conn.getresponse()
    assert res.status == 405
    res.read()
    assert res.getheader("Connection") == "close"
    conn.close()


# --- files only from inside the workspace --------------------------------------------


@pytest.fixture(scope="module")
def files_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A run whose artifacts hold links out of the workspace and into its internals."""
    base = tmp_path_factory.mktemp("files-lab")
    lab = build_lab(base / "ws", base)
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    art = lab.run_dir(ref) / "artifacts"
    secret = lab.root.parent / "secret.txt"
    secret.write_text("outside the workspace\n")
    (art / "out-link").symlink_to(secret)
    (art / "dir-link").symlink_to(lab.root.parent, target_is_directory=True)
    (art / "internal-link").symlink_to(lab.root / ".molexp")
    (art / "abs-link").symlink_to("/etc/hostname")
    (art / ".hidden").write_text("hidden\n")
    (art / "inside-link").symlink_to(art / "out.txt")  # stays inside: served
    (lab.root / ".molexp" / "probe.txt").parent.mkdir(exist_ok=True)
    (lab.root / ".molexp" / "probe.txt").write_text("internal\n")
    yield from serve(lab)


def _art(served: Served) -> str:
    ref = served.lab.records("lab/sweep")[0]["id"]
    return f"/files/projects/lab/experiments/sweep/runs/{ref}/artifacts"


def test_a_file_of_a_run_is_served(files_lab: Served) -> None:
    status, headers, body = files_lab.request("GET", f"{_art(files_lab)}/out.txt")
    assert status == 200 and body.startswith(b"artifact of x=")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-security-policy"].startswith("sandbox")
    status, headers, body = files_lab.request("GET", f"{_art(files_lab)}/out.txt?download=1")
    assert status == 200 and headers["content-disposition"] == 'attachment; filename="out.txt"'
    status, _, body = files_lab.request("GET", f"{_art(files_lab)}/inside-link")
    assert status == 200 and body.startswith(b"artifact of x=")


@pytest.mark.parametrize("tail", [
    "out-link", "dir-link/secret.txt", "internal-link/probe.txt", "abs-link", ".hidden",
    "../../../../../../../workspace.yaml", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/workspace.yaml",
    "..%2f..%2f..%2f..%2f..%2f..%2f..%2fworkspace.yaml", "./out.txt", "x/../out.txt", "out.txt%00.png",
    "..\\..\\out.txt", "/out.txt",
])  # fmt: skip
def test_files_outside_or_internal_or_not_normalised_are_refused(
    files_lab: Served, tail: str
) -> None:
    status, _, body = files_lab.request("GET", f"{_art(files_lab)}/{tail}")
    assert status == 403, (tail, body)
    assert b"outside the workspace\n" != body and b"internal\n" != body


@pytest.mark.parametrize("path", [
    "/files/.molexp/probe.txt", "/files/.molexp/index/lab/sweep.idx", "/files/workspace.yaml",
    "/files/sim.py", "/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files//etc/passwd",
    "/files/projects/../workspace.yaml", "/files/", "/files",
])  # fmt: skip
def test_only_the_record_folders_are_served(files_lab: Served, path: str) -> None:
    status, _, body = files_lab.request("GET", path)
    assert status in (403, 404), path
    assert body not in (b"internal\n", b"outside the workspace\n")
    assert b"kind: molexp.workspace" not in body


def test_missing_files_and_folders_are_404(files_lab: Served) -> None:
    assert files_lab.request("GET", f"{_art(files_lab)}/nope.txt")[0] == 404
    assert files_lab.request("GET", f"{_art(files_lab)}")[0] == 404  # a folder: not listed


def test_static_files_come_only_from_the_package(served: Served) -> None:
    assert served.request("GET", "/static/app.js")[0] == 200
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/index.html",
                 "/static/../../../../etc/passwd", "/nowhere", "/api/nothing"):  # fmt: skip
        assert served.request("GET", path)[0] == 404, path


# --- user data is data ----------------------------------------------------------------


def test_pages_forbid_foreign_and_inline_scripts(served: Served) -> None:
    for path in ("/", "/e/lab/sweep", "/r/whatever"):
        status, headers, body = served.request("GET", path)
        assert status == 200
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert b"lab" not in body  # the shell holds no data: the script renders JSON as text
    status, headers, _ = served.request("GET", "/api/workspace")
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["x-content-type-options"] == "nosniff"


def test_an_injected_param_is_served_as_json_text(served: Served) -> None:
    rows = served.get_json("/api/runs?ref=lab/xss")["rows"]
    assert rows[0]["values"]["params.name"] == XSS
    status, headers, body = served.request("GET", "/api/runs?ref=lab/xss")
    assert headers["content-type"].startswith("application/json")


def test_an_html_artifact_is_shown_as_text_in_a_sandbox(own_served: Served) -> None:
    lab = own_served.lab
    run = lab.records("lab/xss")[0]["id"]
    art = lab.run_dir(f"lab/xss/{run}") / "artifacts"
    (art / "page.html").write_text(f"<html>{XSS}</html>")
    (art / "pic.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg">{XSS}</svg>')
    base = f"/files/projects/lab/experiments/xss/runs/{run}/artifacts"
    _, headers, _ = own_served.request("GET", f"{base}/page.html")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    _, headers, _ = own_served.request("GET", f"{base}/pic.svg")
    assert headers["content-type"] == "image/svg+xml"
    assert headers["content-security-policy"].startswith("sandbox;")


# --- the command ------------------------------------------------------------------------


def _start(lab: Lab, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "molexp", "-w", str(lab.root), "ui", *args],
        env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    return proc, url


def test_ui_binds_the_loopback_address_by_default_and_stops_on_ctrl_c(lab: Lab) -> None:
    proc, url = _start(lab, "--port", "0")
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        import urllib.request

        with urllib.request.urlopen(url + "api/workspace", timeout=30) as res:
            assert json.loads(res.read())["name"] == "lab"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"serving {lab.root} at {url}" in err and "stopped" in err
    assert "warning" not in err and "Traceback" not in err


def test_ui_warns_when_it_listens_beyond_the_loopback_address(lab: Lab) -> None:
    proc, url = _start(lab, "--host", "0.0.0.0", "--port", "0")
    try:
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "warning: listening on 0.0.0.0" in err and "SSH tunnel" in err


def test_ui_on_a_port_in_use_says_so_in_one_line(lab: Lab) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = lab.molexp("ui", "--port", str(port), check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == f"error: 127.0.0.1:{port} is in use"
    assert "--port" in proc.stderr and "Traceback" not in proc.stderr


def test_ui_outside_a_workspace_exits_3(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLEXP_")}
    proc = subprocess.run([sys.executable, "-m", "molexp", "ui", "--port", "0"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 3 and "workspace" in proc.stderr
