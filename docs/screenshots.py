"""The screenshots of docs/ui.md, taken by the headless Chromium the tests drive.

    .venv/bin/python docs/screenshots.py          # writes docs/ui-*.png

Builds a small workspace in a temporary folder with the real CLI (the quickstart's
Monte Carlo, a temperature sweep with 3 replicas, metrics, a tag and a note),
serves it with `molexp ui`, and saves the workspace, experiment and run pages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui.conftest import chromium, wait_for  # noqa: E402

# After mc.py: its energy per sweep (an artifact) as a metric series.
TO_METRICS = """
import json, os
energies = json.load(open(os.path.join(os.environ["MOLEXP_RUN_DIR"], "artifacts", "energies.json")))
with open(os.environ["MOLEXP_METRICS_FILE"], "a") as fh:
    for sweep, energy in enumerate(energies, 1):
        fh.write(json.dumps({"step": sweep, "energy_per_particle": energy}) + "\\n")
"""


def molexp(ws: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "molexp", "-w", str(ws), *args], cwd=ws,
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return proc.stdout


def build(ws: Path, env: dict[str, str]) -> str:
    ws.mkdir(parents=True)
    for name in ("mc.py", "molcfg.yaml"):
        shutil.copy(ROOT / "examples" / "quickstart" / name, ws)
    (ws / "to_metrics.py").write_text(TO_METRICS)
    molexp(ws, "init", str(ws), "--name", "lab", env=env)
    molexp(ws, "project", "create", "lj", "--description", "2D Lennard-Jones fluid", env=env)
    molexp(ws, "experiment", "create", "lj/mc", "--param", "temperature=1.0", "--param",
           "density=0.5", "--replicas", "3", "--command",
           "python mc.py && python to_metrics.py",
           "--description", "Metropolis Monte Carlo: energy against temperature", env=env)  # fmt: skip
    molexp(ws, "run", "lj/mc", "--profile", "smoke", "--jobs", "2",
           "--grid", "temperature=0.5,0.75,1.0,1.5,2.0,3.0", env=env)  # fmt: skip
    runs = json.loads(molexp(ws, "ls", "lj/mc", "--format", "json", "--sort", "-results.energy_per_particle", env=env))
    best = f"lj/mc/{runs[-1]['id']}"
    molexp(ws, "tag", best, "+lowest-energy", env=env)
    molexp(ws, "note", best, "Lowest energy of the sweep; check the acceptance rate.", env=env)
    return best


def shoot(driver: object, url: str, ready: str, out: Path, height: int) -> None:
    from selenium.webdriver.common.by import By

    driver.set_window_size(1400, height)  # type: ignore[attr-defined]
    driver.get(url)  # type: ignore[attr-defined]
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ready), what=ready)  # type: ignore[attr-defined]
    time.sleep(1.0)  # the plots' second frame, the live marker
    driver.save_screenshot(str(out))  # type: ignore[attr-defined]
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="molexp-screens-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLEXP_")}
    env.update({"HOME": str(tmp), "NO_COLOR": "1"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ws = tmp / "lab"
    best = build(ws, env)
    server = subprocess.Popen([sys.executable, "-m", "molexp", "-w", str(ws), "ui", "--port", "0"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    driver = chromium(tmp / "chromium")
    try:
        docs = ROOT / "docs"
        shoot(driver, url, "table.grid tbody tr[data-status]", docs / "ui-workspace.png", 1000)
        shoot(driver, url + "e/lj/mc", "#plot canvas", docs / "ui-experiment.png", 1500)
        shoot(driver, url + "r/" + best, ".metric canvas", docs / "ui-run.png", 1500)
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
