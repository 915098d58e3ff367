"""pytest-benchmark: one training step of each report model on the PyTorch backend.

    pytest benchmarks/test_train_step.py --benchmark-autosave
    pytest benchmarks/test_train_step.py --benchmark-compare --benchmark-compare-fail=median:10%
    pytest benchmarks/test_train_step.py -k "mlp_baseline"          (one suite's models)

Every model of every classification suite is timed once (models with the same layers are timed
once, under the first suite that declares them): forward, cross-entropy, backward and an Adam step
on a fixed random batch of BATCH images, the loop the backend runs per batch. The data is random
because a step's cost does not depend on the pixels, so the benchmark needs no dataset. Rounds are
fixed rather than time-boxed, so the heaviest models (Additional Model 8 of cnn_depth: about 77
GFLOP per step) take a known few seconds each.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from harness.suite.load import suite_names  # noqa: E402
from harness.tasks import load_suite  # noqa: E402

BATCH = 8
ROUNDS = 5


def report_models() -> list[tuple[str, object]]:
    """(id, spec) for each distinct model of the classification suites, in suite order."""
    found, seen = [], set()
    for name in suite_names():
        suite = load_suite(name, "full")
        if suite.task != "classify":
            continue
        for model in suite.models:
            layers = json.dumps([layer.model_dump() for layer in model.layers], sort_keys=True)
            if layers in seen:
                continue
            seen.add(layers)
            found.append((f"{name}:{model.name}", model))
    return found


MODELS = report_models()


@pytest.mark.parametrize("spec", [spec for _, spec in MODELS], ids=[ident for ident, _ in MODELS])
def test_train_step(benchmark, spec):
    from torch.nn import functional as F

    from harness.backends import get_backend
    from harness.backends.torch.model import images_on
    from harness.backends.torch.train import StepPlan, make_optimizer
    from harness.suite.schema import TrainSettings

    backend = get_backend("torch")
    model = backend.build(spec, seed=0, device="cpu")
    # The step the backend runs by default (train.fast): fused optimizer, channels-last convolutions.
    plan = StepPlan.choose(model, TrainSettings(), "cpu")
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, TrainSettings(), plan)
    generator = torch.Generator().manual_seed(0)
    # Channels-last like the datasets, converted the way the backend converts them.
    images = images_on(torch.rand(BATCH, *spec.input_shape, generator=generator).numpy(), "cpu", plan.channels_last)
    labels = torch.randint(0, 10, (BATCH,), generator=generator)
    model.train()

    def step() -> float:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())  # reading the loss waits for the step, as the training loop's sums do

    benchmark.group = "train_step"
    benchmark.extra_info.update({"params": spec.params, "forward_flops_per_sample": spec.flops, "batch": BATCH,
                                  "train_path": plan.describe()})
    loss = benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    assert backend.count_params(model) == spec.params
    assert loss == loss and loss > 0  # finite, positive: the step really trained
