"""The web view in a real browser: headless Debian Chromium driven by Selenium."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.ui.conftest import XSS, Lab, Served, free_browser_logs, wait_for


def _css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def _rows(driver: Any) -> list[str]:
    return [r.get_attribute("data-ref") for r in _css(driver, "table.grid tbody tr[data-ref]")
            if r.get_attribute("data-ref").count("/") == 2]  # fmt: skip


def _canvas(driver: Any) -> bool:
    return bool(_css(driver, "#plot canvas")) or bool(_css(driver, "#plot svg"))


def test_experiment_page_plots_and_lists_every_run(browser: Any, served: Served) -> None:
    browser.get(served.url + "e/lab/sweep")
    wait_for(lambda: _canvas(browser), what="the plot")
    refs = ["lab/sweep/" + r["id"] for r in served.lab.records("lab/sweep")]
    assert wait_for(lambda: sorted(_rows(browser)) == sorted(refs) or None, what="the runs")
    aggregate = wait_for(lambda: _css(browser, "table.aggregate tbody tr"), what="the aggregate")
    assert len(aggregate) == 3
    assert "±" in aggregate[0].text
    options = [o.get_attribute("value") for o in _css(browser, "#plot-y option")]
    assert "results.y" in options
    assert free_browser_logs(browser) == []


def test_a_new_run_appears_without_a_reload(browser: Any, own_served: Served) -> None:
    browser.get(own_served.url + "e/lab/sweep")
    wait_for(lambda: len(_rows(browser)) == 6, what="6 runs")
    browser.execute_script("window.__same_page = 42;")
    own_served.lab.molexp("run", "lab/sweep", "--grid", "x=7")
    new = [r["id"] for r in own_served.lab.records("lab/sweep") if r["params"]["x"] == 7]
    start = time.monotonic()
    wait_for(lambda: all(f"lab/sweep/{i}" in _rows(browser) for i in new), timeout=15,
             what="the new runs")  # fmt: skip
    assert time.monotonic() - start < 15
    assert browser.execute_script("return window.__same_page;") == 42  # not reloaded
    wait_for(lambda: len(_css(browser, "table.aggregate tbody tr")) == 4, what="a 4th point")


def test_run_page_shows_results_attempts_and_logs(browser: Any, served: Served) -> None:
    record = served.lab.records("lab/sweep")[0]
    ref = f"lab/sweep/{record['id']}"
    browser.get(served.url + "r/" + ref)
    body = wait_for(lambda: _css(browser, "section.card"), what="the sections")
    assert body
    results = wait_for(lambda: [s for s in _css(browser, "section.card")
                                if s.text.startswith("Results") and "y" in s.text], what="results")  # fmt: skip
    assert str(record["results"]["y"]) in results[0].text
    assert wait_for(lambda: "stdout of x=" in _css(browser, "#log")[0].text, what="the stdout tail")
    wait_for(lambda: _css(browser, ".metric canvas"), what="the loss curve")
    attempts = _css(browser, "table.attempts tbody tr")
    assert len(attempts) == 1 and "succeeded" in attempts[0].text
    links = [a.get_attribute("href") for a in _css(browser, "ul.files a")]
    assert any(h.endswith("/artifacts/out.txt") for h in links)
    assert free_browser_logs(browser) == []


def test_an_injected_param_shows_as_text(browser: Any, served: Served) -> None:
    for page in ("e/lab/xss", "", "r/lab/xss/" + served.lab.records("lab/xss")[0]["id"]):
        browser.get(served.url + page)
        # in full in the params of a page, cut short (the whole as its title) in a table
        wait_for(lambda: XSS in browser.find_element("tag name", "body").text
                 or any(td.get_attribute("title") == XSS for td in _css(browser, "td")),
                 what="the param as text")  # fmt: skip
        assert browser.execute_script("return window.pwned === undefined;")
        assert _css(browser, "img[src='x']") == [] and _css(browser, "main script") == []


def test_sort_and_filter_from_the_table(browser: Any, served: Served) -> None:
    browser.get(served.url + "e/lab/sweep")
    wait_for(lambda: len(_rows(browser)) == 6, what="6 runs")
    header = wait_for(lambda: _css(browser, "th[data-key='results.y']"), what="the y column")[0]
    header.click()
    by_y = sorted(served.lab.records("lab/sweep"), key=lambda r: r["results"]["y"])
    expected = [f"lab/sweep/{r['id']}" for r in by_y]
    wait_for(lambda: _rows(browser) == expected, what="rows by y")
    _css(browser, "th[data-key='results.y']")[0].click()
    wait_for(lambda: _rows(browser) == expected[::-1], what="rows by -y")
    box = _css(browser, "input.where")[0]
    box.clear()
    box.send_keys("x>=2; results.y<5\n")
    wait_for(lambda: len(_rows(browser)) == 2, what="2 runs with x>=2 and y<5")
    assert "where=" in browser.current_url  # the filter is in the address (a link to share)
    box = _css(browser, "input.where")[0]
    box.clear()
    box.send_keys("x>>2\n")
    wait_for(
        lambda: "unknown operator" in _css(browser, ".message")[0].text, what="the grammar error"
    )
    _css(browser, "input.where")[0].clear()


def test_tags_and_notes_from_the_run_page(browser: Any, own_served: Served) -> None:
    lab = own_served.lab
    ref = "lab/sweep/" + lab.records("lab/sweep")[0]["id"]
    browser.get(own_served.url + "r/" + ref)
    box = wait_for(lambda: _css(browser, "#tag-input"), what="the tag box")[0]
    box.send_keys("keep")
    _css(browser, "#tag-add")[0].click()
    wait_for(
        lambda: any(t.text.startswith("keep") for t in _css(browser, ".tags-edit .tag")),
        what="the tag",
    )
    _css(browser, "#note-input")[0].send_keys(f"checked by hand {XSS}")
    _css(browser, "#note-add")[0].click()
    wait_for(lambda: any(XSS in n.text for n in _css(browser, ".note-text")), what="the note")
    assert browser.execute_script("return window.pwned === undefined;")
    shown = lab.records("lab/sweep")[0]
    assert shown["tags"] == ["keep"] and shown["notes"][-1]["text"] == f"checked by hand {XSS}"
    _css(browser, "button.untag")[0].click()
    wait_for(lambda: not _css(browser, ".tags-edit .tag"), what="the tag removed")
    assert lab.records("lab/sweep")[0]["tags"] == []


def test_a_running_run_is_followed(browser: Any, own_served: Served, tmp_path: Path) -> None:
    lab = own_served.lab
    (lab.root / "slow.py").write_text(
        "import sys, time\n"
        "for i in range(40):\n"
        "    print(f'tick {i}', flush=True)\n"
        "    time.sleep(0.25)\n"
    )
    lab.molexp("experiment", "create", "lab/slow", "--command", f"{sys.executable} slow.py")
    proc = subprocess.Popen([sys.executable, "-m", "molexp", "-w", str(lab.root), "run", "lab/slow"],
                            cwd=lab.root, env=lab.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        browser.get(own_served.url + "p/lab")
        row = wait_for(
            lambda: [r for r in _rows(browser) if r.startswith("lab/slow/")], what="the run"
        )
        browser.get(own_served.url + "r/" + row[0])
        wait_for(lambda: "running" in _css(browser, "h1 .badge")[0].text, what="running")
        first = wait_for(lambda: _css(browser, "#log")[0].text.count("tick"), what="some ticks")
        wait_for(lambda: _css(browser, "#log")[0].text.count("tick") > first, what="more ticks")
        wait_for(lambda: "succeeded" in _css(browser, "h1 .badge")[0].text, timeout=30, what="done")
        wait_for(lambda: "tick 39" in _css(browser, "#log")[0].text, what="the whole log")
    finally:
        proc.wait(timeout=60)


def test_the_report_opens_from_disk(browser: Any, lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "sweep.html"
    lab.molexp("report", "lab/sweep", "-o", str(out))
    browser.get(out.as_uri())
    wait_for(lambda: _canvas(browser), what="the plot")
    refs = ["lab/sweep/" + r["id"] for r in lab.records("lab/sweep")]
    assert wait_for(lambda: sorted(_rows(browser)) == sorted(refs) or None, what="the runs")
    assert len(_css(browser, "table.aggregate tbody tr")) == 3
    _css(browser, "th[data-key='results.y']")[0].click()  # sorted in the page
    by_y = sorted(lab.records("lab/sweep"), key=lambda r: r["results"]["y"])
    wait_for(lambda: _rows(browser) == [f"lab/sweep/{r['id']}" for r in by_y], what="sorted")
    assert free_browser_logs(browser) == []
    xss = tmp_path / "xss.html"
    lab.molexp("report", "lab/xss", "-o", str(xss))
    browser.get(xss.as_uri())
    wait_for(lambda: XSS in browser.find_element("tag name", "body").text, what="the param as text")
    assert browser.execute_script("return window.pwned === undefined;")
