"""The web view's performance goals (issue #15), side by side with their baselines.

    python benchmarks/bench_ui.py             # 10,000-run experiment, 100,000-run workspace
    python benchmarks/bench_ui.py --quick     # 2,000 runs; no 100,000-run memory figure

Measured, each the median of ``--reps`` rounds after a warm-up:

- the server's JSON for every run of a 10,000-run experiment
  (``/api/runs?ref=bench/e000&limit=100000``, over a kept-alive connection, as a
  browser asks) against ``molexp ls bench/e000 --format json`` for the same runs,
  interleaved round by round (goal: within 1.5x); plus the first page (100 rows)
  and the experiment page's JSON (``/api/experiment``: aggregate and plot data);
- the time headless Chromium takes to draw the runs table of that experiment's
  page, from navigation start to 100 rows in the table (goal: < 1 s), and of the
  workspace page;
- the server's memory with the 100,000-run workspace open: resident and peak
  (``VmRSS``, ``VmHWM``) after the workspace page, the runs table of the whole
  workspace, a sorted experiment table, an experiment page and a run page were
  served (goal: < 300 MiB).

The workspaces are built once with ``_bench_util.build_workspace`` under ``--dir``
(default /tmp/molexp-bench, shared with benchmarks/run.py) and reused.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_util as bu  # noqa: E402

MS = 1000.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Server:
    """``molexp ui`` as a real process, and one kept-alive connection to it."""

    def __init__(self, ws: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "molexp", "-w", str(ws), "ui", "--port", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise RuntimeError(
                f"molexp ui did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path)
        res = self.conn.getresponse()
        body = res.read()
        if res.status != 200:
            raise RuntimeError(f"GET {path}: {res.status} {body[:300]!r}")
        return body

    def timed(self, path: str) -> float:
        start = time.perf_counter()
        self.get(path)
        return time.perf_counter() - start

    def memory(self) -> dict[str, float]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
        return out

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='molexp-bench-chromium-')}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


DRAWN = """
const want = arguments[0], done = arguments[arguments.length - 1];
function check() {
  const rows = document.querySelectorAll("table.grid tbody tr[data-status]").length;
  if (rows >= want) done(performance.now()); else requestAnimationFrame(check);
}
check();
"""


def render_ms(driver: Any, url: str, rows: int) -> float:
    driver.get(url)
    driver.set_script_timeout(60)
    return float(driver.execute_async_script(DRAWN, rows))


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get("MOLEXP_BENCH_DIR", "/tmp/molexp-bench"))
    parser.add_argument("--reps", type=int, default=7, help="rounds per figure (default 7)")
    parser.add_argument("--quick", action="store_true", help="2,000 runs, no 100,000-run figure")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium figures")
    parser.add_argument("--no-memory", action="store_true", help="skip the 100,000-run figure")
    args = parser.parse_args()
    base = Path(args.dir).absolute()
    base.mkdir(parents=True, exist_ok=True)
    env = bu.child_env(base / "pycache")
    runs = 2000 if args.quick else 10_000
    table_ws = base / f"ui-{runs}"
    bu.build_workspace(table_ws, 1, runs, say)
    ref = f"{bu.PROJECT}/e000"
    rows: list[tuple[str, str, str, str, str]] = []  # figure, value, baseline, ratio, goal

    say(f"server JSON against `molexp ls --format json` ({runs} runs, {args.reps} rounds)")
    server = Server(table_ws, env)
    try:
        all_rows = f"/api/runs?ref={ref}&limit=100000"
        body = json.loads(server.get(all_rows))  # warm: builds or refreshes the index
        assert body["total"] == runs, body["total"]
        ls_argv = [
            sys.executable,
            "-m",
            "molexp",
            "-w",
            str(table_ws),
            "ls",
            ref,
            "--format",
            "json",
        ]
        subprocess.run(ls_argv, env=env, stdout=subprocess.DEVNULL, check=True)
        api, ls, page, exp = [], [], [], []
        for _ in range(args.reps):
            start = time.perf_counter()
            subprocess.run(ls_argv, env=env, stdout=subprocess.DEVNULL, check=True)
            ls.append(time.perf_counter() - start)
            api.append(server.timed(all_rows))
            page.append(server.timed(f"/api/runs?ref={ref}"))
            exp.append(server.timed(f"/api/experiment?ref={ref}"))
        ratio = median(api) / median(ls)
        rows.append((f"GET /api/runs, all {runs} rows", f"{median(api) * MS:.0f} ms",
                     f"{median(ls) * MS:.0f} ms (ls --format json)", f"{ratio:.2f}x",
                     "<= 1.5x: " + ("yes" if ratio <= 1.5 else "NO")))  # fmt: skip
        rows.append((f"GET /api/runs, first page of 100 (of {runs})", f"{median(page) * MS:.0f} ms",
                     "-", "-", ""))  # fmt: skip
        rows.append((f"GET /api/experiment ({runs} runs aggregated)", f"{median(exp) * MS:.0f} ms",
                     "-", "-", ""))  # fmt: skip

        if not args.no_browser:
            say(f"headless Chromium: time to draw the runs table ({args.reps} rounds)")
            driver = chromium()
            try:
                pages = {"experiment page": f"{server.url}e/{ref}", "workspace page": server.url,
                         "experiment page sorted by -results.final_loss":
                         f"{server.url}e/{ref}?sort=-results.final_loss"}  # fmt: skip
                for url in pages.values():
                    render_ms(driver, url, 100)  # warm-up
                for name, url in pages.items():
                    times = [render_ms(driver, url, 100) for _ in range(args.reps)]
                    goal = "< 1000 ms: " + ("yes" if median(times) < 1000 else "NO")
                    rows.append((f"Chromium: runs table of the {name} ({runs} runs)",
                                 f"{median(times):.0f} ms", "-", "-", goal))  # fmt: skip
            finally:
                driver.quit()
    finally:
        server.stop()

    if not (args.quick or args.no_memory):
        big = base / "ws-100000"
        bu.build_workspace(big, 100, 1000, say)
        say("server memory with the 100,000-run workspace open")
        server = Server(big, env)
        try:
            start = server.memory()
            run_id = json.loads(server.get(f"/api/runs?ref={bu.PROJECT}/e050&limit=1"))["rows"][0][
                "id"
            ]
            for path in ("/", "/api/workspace", "/api/runs", "/api/runs?offset=99900",
                         f"/api/runs?ref={bu.PROJECT}/e050&sort=-results.final_loss",
                         "/api/runs?sort=-results.final_loss",
                         f"/api/experiment?ref={bu.PROJECT}/e050",
                         f"/api/run?ref={bu.PROJECT}/e050/{run_id}", "/api/workspace"):  # fmt: skip
                took = server.timed(path)
                say(f"  {path}: {took * MS:.0f} ms")
            memory = server.memory()
        finally:
            server.stop()
        goal = "< 300 MiB: " + ("yes" if memory["VmHWM"] < 300 else "NO")
        rows.append(("server memory, 100,000-run workspace: peak (VmHWM)",
                     f"{memory['VmHWM']:.0f} MiB", f"{start['VmHWM']:.0f} MiB (just started)",
                     "-", goal))  # fmt: skip
        rows.append(("server memory, 100,000-run workspace: resident after (VmRSS)",
                     f"{memory['VmRSS']:.0f} MiB", "-", "-", ""))  # fmt: skip

    widths = [max(len(r[i]) for r in rows + [("figure", "value", "baseline", "ratio", "goal")])
              for i in range(5)]  # fmt: skip
    for row in [("figure", "value", "baseline", "ratio", "goal"), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 1 if any(r[4].endswith("NO") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
