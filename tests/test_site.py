"""``harness publish``: the static history site (pages, graphs, links, flags, calibration), and the
site as headless Chromium shows it from ``file://``."""

from __future__ import annotations

import json
import re
import time

import pytest

from harness.cli import main as cli_main
from harness.history import site
from tests.history_runs import stored_run
from tests.test_html_report import Chromium, needs_chromium, screenshot_dir


@pytest.fixture
def history(tmp_path):
    """Four nights on one machine and two on another; the third night flagged by the gate."""
    reports = tmp_path / "reports"
    for night in range(4):
        stored_run(reports, f"n{night}", night, "ci-runner", seconds=10 + night)
    for night in range(2):
        stored_run(reports, f"g{night}", night, "gpu-box", seconds=3.0, calibration=0.01)
    (reports / "demo" / "n2" / site.COMPARISON).write_text(json.dumps({"regressions": 1}))
    (reports / "demo" / "n1" / site.COMPARISON).write_text(json.dumps({"regressions": 0}))
    (reports / "demo" / "n3" / "report.html").write_text("<!DOCTYPE html><title>own page of n3</title>")
    return reports


def test_a_page_per_suite_with_linked_points_flags_and_the_calibration(history, tmp_path):
    out = tmp_path / "site"
    summary = site.publish(history, out)
    assert (summary.suites, summary.runs) == (1, 6)
    assert summary.files == 2 + 6 and summary.bytes == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    page = (out / "demo.html").read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert titles == ["Calibration workload per run, by machine", "MLP: test_accuracy", "MLP: train_seconds",
                      "MLP: seconds_to_target"]
    assert page.count("<svg") == 4
    # Every point links to a run page that exists; the gate's flagged run is ringed (in every graph).
    links = re.findall(r'<a href="(runs/[^"]+)">', page)
    assert len(links) == 6 + 3 * 2 * 6 and all((out / link).is_file() for link in links)
    assert page.count('class="flag"') == 1 + 3 * 2 and page.count("flagged by the nightly gate") == 7
    for series in ("ci-runner", "gpu-box", "torch/cpu @ ci-runner", "tensorflow/cpu @ gpu-box"):
        assert f"{series}</label>" in page
    assert (out / "runs" / "demo" / "n3.html").read_text() == (history / "demo" / "n3" / "report.html").read_text()
    made_here = (out / "runs" / "demo" / "n0.html").read_text()
    assert "<h2>Cells</h2>" in made_here and "ci-runner" in made_here
    index = (out / "index.html").read_text()
    assert 'href="demo.html"' in index and "6 stored run(s) of 1 suite(s)" in index
    assert "http://" not in page and "https://" not in page and "src=" not in page  # nothing from elsewhere


def test_the_machine_is_named_by_harness_machine_else_by_its_hardware():
    assert site.machine_name({"machine": "ci", "cpu": "EPYC"}) == "ci"
    assert site.machine_name({"cpu": "EPYC", "cpu_cores": 4, "hostname": "fv-az1"}) == "EPYC x4"
    assert site.machine_name({"cpu": "Xeon", "cpu_cores": 8, "gpu": "H100"}) == "Xeon x8 + H100"


def test_the_command_line(history, tmp_path, capsys):
    assert cli_main(["publish", f"out={tmp_path / 'site'}", f"reports={history}"]) == 0
    assert "1 suite(s), 6 run(s), 8 files" in capsys.readouterr().out
    assert cli_main(["publish", f"reports={history}"]) == 2
    assert cli_main(["publish", f"out={tmp_path / 'x'}", f"reports={tmp_path / 'empty'}"]) == 2


SITE_FACTS = """JSON.stringify({
  title: document.title,
  graphs: [...document.querySelectorAll('svg.graph')].map(g => ({
      width: g.getBoundingClientRect().width, points: g.querySelectorAll('a circle:not(.flag)').length})),
  firstLink: new URL(document.querySelector('svg.graph a').getAttribute('href'), location.href).href,
})"""


@pytest.mark.browser
@needs_chromium
def test_the_site_from_file_shows_the_graphs_and_its_links_open_run_pages(history, tmp_path):
    out = tmp_path / "site"
    site.publish(history, out)
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open((out / "index.html").as_uri())
        assert browser.evaluate("document.querySelector('a[href=\"demo.html\"]').textContent") == "demo"
        browser.open((out / "demo.html").as_uri())
        facts = json.loads(browser.evaluate(SITE_FACTS))
        assert facts["title"] == "demo: history"
        assert [g["points"] for g in facts["graphs"]] == [6, 12, 12, 12]
        assert all(g["width"] >= site.WIDTH for g in facts["graphs"])  # drawn at full size (plus its border)
        # The legend hides a series and shows it again.
        assert browser.evaluate("""(() => { const box = document.querySelector('.legend input');
            box.click(); const hidden = document.querySelector('[data-s="0"]').style.display;
            box.click(); return hidden + '|' + document.querySelector('[data-s="0"]').style.display; })()""") == "none|"
        browser.screenshot(screenshot_dir(tmp_path) / "history_site.png")
        errors = browser.console_errors()
        # Clicking a point opens its run's page.
        browser.evaluate("document.querySelector('svg.graph a circle').dispatchEvent("
                         "new MouseEvent('click', {bubbles: true}))")
        deadline = time.time() + 20
        while browser.evaluate("location.href") != facts["firstLink"] and time.time() < deadline:
            time.sleep(0.1)
        assert browser.evaluate("location.href") == facts["firstLink"] == (out / "runs/demo/g0.html").as_uri()
        while browser.evaluate("document.readyState") != "complete" and time.time() < deadline:
            time.sleep(0.1)
        assert browser.evaluate("document.title") == "demo g0"
    finally:
        browser.close()
    assert errors == []
