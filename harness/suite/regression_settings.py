"""The suite's ``[regression]`` table: how ``harness compare`` and ``harness nightly`` judge a run of
the suite against its baseline. Lives with the suite schema (a suite file says it); the metric facts
and threshold grammar it validates against are in the leaf :mod:`harness.thresholds`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from harness.errors import UserError
from harness.suite.models import StrictModel
from harness.thresholds import DEFAULT_FAIL, parse_thresholds


class RegressionSettings(StrictModel):
    """How ``harness compare`` judges a run of this suite against its baseline (the suite's
    ``[regression]`` table; each field can be overridden on the command line)."""

    fail: str = Field(
        DEFAULT_FAIL,
        description="Thresholds, 'metric:-N' (absolute drop) or 'metric:+N%' (relative growth), comma-separated.",
    )
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Significance level of the noise tests.")
    normalize: Literal["always", "auto", "never"] = Field(
        "auto",
        description="Scale timings by the calibration workload: 'auto' across machines, while on one machine "
                    "a regression in raw seconds must survive the scaling too (the calibration's own noise "
                    "then adds no false alarms); 'always' when both runs have one; 'never'.",
    )

    @field_validator("fail")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            parse_thresholds(text)
        except UserError as error:
            raise ValueError(str(error)) from None
        return text
