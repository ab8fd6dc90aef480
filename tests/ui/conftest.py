"""Fixtures of the web view's tests: a real workspace made by the real CLI, the
server on a free port, raw HTTP requests, and headless Chromium driven by Selenium.

Browser tests skip when Debian's ``chromium``/``chromium-driver`` or Selenium are
missing, except under ``MOLEXP_REQUIRE_BROWSER=1`` (CI, ``.ci/run``), where they
fail: CI must never pass by skipping.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Read at import: the autouse hermetic fixture clears MOLEXP_* for each test.
REQUIRE_BROWSER = os.environ.get("MOLEXP_REQUIRE_BROWSER") == "1"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'

SIM = r"""
import json, os, sys
params = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
seed = int(os.environ["MOLEXP_SEED"])
x = params.get("x", 1)
y = x * x + 0.25 * seed
print(f"stdout of x={x} seed={seed}")
print(f"stderr of x={x}", file=sys.stderr)
metrics = os.environ.get("MOLEXP_METRICS_FILE")
if metrics:
    with open(metrics, "a") as fh:
        for step in range(1, 6):
            fh.write(json.dumps({"step": step, "loss": y / step}) + "\n")
art = os.path.join(os.environ["MOLEXP_RUN_DIR"], "artifacts")
os.makedirs(art, exist_ok=True)
with open(os.path.join(art, "out.txt"), "w") as fh:
    fh.write(f"artifact of x={x}\n")
with open(os.environ["MOLEXP_RESULTS_FILE"], "w") as fh:
    json.dump({"y": y, "label": "ok"}, fh)
"""


def molexp_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLEXP_")}
    env.update({"HOME": str(home), "NO_COLOR": "1", "GIT_CONFIG_NOSYSTEM": "1"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `molexp`
    return env


@dataclass
class Lab:
    """A workspace built with the real CLI: ``lab/sweep`` (x = 1, 2, 3; 2 replicas
    each) and ``lab/xss`` (one run whose param is an HTML injection attempt)."""

    root: Path
    env: dict[str, str]

    def molexp(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "molexp", "-w", str(self.root), *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"molexp {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
        return proc

    def records(self, ref: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(self.molexp("ls", ref, "--format", "json").stdout)
        return out

    def run_dir(self, ref: str) -> Path:
        project, experiment, run_id = ref.split("/")
        return self.root / "projects" / project / "experiments" / experiment / "runs" / run_id


def build_lab(root: Path, home: Path) -> Lab:
    root.mkdir(parents=True)
    lab = Lab(root, molexp_env(home))
    (root / "sim.py").write_text(SIM)
    command = f"{sys.executable} sim.py"
    lab.molexp("init", str(root), "--name", "lab")
    lab.molexp("project", "create", "lab", "--description", "tests of the web view")
    lab.molexp("experiment", "create", "lab/sweep", "--param", "x=1", "--replicas", "2",
               "--command", command, "--description", "y against x")  # fmt: skip
    lab.molexp("run", "lab/sweep", "--grid", "x=1,2,3")
    lab.molexp("experiment", "create", "lab/xss", "--param", f"name={XSS}", "--command", command)
    lab.molexp("run", "lab/xss")
    return lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """The shared, read-only workspace (tests that write make their own)."""
    base = tmp_path_factory.mktemp("ui-lab")
    return build_lab(base / "ws", base)


@pytest.fixture
def own_lab(tmp_path: Path) -> Lab:
    """A workspace of this test's own (to write in)."""
    return build_lab(tmp_path / "ws", tmp_path)


# --- the server --------------------------------------------------------------------


@dataclass
class Served:
    url: str
    port: int
    lab: Lab

    def request(self, method: str, path: str, host: str | None = None,
                headers: dict[str, str] | None = None, body: bytes | None = None,
                ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        """One raw request (the path sent exactly as given; ``host`` None: the
        served address; "" : no Host header at all)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            if host is None:
                host = f"127.0.0.1:{self.port}"
            if host:
                conn.putheader("Host", host)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            res = conn.getresponse()
            data = res.read()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, data
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, body
        return json.loads(body)


def serve(lab: Lab) -> Iterator[Served]:
    from molexp.core.records.workspace import Workspace
    from molexp.ui.server import make_server, serve_in_thread

    server = make_server(Workspace(lab.root), "127.0.0.1", 0)
    thread = serve_in_thread(server)
    try:
        yield Served(server.url, server.server_port, lab)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="session")
def served(lab: Lab) -> Iterator[Served]:
    yield from serve(lab)


@pytest.fixture
def own_served(own_lab: Lab) -> Iterator[Served]:
    yield from serve(own_lab)


# --- the browser ----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def browser_problem() -> str | None:
    """Why headless Chromium cannot be driven here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(os.access(p, os.X_OK) for p in CHROMIUM):
        return "Debian's chromium is not installed (apt-get install chromium)"
    if not any(os.access(p, os.X_OK) for p in CHROMEDRIVER):
        return "chromium-driver is not installed (apt-get install chromium-driver)"
    return None


def need_browser() -> None:
    problem = browser_problem()
    if problem is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"MOLEXP_REQUIRE_BROWSER=1 but {problem}", pytrace=False)
        pytest.skip(f"no browser here: {problem}")


def chromium(user_data: Path, width: int = 1400, height: int = 1000) -> Any:
    """Headless Debian Chromium under Selenium, nothing fetched from the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(p for p in CHROMIUM if os.access(p, os.X_OK))
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={user_data}",
        f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = next(p for p in CHROMEDRIVER if os.access(p, os.X_OK))
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="session")
def _browser_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if browser_problem() is not None:
        yield None
        return
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(_browser_session: Any) -> Any:
    need_browser()
    _browser_session.get("about:blank")
    _browser_session.get_log("browser")  # what earlier tests left
    return _browser_session


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something true (returned)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the page is still being drawn
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {last!r}")


def free_browser_logs(driver: Any) -> list[dict[str, Any]]:
    """Console messages of level SEVERE (errors), except a missing favicon."""
    return [e for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")]  # fmt: skip
