"""The report's claims put to the test over a run's stored records.

A claim (``[[claims]]`` in a suite, see :class:`harness.suite.study.Claim`) gets one of four verdicts:

- *supported*: a one-sided test finds the claimed effect at the claim's level (every comparison of it);
- *not supported*: no significant effect either way;
- *contradicted*: a significant effect the other way (in any comparison);
- *not tested*: too few observations (a ``greater`` claim needs two seeds on each side);
- *not tested: settings differ*: the run's settings are not the report's (set by the reproduction document).

A ``greater`` claim holds when *every* comparison of it holds; each is tested at the full level (an
intersection-union test needs no correction for the number of comparisons). Comparisons run per
backend x device ("in all configurations"), paired by seed where both sides have the same seeds
(``ttest_rel``), else Welch's ``ttest_ind``. A ``correlation`` claim is Spearman's rank correlation
over models (seeds averaged), so one seed is enough: its observations are the models. An ``all``
claim is deterministic: every selected record has the expected values. Statistics come from scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

from harness.cells import StoredCell
from harness.suite.study import Claim, ClaimComparison, Selector

SUPPORTED, NOT_SUPPORTED, CONTRADICTED, NOT_TESTED = "supported", "not supported", "contradicted", "not tested"
#: A claim of a run whose settings are not the report's (the reproduction document; harness.study.settings).
NOT_TESTED_SETTINGS = "not tested: settings differ"
CONFIDENCE = 0.95
#: The columns of :meth:`ClaimResult.rows`, for every table of claims (terminal, HTML, Markdown).
HEADER = ["Claim", "Verdict", "Comparison", "n", "Effect", f"{CONFIDENCE:.0%} CI", "Test", "p (one-sided)",
          "Part verdict"]


@dataclass(frozen=True)
class Part:
    """One comparison (or correlation, or check) of a claim in one backend x device."""

    label: str
    verdict: str
    n: int = 0
    effect: float | None = None  # mean difference (greater), rho (correlation), share holding (all)
    ci: tuple[float, float] | None = None
    test: str = ""
    p_value: float | None = None  # one-sided, the claimed direction
    p_reverse: float | None = None  # one-sided, the other direction (what makes a claim contradicted)
    note: str = ""


@dataclass(frozen=True)
class ClaimResult:
    """A claim, its verdict, and the comparisons that decided it."""

    suite: str
    text: str
    kind: str
    verdict: str
    parts: list[Part] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[list[str]]:
        """One row per part under :data:`HEADER`; the claim's text and verdict on the first."""
        rows = []
        for index, part in enumerate(self.parts):
            ci = "–" if part.ci is None else f"[{_number(part.ci[0])}, {_number(part.ci[1])}]"
            rows.append([self.text if index == 0 else "", self.verdict if index == 0 else "", part.label,
                         str(part.n), _number(part.effect), ci, part.test or "–",
                         _p_text(part),
                         part.verdict + (f" ({part.note})" if part.note else "")])
        return rows


def _p_text(part: Part) -> str:
    if part.p_value is None:
        return "–"
    reverse = f" (other way {part.p_reverse:.3g})" if part.verdict == CONTRADICTED and part.p_reverse is not None else ""
    return f"{part.p_value:.3g}{reverse}"


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.3g}"


def evaluate(suite: str, claims: Iterable[Claim], cells: Sequence[StoredCell]) -> list[ClaimResult]:
    """Every claim of a suite over a run's cells (failed cells are left out)."""
    done = [stored for stored in cells if stored.result.ok]
    return [evaluate_claim(suite, claim, done) for claim in claims]


def evaluate_claim(suite: str, claim: Claim, cells: Sequence[StoredCell]) -> ClaimResult:
    """One claim over finished cells."""
    if claim.kind == "greater":
        parts = [part for comparison in claim.compare for part in _greater(claim, comparison, cells)]
    elif claim.kind == "correlation":
        parts = _correlation(claim, cells)
    else:
        parts = [_all(claim, cells)]
    return ClaimResult(suite, claim.text, claim.kind, combine([part.verdict for part in parts]), parts)


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its parts': contradicted by any, supported only by all."""
    if not verdicts or all(v == NOT_TESTED for v in verdicts):
        return NOT_TESTED
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return NOT_SUPPORTED


def matches(stored: StoredCell, selector: Selector) -> bool:
    """Whether a cell fits a selector: ``model``/``backend``/``device``/``seed`` match the cell, any
    other key its record; a list matches any of its items; numbers compare with a float tolerance."""
    for key, wanted in selector.items():
        value = getattr(stored.cell, key) if key in ("model", "backend", "device", "seed") else stored.record.get(key)
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_same(value, option) for option in options):
            return False
    return True


def _same(value: Any, wanted: Any) -> bool:
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(wanted, numbers) and not isinstance(value, bool):
        return math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-12)
    return value == wanted


def _configurations(cells: Sequence[StoredCell]) -> dict[tuple[str, str], list[StoredCell]]:
    groups: dict[tuple[str, str], list[StoredCell]] = {}
    for stored in cells:
        groups.setdefault((stored.cell.backend, stored.cell.device), []).append(stored)
    return groups


def _by_seed(cells: Iterable[StoredCell], metric: str) -> dict[int, float]:
    """The metric per seed (the mean where a selector picks several cells of one seed)."""
    values: dict[int, list[float]] = {}
    for stored in cells:
        value = stored.record.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values.setdefault(stored.cell.seed, []).append(float(value))
    return {seed: sum(v) / len(v) for seed, v in sorted(values.items())}


def _describe(selector: Selector) -> str:
    return ", ".join(f"{value}" if key == "model" else f"{key}={value}" for key, value in selector.items())


def _per_configuration(label: str, cells: Sequence[StoredCell], test: Callable[[str, list[StoredCell]], Part]) -> list[Part]:
    """``test`` run on each backend x device's cells ("in all configurations"), its label naming the
    configuration when there is more than one."""
    groups = _configurations(cells)
    if not groups:
        return [Part(label, NOT_TESTED, note="no finished cells")]
    return [test(f"{label} ({backend}, {device})" if len(groups) > 1 else label, group)
            for (backend, device), group in groups.items()]


def _greater(claim: Claim, comparison: ClaimComparison, cells: Sequence[StoredCell]) -> list[Part]:
    metric = comparison.metric or claim.metric

    def test(where: str, group: list[StoredCell]) -> Part:
        from scipy import stats

        higher = _by_seed((s for s in group if matches(s, comparison.higher)), metric)
        lower = _by_seed((s for s in group if matches(s, comparison.lower)), metric)
        if min(len(higher), len(lower)) < 2:
            return Part(where, NOT_TESTED, min(len(higher), len(lower)),
                        fmean(higher.values()) - fmean(lower.values()) if higher and lower else None,
                        note="needs 2+ seeds on each side")
        paired = higher.keys() == lower.keys()
        a, b = list(higher.values()), list(lower.values())
        if paired:
            name, two_sided = "paired t", stats.ttest_rel(a, b)
            greater, less = (stats.ttest_rel(a, b, alternative=side).pvalue for side in ("greater", "less"))
        else:
            name, two_sided = "Welch t", stats.ttest_ind(a, b, equal_var=False)
            greater, less = (stats.ttest_ind(a, b, equal_var=False, alternative=side).pvalue
                             for side in ("greater", "less"))
        interval = two_sided.confidence_interval(CONFIDENCE)
        return Part(where, _verdict(greater, less, claim.alpha), len(a) if paired else len(a) + len(b),
                    fmean(a) - fmean(b), (float(interval.low), float(interval.high)), name, _p(greater), _p(less))

    label = f"{_describe(comparison.higher)} > {_describe(comparison.lower)} on {metric}"
    return _per_configuration(label, cells, test)


def _p(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _verdict(p_greater: float, p_less: float, alpha: float) -> str:
    # A NaN p-value (no spread and no difference at all) is no evidence either way.
    if p_greater < alpha:
        return SUPPORTED
    if p_less < alpha:
        return CONTRADICTED
    return NOT_SUPPORTED


def _correlation(claim: Claim, cells: Sequence[StoredCell]) -> list[Part]:
    def test(where: str, group: list[StoredCell]) -> Part:
        from scipy import stats

        points: dict[str, list[tuple[float, float]]] = {}
        for stored in group:
            x, y = stored.record.get(claim.x), stored.record.get(claim.y)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                points.setdefault(stored.cell.model, []).append((float(x), float(y)))
        xs = [fmean(x for x, _ in values) for values in points.values()]
        ys = [fmean(y for _, y in values) for values in points.values()]
        if len(xs) < 3:
            return Part(where, NOT_TESTED, len(xs), note="needs 3+ models")
        rho = stats.spearmanr(xs, ys).statistic
        greater, less = (stats.spearmanr(xs, ys, alternative=side).pvalue for side in ("greater", "less"))
        return Part(where, _verdict(greater, less, claim.alpha), len(xs), _p(float(rho)), None, "Spearman ρ",
                    _p(greater), _p(less), note="n = models")

    label = f"Spearman {claim.x} vs {claim.y}" + (f" ({_describe(claim.cells)})" if claim.cells else "")
    return _per_configuration(label, [s for s in cells if matches(s, claim.cells)], test)


def _all(claim: Claim, cells: Sequence[StoredCell]) -> Part:
    label = (f"{_describe(claim.cells)}: " if claim.cells else "every cell: ") + _describe(claim.expect)
    # A record without the expected fields was not checked (e.g. a perceptron curve cell has no LP verdict).
    selected = [s for s in cells if matches(s, claim.cells) and all(s.record.get(key) is not None for key in claim.expect)]
    if not selected:
        return Part(label, NOT_TESTED, note="no finished cells match")
    failing = [s.cell.model for s in selected if not matches(s, claim.expect)]
    note = f"not so for {', '.join(dict.fromkeys(failing))}" if failing else ""
    return Part(label, CONTRADICTED if failing else SUPPORTED, len(selected),
                (len(selected) - len(failing)) / len(selected), None, "every record", note=note)


def summary(results: Sequence[ClaimResult]) -> str:
    """'2 supported, 1 contradicted' over a list of claims."""
    counts = {v: sum(1 for r in results if r.verdict == v) for v in (SUPPORTED, NOT_SUPPORTED, CONTRADICTED, NOT_TESTED,
                                                                NOT_TESTED_SETTINGS)}
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n) or "no claims"
