"""Training precision (harness.backends.precision and where a run uses it): the warn-or-refuse table
of docs/backends.md, the record's and the environment's precision, a run's identity, and mixed
precision that still learns on both backends."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.fault_injection import write_suite
from harness import cli, environment, runner
from harness.backends import get_backend
from harness.backends.base import SilentObserver
from harness.backends.precision import judge
from harness.errors import UserError
from harness.runner import RunRequest
from harness.suite.overrides import Override
from harness.tasks import load_suite
from harness.tasks.training import load_splits

slow = pytest.mark.slow
NO_NATIVE_CPU = {"bf16": [], "fp16": []}


@pytest.fixture
def tiny(tmp_path):
    """A suite of one tiny MLP on 600 MNIST images (runs in seconds)."""
    return str(write_suite(tmp_path / "suites", models=1))


def harness_run(capsys, *argv):
    """Exit code and stderr of ``harness run ARGV``, in this process."""
    code = cli.main(["run", *argv])
    return code, capsys.readouterr().err


# --- the table of docs/backends.md -----------------------------------------------------------------

@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_fp32_and_native_low_precisions_run_silently(framework, device):
    assert judge("fp32", framework=framework, device=device, native=False) is None
    assert judge("bf16", framework=framework, device=device, native=True) is None
    if device == "cuda":
        assert judge("fp16", framework=framework, device=device, native=True) is None


@pytest.mark.parametrize("framework, why", [("torch", "PyTorch's CPU autocast runs few operations in float16"),
                                            ("tensorflow", "Keras' mixed_float16 policy runs slower than float32")])
@pytest.mark.parametrize("native", [False, True])
def test_fp16_on_a_cpu_is_refused_even_where_the_cpu_has_it(framework, why, native):
    with pytest.raises(UserError, match=f"train.precision=fp16 on a CPU is refused: {why}.*use train.precision=bf16"):
        judge("fp16", framework=framework, device="cpu", native=native)


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_bf16_on_a_cpu_without_it_warns_in_one_line_and_runs(framework):
    warning = judge("bf16", framework=framework, device="cpu", native=False)
    assert warning.startswith("warning: this CPU has no native bf16 (neither amx_bf16 nor avx512_bf16)")
    assert f"{framework} emulates it" in warning and "\n" not in warning


def test_bf16_on_a_gpu_without_it_is_refused_in_favour_of_fp16():
    with pytest.raises(UserError, match="this GPU has no bf16 arithmetic .*use train.precision=fp16 on it"):
        judge("bf16", framework="torch", device="cuda", native=False)


def test_the_backend_asks_the_cpus_flags(monkeypatch):
    backend = get_backend("torch")
    monkeypatch.setattr("harness.backends.base.native_cpu_precisions", lambda: {"bf16": ["amx_bf16"], "fp16": []})
    assert backend.native_precisions("cpu") == {"bf16"} and backend.check_precision("bf16", "cpu") is None
    monkeypatch.setattr("harness.backends.base.native_cpu_precisions", lambda: NO_NATIVE_CPU)
    assert backend.check_precision("bf16", "cpu").startswith("warning: this CPU has no native bf16")


# --- the command line: refused before anything is written, warned once -----------------------------

@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_fp16_on_cpu_exits_2_before_anything_is_written(reports, capsys, backend):
    code, err = harness_run(capsys, "suite=mlp_baseline", "profile=smoke", f"backend={backend}", "train.precision=fp16")
    assert code == 2 and "train.precision=fp16 on a CPU is refused" in err and len(err.strip().splitlines()) == 1
    assert not reports.exists()


def test_an_unknown_precision_names_the_allowed_ones(reports, capsys):
    code, err = harness_run(capsys, "suite=mlp_baseline", "profile=smoke", "train.precision=fp8")
    assert code == 2 and "train.precision" in err and "'fp32', 'bf16' or 'fp16'" in err


def test_a_precision_the_cpu_emulates_is_a_warning_printed_before_the_cells(tiny, monkeypatch):
    monkeypatch.setattr("harness.backends.base.native_cpu_precisions", lambda: NO_NATIVE_CPU)
    request = RunRequest(tiny, "smoke", overrides=[Override("train.precision", "bf16")])
    checked = runner.check(request, None)
    assert checked.warnings == [judge("bf16", framework="torch", device="cpu", native=False)]
    assert checked.environment["precision"] == "bf16"
    assert checked.environment["cpu_bf16"] == environment.collect()["cpu_bf16"]


# --- records and identity --------------------------------------------------------------------------

@slow
def test_the_record_carries_the_precision_and_bf16_does_not_resume_an_fp32_run(reports, tiny, mnist, console,
                                                                              stop_after):
    with pytest.raises(KeyboardInterrupt):  # an unfinished fp32 run: what a rerun of its settings resumes
        runner.run(RunRequest(tiny, "smoke", reports=reports), console, stop_after(0))
    bf16 = RunRequest(tiny, "smoke", reports=reports, overrides=[Override("train.precision", "bf16")])
    outcome = runner.run(bf16, console)
    with runner.ResultsStore(reports / "results.db") as store:
        [unfinished] = [run for run in store.runs("tiny") if run.run_id != outcome.run.run_id]
        records = [cell.record for cell in store.cells(outcome.run.run_id)]
    assert (outcome.ran, outcome.skipped) == (1, 0) and outcome.run.run_id != unfinished.run_id
    assert unfinished.config_hash != outcome.run.config_hash and unfinished.status == "running"
    assert [record["precision"] for record in records] == ["bf16"]
    assert outcome.run.environment["precision"] == "bf16"
    assert "precision" in (outcome.folder / "results.csv").read_text().splitlines()[0].split(",")


# --- mixed precision learns ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_splits():
    return load_splits("mnist", 0.1, 0, 3000, 1000)


@slow
@pytest.mark.parametrize("backend_name", ["torch", "tensorflow"])
@pytest.mark.parametrize("suite_name", ["mlp_baseline", "cnn_baseline"])
def test_bf16_training_learns_on_tiny_data(backend_name, suite_name, small_splits):
    suite = load_suite(suite_name, "smoke", [Override("train.precision", "bf16")])
    backend = get_backend(backend_name)
    model = backend.build(suite.models[0], seed=0, device="cpu")
    fit = backend.fit(model, small_splits, suite.train, epochs=1, seed=0, device="cpu", observer=SilentObserver())
    accuracy = float(np.mean(backend.predict(model, small_splits.x_test, device="cpu") == small_splits.y_test))
    # Chance is 10 %; float32 reaches about 85-90 % here after one epoch.
    assert accuracy > 0.7 and fit.history[0].val_accuracy > 0.7 and np.isfinite(fit.history[0].train_loss)


def test_keras_mixed_policy_keeps_the_output_layer_float32_and_gives_every_policy_back():
    from harness.backends.tensorflow.train import mixed_precision

    backend = get_backend("tensorflow")
    model = backend.build(load_suite("cnn_baseline", "smoke", []).models[0], seed=0, device="cpu")
    images = np.zeros((2, 28, 28, 1), dtype=np.float32)
    with mixed_precision(model, "bf16"):
        assert [layer.compute_dtype for layer in model.layers] == ["bfloat16"] * 4 + ["float32"]
        assert model.layers[0](images).dtype == "bfloat16" and model(images).dtype == "float32"
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}


def test_torch_bf16_step_runs_its_forward_pass_in_bf16_and_keeps_float32_weights():
    import torch

    from harness.backends.torch.model import images_on
    from harness.backends.torch.train import autocast

    backend = get_backend("torch")
    model = backend.build(load_suite("mlp_baseline", "smoke", []).models[0], seed=0, device="cpu")
    images = images_on(np.zeros((2, 28, 28, 1), dtype=np.float32), "cpu")
    with autocast("cpu", "bf16"):
        logits = model(images)
    assert logits.dtype == torch.bfloat16 and {p.dtype for p in model.parameters()} == {torch.float32}
    with autocast("cpu", "fp32"):
        assert model(images).dtype == torch.float32
