"""A member run's evidence for the reproduction document, built from the store (never retrains): its
tables over all seeds and over each seed alone, the settings that are not the report's, the notes and
chance rows its suite (and the study) declare, and the test-set sizes a chance row's interval needs."""

from __future__ import annotations

from pathlib import Path

from harness.cells import StoredCell, units
from harness.store import RunInfo
from harness.study import claims, settings
from harness.study.document import MemberReport
from harness.suite.schema import DATASET_SIZES, Suite
from harness.suite.study import Member, Study
from harness.tasks import task_for


def member_report(study: Study, member: Member, suite: Suite, run: RunInfo, folder: Path,
                  cells: list[StoredCell], wall_seconds: float | None) -> MemberReport:
    """What the document shows of one member's stored run."""
    task = task_for(suite.task)
    seeds = sorted({stored.cell.seed for stored in cells if stored.result.ok})
    report = settings.report_suite(suite.name)
    return MemberReport(
        suite.name, member.section, suite.title, suite.mirrors, run, folder, task.tables(suite, cells),
        member.tables, suite.tolerances, claims.evaluate(suite.name, suite.claims, units(cells)), wall_seconds,
        seed_tables={seed: task.tables(suite, [s for s in cells if s.cell.seed == seed]) for seed in seeds},
        differing=settings.differing(suite, report, task.selecting_options),
        notes=[*suite.notes, *study.notes], chance=suite.chance,
        test_images=(test_images(suite), test_images(report or suite)))


def test_images(suite: Suite) -> int:
    """The test images a suite's run scores on (None in the settings = the whole test set)."""
    return suite.data.test_samples or DATASET_SIZES.get(suite.data.dataset, {}).get("test", 0)
