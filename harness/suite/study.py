"""Studies, claims and tolerances: what a study file and a suite's ``[[claims]]``/``[tolerances]`` may say.

A study file (``suites/report.toml``) is told apart from a suite file by its ``[[members]]``: it names
member suites, the profile of each member for each profile of the study, and which of a member's
tables stands for which table of the report. ``harness run suite=STUDY`` runs every member in one
run id (see :mod:`harness.study.runner`).

A claim is a sentence of the report with a machine-checkable form over a run's stored records; its
statistics live in :mod:`harness.study.claims`. A tolerance says how far one of our numbers may lie
from the report's and still count as reproduced (the reproduction document's verdicts).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from harness.errors import UserError
from harness.suite.evidence import Note
from harness.suite.models import StrictModel
from harness.suite.toml_file import read_toml

#: How far ours may lie from the report's number, per metric, unless a suite says otherwise: accuracies
#: within half a percentage point, counts exactly; times are not judged across machines.
DEFAULT_TOLERANCES: dict[str, float | str] = {
    "accuracy": 0.5, "variance": 0.5, "params": 0, "components": 0, "lambda": 0,
    "seconds": "not judged", "iterations": "not judged",
}
NOT_JUDGED = "not judged"

#: A tolerance: the largest |ours - report| (in the metric's unit) that still counts as reproduced,
#: 0 for exact, or "not judged".
Tolerance = Annotated[float, Field(ge=0)] | Literal["not judged"]


#: Selects cells: ``model`` matches the cell's model, any other key a field of its record; a list
#: value matches any of its items.
Selector = dict[str, Any]


class ClaimComparison(StrictModel):
    """One comparison of a ``greater`` claim: ``higher`` cells have a higher ``metric`` than ``lower`` cells."""

    higher: Selector = Field(description="The cells claimed to score higher.")
    lower: Selector = Field(description="The cells claimed to score lower.")
    metric: str | None = Field(None, description="Record field compared; None = the claim's metric.")


class Claim(StrictModel):
    """A claim of the report, and how to check it on stored results.

    ``greater``: each comparison is tested one-sided over seeds (paired where the seeds of both sides
    pair up), per backend x device. ``correlation``: Spearman's rank correlation of ``x`` and ``y``
    over the selected models (seeds averaged) is positive. ``all``: every selected cell's record has
    the ``expect`` values (a deterministic check, no seeds needed).
    """

    text: str = Field(description="The report's words.")
    kind: Literal["greater", "correlation", "all"] = "greater"
    metric: str = Field("test_accuracy", description="Record field compared by a greater claim.")
    compare: list[ClaimComparison] = Field(default_factory=list, description="greater: every one must hold.")
    cells: Selector = Field(default_factory=dict, description="correlation / all: which cells; {} = every one.")
    x: str | None = Field(None, description="correlation: record field on the x axis (e.g. params).")
    y: str | None = Field(None, description="correlation: record field on the y axis (e.g. train_seconds).")
    expect: Selector = Field(default_factory=dict, description="all: the record values every selected cell has.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the one-sided tests.")

    @model_validator(mode="after")
    def _complete(self) -> "Claim":
        needs = {"greater": ("compare",), "correlation": ("x", "y"), "all": ("expect",)}[self.kind]
        missing = [name for name in needs if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.kind} claim needs {', '.join(missing)} (claim {self.text!r})")
        return self


class Member(StrictModel):
    """A suite of the study, and where it stands in the report."""

    suite: str = Field(description="Suite name, or a .toml path (relative to the study file).")
    section: str = Field(description="The report's section it belongs to, e.g. 'Task 3: MLPs'.")
    profiles: dict[str, str] = Field(default_factory=lambda: {"smoke": "smoke", "full": "full"},
                                     description="Study profile -> this suite's profile; a study profile "
                                                 "not listed skips the member.")
    tables: dict[str, str] = Field(default_factory=dict,
                                   description="Report table number -> the stem of the suite's table that mirrors it.")


class Study(StrictModel):
    """A validated study file."""

    name: str = Field(description="File name without .toml; set by the loader.")
    title: str
    description: str = ""
    members: list[Member] = Field(min_length=1)
    notes: list[Note] = Field(default_factory=list, description="Notes on the report's tables as a whole "
                              "(e.g. its single run); each member suite declares its own.")
    folder: str = Field("", description="The study file's folder; set by the loader.")

    @field_validator("members")
    @classmethod
    def _unique(cls, members: list[Member]) -> list[Member]:
        names = [Path(member.suite).stem for member in members]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"member suites must be unique; repeated: {', '.join(repeated)}")
        return members

    @property
    def profiles(self) -> list[str]:
        """Every profile of the study: those its members map, in first-seen order."""
        return list(dict.fromkeys(name for member in self.members for name in member.profiles))

    def members_in(self, profile: str) -> list[tuple[Member, str]]:
        """The members run in ``profile`` with their own profile; an unknown profile is a UserError."""
        if profile not in self.profiles:
            raise UserError(f"study {self.name}: unknown profile {profile!r}; profiles: {', '.join(self.profiles)}")
        return [(member, member.profiles[profile]) for member in self.members if profile in member.profiles]

    def suite_path(self, member: Member) -> str:
        """What the suite loader takes for ``member``: a name, or a path resolved against the study's folder."""
        if member.suite.endswith(".toml") and self.folder:
            return str(Path(self.folder) / member.suite)
        return member.suite

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def config_hash(study: Study, profile: str, member_hashes: dict[str, str]) -> str:
    """Identifies a study run's settings: a study run resumes only into one with the same hash."""
    blob = json.dumps({"study": study.name, "profile": profile, "members": member_hashes}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def is_study_file(path: Path) -> bool:
    """Whether a .toml file is a study (has ``members``) rather than a suite."""
    try:
        return "members" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return False  # the suite loader reports a broken file with its own message


def load_study(path: Path) -> Study:
    """Read and validate a study file; every problem is a one-line UserError naming the field."""
    raw = read_toml(path, "study")
    raw.update(name=path.stem, folder=str(path.parent))
    try:
        return Study.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "study"
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(_model_at(first["loc"]).model_fields)
            raise UserError(f"study {path.stem}: unknown key {field!r}; allowed here: {allowed}") from None
        message = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        raise UserError(f"study {path.stem}: {field}: {message}") from None


def _model_at(loc: tuple) -> type[BaseModel]:
    return Member if loc and loc[0] == "members" and len(loc) > 2 else Study
