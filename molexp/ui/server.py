"""`molexp ui`: a small HTTP server over the workspace (SPEC §18).

The standard library's threading HTTP server is all a single user's view over an
SSH tunnel needs (a thread per connection; no dependency to install on a login
node).  Each request is parsed here, answered by one call into
:mod:`molexp.ui.views` (or :mod:`molexp.ui.files` for a file), and rendered as
JSON or bytes.

What it refuses, before anything else:

- a ``Host`` header whose name is not one the server is reached by (DNS
  rebinding: a foreign page whose name resolves to 127.0.0.1 sends its own
  name).  The port is not compared: an SSH tunnel may map it to another one.
- any method but GET, HEAD and POST (405), and POST anywhere but the two write
  endpoints (tags and notes), which also need ``Content-Type: application/json``
  and the header ``X-Molexp-Request: 1`` (a cross-site form or ``fetch`` cannot
  send either without a CORS preflight, which this server never approves) and a
  same-origin ``Origin`` when the browser sends one (CSRF).
- files outside the workspace or inside molexp's internals (:mod:`molexp.ui.files`).

Every page is a fixed shell that loads ``/static/app.js``; the script renders the
JSON with text nodes, and a Content-Security-Policy allows scripts from this
server only.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from molexp.core.records.workspace import Workspace
from molexp.errors import MolexpError, NotFoundError, UsageError
from molexp.ui import files, run_views, views

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})
MAX_BODY = 1 << 20  # bytes of a POST body
WRITE_HEADER = "X-Molexp-Request"

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
FILE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def host_names(host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a request's ``Host`` may carry for a server bound to ``host``."""
    names = {host.lower().strip("[]"), *LOOPBACK, *(n.lower() for n in extra)}
    if host in WILDCARD:
        hostname = socket.gethostname().lower()
        names.update({hostname, hostname.split(".")[0], socket.getfqdn().lower()})
    return frozenset(n.rstrip(".") for n in names if n)


def _host_name(header: str) -> str:
    """The name part of a ``Host`` header: ``name:port``, ``[v6]:port`` or ``name``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0].rstrip(".") if ":" in header else header.rstrip(".")


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every file of ``static/`` by its URL path below ``/static/`` (read once)."""
    out = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            rel = path.relative_to(STATIC).as_posix()
            out[rel] = (path.read_bytes(), _TYPES.get(path.suffix, "application/octet-stream"))
    return out


class Server(ThreadingHTTPServer):
    """One workspace served at one address; see the module docstring."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, ws: Workspace, host: str, port: int, allowed: frozenset[str]) -> None:
        self.ws = ws
        self.allowed = allowed
        self.static = _load_static()
        self.shell = self.static["index.html"][0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the fully qualified name (slow, and
        # useless here); bind only.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        shown = "127.0.0.1" if host in WILDCARD else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.server_port}/"


Route = Callable[["Handler", dict[str, list[str]]], Any]


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "molexp-ui"
    sys_version = ""
    timeout = 120  # seconds an idle keep-alive connection is kept
    _closing = False

    # -- refusals before any route -----------------------------------------------

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        host = self.headers.get("Host")
        if (
            host is None
            or _host_name(host) not in self.server.allowed
            or self.command not in ("GET", "HEAD", "POST")
        ):
            self.close_connection = True  # a body, if any, is left unread
        if host is None or _host_name(host) not in self.server.allowed:
            self._plain(
                HTTPStatus.FORBIDDEN,
                f"Host {host!r} is not an address of this server (molexp ui answers only "
                "requests for the address it serves; see --allow-host)",
            )
            return False
        if self.command not in ("GET", "HEAD", "POST"):
            self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "only GET, HEAD and POST",
                        {"Allow": "GET, HEAD, POST"})  # fmt: skip
            return False
        return True

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch(post=True)

    # -- dispatch --------------------------------------------------------------

    def _dispatch(self, post: bool = False) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            if post:
                self.rest = path[len("/api/") :] if path.startswith("/api/") else ""
                if self.rest not in WRITES:
                    self.close_connection = True  # its body is left unread
                    raise _Refusal(HTTPStatus.METHOD_NOT_ALLOWED,
                                   "only /api/tag and /api/note accept POST")  # fmt: skip
                self.write(query)
                return
            for prefix, route in GET_ROUTES.items():
                if path == prefix or (prefix.endswith("/") and len(prefix) > 1
                                      and path.startswith(prefix)):  # fmt: skip
                    self.rest = path[len(prefix) :]
                    route(self, query)
                    return
            self._plain(HTTPStatus.NOT_FOUND, "no such page")
        except _Refusal as exc:
            extra = {"Allow": "GET, HEAD"} if exc.status == HTTPStatus.METHOD_NOT_ALLOWED else None
            self._json({"error": exc.message}, exc.status, extra)
        except NotFoundError as exc:
            self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND)
        except UsageError as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except MolexpError as exc:
            self._json({"error": str(exc)}, HTTPStatus.CONFLICT)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self._json({"error": f"internal error: {type(exc).__name__}: {exc}"},
                       HTTPStatus.INTERNAL_SERVER_ERROR)  # fmt: skip

    # -- responses -------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _plain(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", headers)

    def _json(self, data: Any, status: int = HTTPStatus.OK,
              extra: dict[str, str] | None = None) -> None:  # fmt: skip
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                          default=_default).encode()  # fmt: skip
        import xxhash

        etag = f'"{xxhash.xxh3_64_hexdigest(body)}"'
        headers = {"Cache-Control": "no-store", "ETag": etag, **(extra or {})}
        if status == HTTPStatus.OK and self.headers.get("If-None-Match") == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(status, body, "application/json; charset=utf-8", headers)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if isinstance(code, HTTPStatus):
            code = code.value
        if isinstance(code, int) and code >= 400:
            self.log_message('"%s" %s', self.requestline, str(code))

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"molexp ui: {self.address_string()} {format % args}\n")

    # -- routes ----------------------------------------------------------------

    def page(self, query: dict[str, list[str]]) -> None:
        self._send(HTTPStatus.OK, self.server.shell, "text/html; charset=utf-8",
                   {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})  # fmt: skip

    def static(self, query: dict[str, list[str]]) -> None:
        found = self.server.static.get(self.rest)
        if found is None or self.rest == "index.html":
            self._plain(HTTPStatus.NOT_FOUND, "no such file")
            return
        body, kind = found
        self._send(HTTPStatus.OK, body, kind, {"Cache-Control": "no-cache"})

    def file(self, query: dict[str, list[str]]) -> None:
        try:
            served = files.resolve(self.server.ws.root, self.rest, download="download" in query)
        except files.Refused as exc:
            self._plain(exc.status, exc.reason)
            return
        headers = {"Content-Security-Policy": FILE_CSP, "Cache-Control": "no-cache"}
        if served.attachment:
            name = served.path.name.replace('"', "_")
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        try:
            fh = open(served.path, "rb")
        except OSError:
            self._plain(HTTPStatus.NOT_FOUND, "no such file")
            return
        with fh:
            import os

            size = os.fstat(fh.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            for key, value in {
                "Content-Type": served.content_type,
                "Content-Length": str(size),
                "X-Content-Type-Options": "nosniff",
                "Cross-Origin-Resource-Policy": "same-origin",
                "Referrer-Policy": "no-referrer",
                **headers,
            }.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            left = size
            while left > 0:
                chunk = fh.read(min(left, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def api(self, query: dict[str, list[str]]) -> None:
        view = API.get(self.rest)
        if view is None:
            raise _Refusal(HTTPStatus.NOT_FOUND, f"no such endpoint /api/{self.rest}")
        self._json(view(self.server.ws, query))

    def write(self, query: dict[str, list[str]]) -> None:
        self._check_write()
        self._json(WRITES[self.rest](self.server.ws, self._body()))

    def _check_write(self) -> None:
        self._closing = self.close_connection
        self.close_connection = True  # until the body is read
        if self.headers.get(WRITE_HEADER) != "1":
            raise _Refusal(HTTPStatus.FORBIDDEN, f"a write needs the header {WRITE_HEADER}: 1")
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _Refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "a write takes application/json")
        origin = self.headers.get("Origin")
        if origin is not None:
            split = urlsplit(origin)
            if split.scheme != "http" or (split.hostname or "") not in self.server.allowed:
                raise _Refusal(HTTPStatus.FORBIDDEN, f"Origin {origin!r} is not this server")
        site = self.headers.get("Sec-Fetch-Site")
        if site not in (None, "same-origin", "none"):
            raise _Refusal(HTTPStatus.FORBIDDEN, f"a {site} request cannot write")

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            raise _Refusal(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length > MAX_BODY:
            raise _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the body is too large")
        raw = self.rfile.read(length)
        self.close_connection = self._closing
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            raise _Refusal(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _Refusal(HTTPStatus.BAD_REQUEST, "the body is not a JSON object")
        return data


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _default(value: Any) -> Any:
    """JSON for what a record may hold beyond JSON (never expected; shown as text)."""
    return repr(value)


GET_ROUTES: dict[str, Route] = {
    "/": Handler.page,
    "/p/": Handler.page,
    "/e/": Handler.page,
    "/r/": Handler.page,
    "/a/": Handler.page,
    "/static/": Handler.static,
    "/files/": Handler.file,
    "/api/": Handler.api,
}

API: dict[str, Callable[[Workspace, dict[str, list[str]]], Any]] = {
    "workspace": views.workspace_view,
    "runs": views.runs_view,
    "experiment": views.experiment_view,
    "run": run_views.run_view,
    "log": run_views.log_view,
    "metrics": run_views.metrics_view,
    "asset": run_views.asset_view,
}
WRITES: dict[str, Callable[[Workspace, dict[str, Any]], Any]] = {
    "tag": views.tag_action,
    "note": views.note_action,
}


def make_server(ws: Workspace, host: str = "127.0.0.1", port: int = 8765,
                allow_hosts: tuple[str, ...] = ()) -> Server:  # fmt: skip
    """A bound (not yet serving) server; ``port`` 0 picks a free one.  An address
    that cannot be bound is a :class:`UsageError` naming it."""
    try:
        return Server(ws, host, port, host_names(host, allow_hosts))
    except socket.gaierror:
        raise UsageError(f"--host {host!r}: not an address of this machine") from None
    except OSError as exc:
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"{host}:{port} is in use", "Choose another --port (0 picks a free one)."
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run_until_stopped(server: Server) -> None:
    """Serve until SIGINT or SIGTERM, then close the socket."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()


def serve_in_thread(server: Server) -> threading.Thread:
    """Serve from a daemon thread (tests, benchmarks); ``server.shutdown()`` stops it."""
    thread = threading.Thread(target=server.serve_forever, name="molexp-ui", daemon=True)
    thread.start()
    return thread
