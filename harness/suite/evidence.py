"""What a suite or study declares beside its numbers: notes on what the report leaves unstated, what the
suite assumed, and evidence from outside the harness; and the rows the report's own setting leaves untrained.

Each is attached to the report's tables (by their numbers, e.g. ``"6.1"``), and optionally to some rows
(``rows``: a column of the table -> its value, e.g. ``{ "λ" = 0.0 }``) and one quantity (the column of
ours, e.g. ``"Task 1 %"``). The reproduction document (:mod:`harness.study.document`) shows each beside
the numbers it may explain.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, PositiveInt

from harness.suite.models import StrictModel

#: How a note reads in the document, per kind.
NOTE_KINDS = {"assumed": "Assumed", "report": "The report", "evidence": "Evidence"}


class Attachment(StrictModel):
    """Which numbers of the report a declaration is about."""

    tables: list[str] = Field(default_factory=list, description="Report table numbers; [] = every table of the "
                              "suite (in a study: of the study).")
    rows: dict[str, Any] = Field(default_factory=dict, description="Table column -> value; {} = every row.")
    quantity: str | None = Field(None, description="The column of ours (e.g. 'Test acc %'); None = every one.")

    def covers(self, table: str, keys: dict[str, Any], quantity: str) -> bool:
        """Whether this declaration is about the number in ``table`` at the row ``keys``, column ``quantity``."""
        if self.tables and table not in self.tables:
            return False
        if self.quantity is not None and self.quantity != quantity:
            return False
        return all(key in keys and _same(keys[key], value) for key, value in self.rows.items())


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)):
        return math.isclose(float(value), float(wanted), abs_tol=1e-9)
    return str(value) == str(wanted)


class Note(Attachment):
    """A cause a gap may have: what the report does not state and the suite assumed, how the report counts
    or reports something, or evidence measured outside this harness. One line: it stands beside a number."""

    kind: Literal["assumed", "report", "evidence"] = Field(description="assumed: the report does not state it, "
                                                           "the suite assumed the text; report: how the report "
                                                           "states or counts it; evidence: measured elsewhere.")
    text: str = Field(description="One line, shown beside the numbers it may explain.")

    def line(self) -> str:
        return f"{NOTE_KINDS[self.kind]}: {self.text}"


class ChanceRow(Attachment):
    """A quantity the report's own setting leaves untrained (e.g. a head whose loss has weight 0): it is
    judged against chance, what a guess knowing only the classes' shares scores (the most common class's
    share, with a binomial interval for the test-set size), not against the tolerance."""

    classes: PositiveInt = Field(description="Classes the untrained head guesses among.")
    largest_share: float | None = Field(None, gt=0.0, le=1.0, description="The test set's share of its most "
                                        "common class (what always guessing it scores); default 1 / classes.")
    text: str = Field(description="Why the report's setting leaves it untrained (one line).")
