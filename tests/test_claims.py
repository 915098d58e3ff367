"""The claims check on synthetic records: each verdict, pairing by seed, correlation and the deterministic check."""

from __future__ import annotations

import pytest
from scipy import stats

from harness.cells import Cell, CellResult, StoredCell
from harness.study import claims
from harness.suite.study import Claim


def cell(model, seed, backend="torch", ok=True, **record):
    return StoredCell(Cell("s", "classify", model, backend, "cpu", seed, {}),
                      CellResult("ok" if ok else "failed", {"model": model, **record}))


def greater(cells, **extra):
    claim = Claim(text="CNN beats MLP", compare=[{"higher": {"model": "CNN"}, "lower": {"model": "MLP"}}], **extra)
    [result] = claims.evaluate("s", [claim], cells)
    return result


CNN = [97.3, 97.5, 97.1, 97.4, 97.6]
MLP = [96.2, 96.4, 96.1, 96.3, 96.0]


def runs(higher, lower):
    return ([cell("CNN", seed, test_accuracy=v) for seed, v in enumerate(higher)]
            + [cell("MLP", seed, test_accuracy=v) for seed, v in enumerate(lower)])


def test_supported_with_a_paired_test_and_its_interval():
    result = greater(runs(CNN, MLP))
    [part] = result.parts
    assert result.verdict == claims.SUPPORTED and part.test == "paired t" and part.n == 5
    assert part.effect == pytest.approx(sum(CNN) / 5 - sum(MLP) / 5)
    expected = stats.ttest_rel(CNN, MLP, alternative="greater").pvalue
    assert part.p_value == pytest.approx(expected) and part.p_value < 0.001
    assert part.ci[0] < part.effect < part.ci[1] and part.ci[0] > 0


def test_contradicted_when_the_effect_is_significant_the_other_way():
    result = greater(runs(MLP, CNN))
    assert result.verdict == claims.CONTRADICTED and result.parts[0].effect < 0
    assert result.parts[0].p_value > 0.99
    assert result.parts[0].p_reverse == pytest.approx(stats.ttest_rel(MLP, CNN, alternative="less").pvalue)
    assert result.rows()[0][7] == f"{result.parts[0].p_value:.3g} (other way {result.parts[0].p_reverse:.3g})"


def test_not_supported_without_a_significant_difference():
    noise = [97.0, 97.4, 96.9, 97.2, 97.1]
    result = greater(runs(noise, [97.1, 97.0, 97.2, 96.9, 97.3]))
    assert result.verdict == claims.NOT_SUPPORTED and 0.05 < result.parts[0].p_value < 0.95


def test_one_seed_is_not_tested():
    result = greater(runs(CNN[:1], MLP[:1]))
    assert result.verdict == claims.NOT_TESTED and result.parts[0].note == "needs 2+ seeds on each side"
    assert result.parts[0].effect == pytest.approx(CNN[0] - MLP[0])


def test_seeds_that_do_not_pair_up_use_welch():
    cells = ([cell("CNN", seed, test_accuracy=v) for seed, v in enumerate(CNN)]
             + [cell("MLP", seed + 10, test_accuracy=v) for seed, v in enumerate(MLP)])
    part = greater(cells).parts[0]
    assert part.test == "Welch t" and part.n == 10
    assert part.p_value == pytest.approx(stats.ttest_ind(CNN, MLP, equal_var=False, alternative="greater").pvalue)


def test_every_configuration_must_hold_and_failed_cells_are_left_out():
    cells = runs(CNN, MLP) + [cell("CNN", s, backend="tensorflow", test_accuracy=v) for s, v in enumerate(MLP)]
    cells += [cell("MLP", s, backend="tensorflow", test_accuracy=v) for s, v in enumerate(CNN)]
    cells.append(cell("MLP", 9, ok=False, test_accuracy=0.0))
    result = greater(cells)
    assert [p.verdict for p in result.parts] == [claims.SUPPORTED, claims.CONTRADICTED]
    assert result.verdict == claims.CONTRADICTED and result.parts[0].label.endswith("(torch, cpu)")


def test_selectors_match_record_fields_and_each_comparison_its_metric():
    cells = [cell("MTL", s, **{"lambda": lam, "task1": 90.0 + s / 10 + lam}) for s in range(3) for lam in (0.3, 0.7)]
    cells += [cell("STL", s, task1=89.0 + s / 5) for s in range(3)]
    claim = Claim(text="MTL beats STL", compare=[
        {"higher": {"model": "MTL", "lambda": 0.7}, "lower": {"model": "STL"}, "metric": "task1"}])
    [result] = claims.evaluate("mtl", [claim], cells)
    assert result.verdict == claims.SUPPORTED
    assert result.parts[0].effect == pytest.approx((90.7 + 90.8 + 90.9) / 3 - (89.0 + 89.2 + 89.4) / 3)


def test_correlation_over_models():
    cells = [cell(f"m{i}", 0, params=p, train_seconds=t)
             for i, (p, t) in enumerate([(10, 1.0), (20, 2.5), (30, 2.0), (40, 4.0), (50, 6.0)])]
    claim = Claim(text="bigger is slower", kind="correlation", x="params", y="train_seconds")
    [result] = claims.evaluate("s", [claim], cells)
    assert result.verdict == claims.SUPPORTED and result.parts[0].effect == pytest.approx(0.9)
    assert result.parts[0].p_value == pytest.approx(stats.spearmanr([10, 20, 30, 40, 50], [1, 2.5, 2, 4, 6],
                                                                    alternative="greater").pvalue)
    [few] = claims.evaluate("s", [claim], cells[:2])
    assert few.verdict == claims.NOT_TESTED


def test_all_claim_names_the_cells_that_break_it():
    cells = [cell("pair 0-1", 0, report_verdict="separable", lp_verdict="separable"),
             cell("pair 1-2", 0, report_verdict="inseparable", lp_verdict="separable"),
             cell("pair 2-3", 0, report_verdict="inseparable", lp_verdict="inseparable"),
             cell("pair 0-1", 0, report_verdict="separable", lp_verdict=None)]  # a curve cell: no LP run
    separable = Claim(text="separable", kind="all", cells={"report_verdict": "separable"},
                      expect={"lp_verdict": "separable"})
    inseparable = Claim(text="inseparable", kind="all", cells={"report_verdict": "inseparable"},
                        expect={"lp_verdict": "inseparable"})
    first, second = claims.evaluate("perceptron", [separable, inseparable], cells)
    assert first.verdict == claims.SUPPORTED and first.parts[0].n == 1
    assert second.verdict == claims.CONTRADICTED and second.parts[0].note == "not so for pair 1-2"
    assert second.parts[0].effect == 0.5


def test_a_claim_without_its_checkable_form_is_rejected():
    with pytest.raises(ValueError, match="a correlation claim needs x, y"):
        Claim(text="t", kind="correlation")


def test_rows_put_the_verdict_on_the_first_line():
    rows = greater(runs(CNN, MLP)).rows()
    assert len(rows) == 1 and len(rows[0]) == len(claims.HEADER)
    assert rows[0][:3] == ["CNN beats MLP", "supported", "CNN > MLP on test_accuracy"]
