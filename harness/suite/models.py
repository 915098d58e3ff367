"""The two bases of the harness's pydantic models, one per kind of file read into them.

A file a person writes (a suite, a study) is read into :class:`StrictModel`: an unknown key there is
a typo, refused with its name rather than ignored. A file the harness wrote (a run's results.json, a
baseline file) is read into :class:`OpenModel`: it may carry more than its reader needs, or keys an
older harness did not write, and those are read past.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Settings a person writes: unknown keys are refused, and so are infinite and NaN numbers (no
    setting means them, and a cell would fail on them after the run was created)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class OpenModel(BaseModel):
    """A file the harness wrote: keys beyond the fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")
