"""Shape inference, parameter counts and FLOPs from the spec alone, for every model of the report."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.suite.spec import ModelSpec
from harness.tasks import load_suite

CLASSIFICATION_SUITES = ("mlp_baseline", "mlp_depth", "cnn_baseline", "cnn_depth", "mlp_vs_cnn")


def report_models():
    """Every distinct model of the report's classification tables, with the report's parameter count."""
    distinct = {}
    for name in CLASSIFICATION_SUITES:
        for model in load_suite(name).models:
            distinct[model.architecture] = model
    return list(distinct.values())


def test_all_twenty_report_models_match_the_report_exactly():
    models = report_models()
    assert len(models) == 20
    for model in models:
        assert model.params == model.reference.params, model.name


def test_cnn_baseline_shapes_match_the_report_summary():
    model = load_suite("cnn_baseline").models[0]
    assert model.shapes()[1:] == [(25, 25, 32), (11, 11, 64), (4, 4, 128), (2048,), (10,)]
    assert [params for _, _, params in model.summary()] == [544, 32832, 131200, 0, 20490]
    assert (model.depth, model.max_width) == (3, 128)


def test_mlp_depth_and_width_follow_the_report_definitions():
    model = load_suite("mlp_depth").model("Additional Model 4")
    assert model.hidden_widths == [224, 1984, 768, 1088, 384]
    assert (model.depth, model.max_width) == (5, 1984)


def test_flops_per_sample():
    mlp = load_suite("mlp_baseline").models[0]
    assert mlp.flops == 2 * (784 * 1000 + 1000 * 1000 + 1000 * 10)
    largest = load_suite("cnn_depth").model("Additional Model 8")
    # ENVIRONMENT.md: about 9.6 GFLOP per training sample (forward + backward ~ 3x forward)
    assert 3 * largest.flops / 1e9 == pytest.approx(9.6, abs=0.05)


def test_bonus_cnn_with_pooling():
    cnn = load_suite("mlp_vs_cnn").model("CNN Bonus Model")
    assert cnn.shapes()[1:3] == [(13, 13, 16), (6, 6, 16)]
    assert cnn.params == 6042


def _spec(*layers, input_shape=(28, 28, 1)):
    return ModelSpec(name="m", input_shape=input_shape, layers=list(layers))


def test_kernel_larger_than_input_is_an_error_naming_the_layer():
    with pytest.raises(ValidationError, match=r"layer 3 \(Conv\(8,5,1\)\): kernel 5 is larger than its 4x4 input"):
        _spec({"type": "conv2d", "filters": 4, "kernel": 13, "stride": 3},
              {"type": "conv2d", "filters": 4, "kernel": 3},
              {"type": "conv2d", "filters": 8, "kernel": 5},
              {"type": "flatten"}, {"type": "dense", "units": 10})


def test_dense_on_an_image_needs_flatten():
    with pytest.raises(ValidationError, match="dense needs a flat input, got 28x28x1: add a flatten layer"):
        _spec({"type": "dense", "units": 10})


def test_same_padding_keeps_size():
    spec = _spec({"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"}, {"type": "flatten"},
                 {"type": "dense", "units": 10})
    assert spec.shapes()[1] == (28, 28, 4)
    assert spec.params == (9 * 4 + 4) + (28 * 28 * 4 * 10 + 10)
