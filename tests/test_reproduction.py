"""The reproduction document: checks read off the tasks' tables, verdicts within tolerances, the summary,
and the page as headless Chromium shows it (every report table with a verdict column, every image)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.cells import Cell, CellResult, StoredCell
from harness.study import claims
from harness.study import document as reproduction
from harness.study.document import Document, MemberReport, checks_of
from harness.render.tables import Table
from harness.store import RunInfo
from harness.suite.study import DEFAULT_TOLERANCES, Claim, Study
from tests.test_html_report import needs_chromium


def classify_table(rows):
    """A table laid out as the classify task's (the columns the document pairs)."""
    return Table("table", "MLP depth (Table 3.2)", pd.DataFrame(rows, columns=[
        "Model", "Backend", "Device", "Params", "Report params", "Depth", "Test acc %", "Report test %", "Δ test",
        "Train acc %", "Report train %", "Train s", "Report s"]))


def test_checks_pair_each_report_column_with_ours_and_apply_the_tolerance():
    table = classify_table([
        ["Model 1", "torch", "cpu", 1324362, 1324362, 2, 97.50, 97.26, 0.24, 99.0, None, 80.0, 87.09],
        ["Model 2", "torch", "cpu", 1861578, 1861570, 3, 96.10, 97.15, -1.05, 98.0, None, 90.0, 125.84],
    ])
    checks = checks_of(table, "3.2", DEFAULT_TOLERANCES)
    found = {(c.row, c.quantity): (c.report, c.ours, c.verdict, reproduction.tolerance_text(c.tolerance))
             for c in checks}
    assert found == {
        ("Model 1 · torch · cpu", "Params"): (1324362, 1324362, "reproduced", "exact"),
        ("Model 1 · torch · cpu", "Test acc %"): (97.26, 97.5, "reproduced", "±0.5"),
        ("Model 1 · torch · cpu", "Train s"): (87.09, 80.0, "not judged", "not judged"),
        ("Model 2 · torch · cpu", "Params"): (1861570, 1861578, "not reproduced", "exact"),
        ("Model 2 · torch · cpu", "Test acc %"): (97.15, 96.1, "not reproduced", "±0.5"),
        ("Model 2 · torch · cpu", "Train s"): (125.84, 90.0, "not judged", "not judged"),
    }  # no report train accuracy for these models: no check
    assert checks[3].delta == 8


def test_a_suites_tolerance_overrides_the_default_and_pca_rows_take_their_metric():
    table = Table("table", "PCA", pd.DataFrame([
        {"Quantity": "explained variance, component 1 (%)", "Set": "train", "Samples": 60000, "Ours": 9.70,
         "Report": 9.7, "Δ": 0.0},
        {"Quantity": "components for 95% of the variance", "Set": "train", "Samples": 60000, "Ours": 153,
         "Report": 154, "Δ": -1},
    ], dtype=object))
    member = MemberReport("pca", "Task 1", "PCA", "Task 1", None, None, [table], {"1": "table"},
                          {"components": 2})
    [variance, components] = member.checks["1"]
    assert (variance.metric, variance.verdict) == ("variance", "reproduced")
    assert (components.metric, components.tolerance, components.verdict) == ("components", 2, "reproduced")


def fake_run(run_id, suite, environment=None):
    return RunInfo(run_id, suite, "smoke", "h", "2026-12-02T00:00:00+00:00", "2026-12-02T00:01:00+00:00",
                   "complete", {}, environment or {"python": "3.12", "torch": "2.13"})


def report_tables():
    """One member per report table, each with the real tasks' column names, one number off in 4.4."""
    def mtl_61():
        return Table("table_6_1", "MTL: Table 6.1", pd.DataFrame([
            {"Backend": "torch", "Device": "cpu", "λ": 0.7, "Task 1 %": 90.1, "Report task 1 %": 90.32,
             "Δ task 1": -0.22, "Task 2 %": 93.8, "Report task 2 %": 94.0, "Δ task 2": -0.2}]))

    def mtl_62():
        return Table("table_6_2", "MTL: Table 6.2", pd.DataFrame([
            {"Backend": "torch", "Device": "cpu", "Task": "task 1 (classes)", "STL %": 88.3, "Report STL %": 88.4,
             "Δ STL vs report": -0.1, "Best λ": 0.7, "MTL %": 90.1, "Δ MTL − STL": 1.8, "Report λ": 0.7,
             "Report MTL %": 90.32, "Δ report": 1.92}]))

    def perceptron():
        return Table("table", "Perceptron (Table 2.1)", pd.DataFrame([
            {"Pair": "0,1", "Test acc %": 99.9, "Report %": 99.91, "Δ acc": -0.01, "Iterations": 20,
             "Report it.": 19, "Seconds": 0.5, "Report s": 1.98, "Converged": True, "LP verdict": "separable"}],
            dtype=object))

    row = ["M", "torch", "cpu", 100, 100, 1, 97.0, 97.2, -0.2, 99.0, 99.1, 10.0, 12.0]
    members = [("2.1", "perceptron", "Task 2", [perceptron()], {"2.1": "table"})]
    for number, suite, section in (("3.1", "mlp_baseline", "Task 3"), ("3.2", "mlp_depth", "Task 3"),
                                   ("4.1", "cnn_baseline", "Task 4"), ("4.3", "mlp_vs_cnn", "Task 4"),
                                   ("4.4", "cnn_depth", "Task 4")):
        values = row if number != "4.4" else row[:6] + [96.0] + row[7:]
        members.append((number, suite, section, [classify_table([values])], {number: "table"}))
    members.append(("6.1", "mtl", "Task 6", [mtl_61(), mtl_62()], {"6.1": "table_6_1", "6.2": "table_6_2"}))
    return members


def synthetic_document(tmp_path):
    """A document over synthetic member runs: the eight report tables, a figure, a tested claim."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    members = []
    for _, suite, section, tables, mapping in report_tables():
        folder = tmp_path / suite / "run"
        folder.mkdir(parents=True)
        figure, axis = plt.subplots(figsize=(2, 2))
        axis.plot([0, 1], [0, 1])
        figure.savefig(folder / "plot.png")
        plt.close(figure)
        members.append(MemberReport(suite, section, suite.title(), "Fig. 9.9", fake_run(f"r.{suite}", suite), folder,
                                    tables, mapping, {}, [], 12.5))
    cells = [StoredCell(Cell("mlp_vs_cnn", "classify", model, "torch", "cpu", seed, {}),
                        CellResult("ok", {"test_accuracy": base + seed / divisor}))
             for seed in range(5) for model, base, divisor in (("CNN", 97.0, 10), ("MLP", 96.0, 7))]
    claim = Claim(text="CNN outperforms MLP", compare=[{"higher": {"model": "CNN"}, "lower": {"model": "MLP"}}])
    members[4].claims = claims.evaluate("mlp_vs_cnn", [claim], cells)
    study = Study(name="report", title="The report, reproduced", members=[
        {"suite": m.suite, "section": m.section, "tables": m.report_tables} for m in members])
    return Document(study, fake_run("r", "report"), members)


def test_summary_counts_and_names_what_was_not_reproduced(tmp_path):
    document = synthetic_document(tmp_path)
    counts = {}
    for check in document.checks():
        counts[check.verdict] = counts.get(check.verdict, 0) + 1
    # params (exact) and accuracies (±0.5) judged; seconds and iterations not.
    assert counts == {"reproduced": 20, "not reproduced": 1, "not judged": 7}
    assert document.summary()[0].startswith("20 of the report's 21 judged numbers reproduced within their tolerance, 1 not")
    assert document.not_reproduced() == [
        "Table 4.4, M · torch · cpu, Test acc %: ours 96 vs report 97.2 (Δ -1.2, tolerance ±0.5)"]
    assert document.summary()[-1] == "Claims: 1 supported."
    assert document.wall_table().rows()[-1] == ["all", "r", "complete", 7 * 12.5]


def test_members_trained_in_bf16_are_named_as_settings_that_differ_from_the_reports(tmp_path):
    document = synthetic_document(tmp_path)
    assert not any("Settings that differ" in line for line in document.summary())
    for member in document.members[1:3]:  # mlp_baseline, mlp_depth: 4 numbers each (params, test, train, seconds)
        member.run = fake_run(member.run.run_id, member.suite)
        member.run.config["train"] = {"precision": "bf16"}
    assert ("Settings that differ from the report's: 8 of these numbers come from runs trained in bf16, the report "
            "trained in float32 (mlp_baseline, mlp_depth).") in document.summary()
    assert "precision bf16 (the report: fp32)" in reproduction._member_line(document.members[1])
    assert "precision fp32; wall time" in reproduction._member_line(document.members[0])


def test_markdown_has_every_table_and_links_the_figures(tmp_path):
    document = synthetic_document(tmp_path)
    out = tmp_path / "report" / "r"
    reproduction.write_document(document, out)
    text = (out / reproduction.MARKDOWN).read_text()
    for number in ("2.1", "3.1", "3.2", "4.1", "4.3", "4.4", "6.1", "6.2"):
        assert f"#### Table {number}: " in text
    assert "| Row | Quantity | Report | Ours | Δ | Tolerance | Verdict |" in text
    assert "| M · torch · cpu | Test acc % | 97.20 | 96.00 | -1.20 | ±0.5 | not reproduced |" in text
    assert "![mlp_depth: plot.png](../../mlp_depth/run/plot.png)" in text
    assert (out / "../../mlp_depth/run/plot.png").resolve().exists()


PAGE_TABLES = """JSON.stringify({
  headings: [...document.querySelectorAll('h4')].map(h => h.textContent),
  tables: [...document.querySelectorAll('h4 + div.wide table')].map(t => ({
    title: t.closest('div').previousElementSibling.textContent,
    header: [...t.tHead.rows[0].cells].map(c => c.textContent), rows: t.tBodies[0].rows.length})),
  images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth})),
  summary: document.querySelector('p.summary').textContent,
})"""


@pytest.mark.browser
@needs_chromium
def test_the_document_in_headless_chromium(tmp_path):
    from tests.test_html_report import Chromium

    page = reproduction.write_document(synthetic_document(tmp_path), tmp_path / "report" / "r")
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        facts = json.loads(browser.evaluate(PAGE_TABLES))
        errors = browser.console_errors()
    finally:
        browser.close()
    report_tables_shown = [t for t in facts["tables"] if t["title"].startswith("Table ")]
    assert [t["title"].split(":")[0] for t in report_tables_shown] == [
        "Table 2.1", "Table 3.1", "Table 3.2", "Table 4.1", "Table 4.3", "Table 4.4", "Table 6.1", "Table 6.2"]
    assert all("Verdict" in t["header"] and "Tolerance" in t["header"] and t["rows"] > 0 for t in report_tables_shown)
    assert len(facts["images"]) == 7 and all(i["complete"] and i["width"] > 0 for i in facts["images"])
    assert facts["summary"].startswith("20 of the report's 21 judged numbers reproduced")
    assert errors == []
