"""Tests for harness.render.html: page content from a synthetic store, then a real page in Chromium.

The browser tests drive Debian's headless ``chromium`` over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file descriptors 3 and 4), so
they need nothing beyond the standard library. They check what a reader would: the page loads,
tables have rows, every image decoded with a real size, and the console stayed clean; then they
save a screenshot (into $HARNESS_SCREENSHOTS when set, else the test's tmp folder).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.cells import Cell, CellResult
from harness.compare.baselines import from_store
from harness.compare.comparison import compare
from harness.render import html as html_report
from harness.render.tables import Table
from harness.store import ResultsStore, RunInfo, write_run_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium")

# The smallest valid PNG (1x1, one grey pixel), to stand in for a figure.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg=="
)


def synthetic_run(reports: Path, run_id: str, minute: int, accuracy: float) -> RunInfo:
    """A finished one-cell run with a task table (reference columns included) and two figures."""
    env = {"git_commit": "f" * 40, "git_dirty": True, "cpu": "EPYC", "torch": "2.13.0",
           "calibration": {"version": 1, "seconds": 0.1, "samples": [0.1, 0.11]}}
    run = RunInfo(run_id, "demo", "smoke", "cafe01", f"2026-01-01T00:{minute:02d}:00", None, "running",
                  {"title": "Demo <suite>", "mirrors": "Table 9.9"}, env)
    with ResultsStore(reports / "results.db") as store:
        store.create_run(run)
        record = {"model": "MLP", "backend": "torch", "device": "cpu", "seed": 0, "params": 1000,
                  "test_accuracy": accuracy, "train_seconds": 2.0, "status": "ok", "error": ""}
        store.save_cell(run_id, 0, Cell("demo", "classify", "MLP", "torch", "cpu", 0, {}), CellResult("ok", record))
        store.update_run(run_id, status="complete")
        run = store.run(run_id)
        folder = run.folder(reports)
        write_run_files(folder, run, store.cells(run_id), ["model"])
    (folder / "cells" / "c0").mkdir(parents=True)
    (folder / "cells" / "c0" / "learning_curves.png").write_bytes(PIXEL)
    (folder / "accuracy_vs_params.png").write_bytes(PIXEL)
    return run


def demo_table(accuracy: float) -> Table:
    frame = pd.DataFrame({"Model": ["MLP"], "Test acc %": [accuracy], "Report test %": [97.69]})
    return Table("table", "Demo table", frame, "Accuracies in percent.")


def write_report(reports: Path, run_id: str, accuracy: float, comparison=None) -> Path:
    with ResultsStore(reports / "results.db") as store:
        return html_report.write_report(store, reports, store.run(run_id), [demo_table(accuracy)], comparison)


def test_run_page_embeds_every_figure_and_shows_tables_comparison_history_environment(reports):
    synthetic_run(reports, "r1", 1, 97.5)
    run = synthetic_run(reports, "r2", 2, 95.0)
    with ResultsStore(reports / "results.db") as store:
        comparison = compare(from_store(store, "r1"), from_store(store, "r2"))
    path = write_report(reports, "r2", 95.0, comparison)
    text = path.read_text()
    assert path == run.folder(reports) / "report.html"
    assert re.findall(r'<img src="data:image/png;base64,([^"]+)"', text).count(base64.b64encode(PIXEL).decode()) == 2
    assert "src=\"http" not in text and "<script" not in text  # self-contained, nothing to fetch
    assert "Demo &lt;suite&gt; — mirrors Table 9.9" in text  # escaped
    assert '<th class="ref">Report test %</th>' in text and '<td class="num ref">97.69</td>' in text
    assert "cells/c0/learning_curves.png" in text
    assert 'class="regressed"' in text and "test_accuracy (%)" in text and "-2.50 pp" in text
    assert '<th class="">Why</th>' in text and "no noise estimate: 1 sample" in text  # one seed: threshold alone
    assert "alt=\"history\"" in text  # two runs: a history plot
    assert "calibration.seconds" in text and "calibration.samples" not in text
    assert "(uncommitted changes)" in text
    index = (reports / "index.html").read_text()
    assert index.index("r2") < index.index("r1")  # newest first
    assert '<a href="demo/r2/report.html">r2</a>' in index


def test_first_run_page_says_there_is_no_baseline_or_history(reports):
    run = synthetic_run(reports, "r1", 1, 97.5)
    text = write_report(reports, "r1", 97.5).read_text()
    assert "No baseline was given" in text and "no history yet" in text
    assert "Failed cells" not in text
    with ResultsStore(reports / "results.db") as store:
        assert html_report.write_index(store, reports) == reports / "index.html"
    assert run.run_id in (reports / "index.html").read_text()


# --- the browser --------------------------------------------------------------------------------


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (no websocket client needed)."""

    def __init__(self, profile_dir: Path, width: int = 1280, height: int = 1000) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4: move our ends out of the way first,
        # wire them in the child, and list 3 and 4 as kept (the child closes all others after wiring).
        to_browser, from_browser = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser))

        def wire() -> None:
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile_dir}", f"--window-size={width},{height}", "--hide-scrollbars", "about:blank"],
            pass_fds=(to_browser, from_browser, 3, 4), preexec_fn=wire, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        """Send one command (to the attached page, once there is one) and wait for its reply."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30.0) -> dict:
        for index, seen in enumerate(self.events):
            if seen.get("method") == event:
                return self.events.pop(index)
        while True:
            message = self._receive(timeout)
            if message.get("method") == event:
                return message
            self.events.append(message)

    def _receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def open(self, url: str) -> None:
        """A new page at ``url``, with console and log events recorded; returns after its load event."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (a failed image load is one)."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return errors

    def screenshot(self, path: Path, max_height: int = 6000) -> Path:
        """The whole page (up to ``max_height`` pixels) as a PNG."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        try:
            self.session = None
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            os.close(self._read)
            os.close(self._write)


PAGE_FACTS = """JSON.stringify({
  title: document.title,
  tables: [...document.querySelectorAll('table')].map(t => t.tBodies[0].rows.length),
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                          shown: i.getBoundingClientRect().width})),
  headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
})"""


def inspect(url: str, profile_dir: Path, screenshot: Path | None = None) -> tuple[dict, list[str]]:
    """What the page shows, and the errors it raised, as Chromium sees them."""
    browser = Chromium(profile_dir)
    try:
        browser.open(url)
        facts = json.loads(browser.evaluate(PAGE_FACTS))
        if screenshot is not None:
            browser.screenshot(screenshot)
        return facts, browser.console_errors()
    finally:
        browser.close()


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HARNESS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.browser
@needs_chromium
def test_the_checker_catches_a_broken_image_and_a_console_error(tmp_path):
    # Without this, a checker that sees nothing would pass every page.
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><table><tbody><tr><td>1</td></tr></tbody></table>'
                    '<img src="missing.png" alt="gone"><script>console.error("boom")</script></body></html>')
    facts, errors = inspect(page.as_uri(), tmp_path / "profile")
    assert facts["images"] == [{"alt": "gone", "complete": True, "width": 0, "shown": facts["images"][0]["shown"]}]
    assert "boom" in errors and any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in errors)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_cnn_baseline_report_renders_in_chromium(reports, mnist, console, tmp_path):
    from harness import runner
    from harness.suite.overrides import Override

    # A real cnn_baseline run, trimmed to a few hundred images so the test stays quick.
    request = runner.RunRequest("cnn_baseline", "smoke", reports=reports, overrides=[
        Override("data.train_samples", 250), Override("data.test_samples", 100)])
    outcome = runner.run(request, console)
    path = outcome.folder / html_report.PAGE
    pngs = sorted(outcome.folder.rglob("*.png"))
    assert len(pngs) == 3 + 2 * 2  # three comparison plots, learning curves and confusion matrix per model

    shot = screenshot_dir(tmp_path) / "cnn_baseline_report.png"
    facts, errors = inspect(path.as_uri(), tmp_path / "profile", shot)
    assert errors == []
    assert facts["title"] == f"cnn_baseline {outcome.run.run_id}"
    assert facts["headings"] == ["Comparison with the baseline", "Tables", "History", "Figures", "Environment"]
    assert facts["tables"][0] == 2  # the report table: one row per model
    assert len(facts["images"]) == len(pngs)
    broken = [image["alt"] for image in facts["images"] if not image["complete"] or image["width"] == 0]
    assert broken == []
    assert all(image["width"] > 100 and image["shown"] > 100 for image in facts["images"])
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    index_facts, index_errors = inspect((reports / "index.html").as_uri(), tmp_path / "profile2")
    assert index_errors == [] and index_facts["tables"] == [1]


def test_a_run_whose_every_cell_failed_gets_a_failure_summary_and_a_page(reports, mnist, console, monkeypatch,
                                                                        fixed_calibration):
    from harness import runner
    from harness.commands import report as report_command
    from harness.suite.overrides import Override
    from harness.tasks import training

    def out_of_memory(*args, **kwargs):
        raise MemoryError("cannot allocate 10,000,000 images")

    monkeypatch.setattr(training, "train_and_measure", out_of_memory)
    monkeypatch.setattr("harness.tasks.classify.train_and_measure", out_of_memory)
    request = runner.RunRequest("mlp_depth", "smoke", reports=reports, models=["MLP Baseline Model", "Additional Model 1"],
                                overrides=[Override("data.train_samples", 300), Override("data.test_samples", 100)])
    outcome = runner.run(request, console)
    assert outcome.run.status == "failed" and len(outcome.failed) == 2
    assert all("MemoryError: cannot allocate 10,000,000 images" in line for line in outcome.failed)
    text = (outcome.folder / html_report.PAGE).read_text()
    assert "2 of 2 cell(s) failed." in text and "This run has no tables: no cell finished." in text
    assert not (outcome.folder / "table.md").exists()
    # Rendering it again from the store works the same way.
    assert report_command.render("mlp_depth", outcome.run.run_id, reports, console) == outcome.folder
