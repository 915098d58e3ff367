"""The command line: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.cli import main


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("args, message", [
    (["run", "suite=mlp_baseline", "train.epoch=3"],
     "harness: error: suite mlp_baseline: unknown key 'train.epoch'; allowed here: epochs, batch_size, optimizer, "
     "learning_rate, loss"),
    (["run", "suite=mlp_baseline", "train.epochs=-2"],
     "harness: error: suite mlp_baseline: train.epochs: Input should be greater than 0 (got -2)"),
    (["run", "suite=mlp_baseline", "backend=jax"],
     "harness: error: suite mlp_baseline: matrix.backends.0: Input should be 'torch' or 'tensorflow' (got 'jax')"),
    (["run", "suite=mlp_baseline", "profile=huge"],
     "harness: error: suite mlp_baseline: unknown profile 'huge'; profiles: smoke, nightly, full"),
    (["run", "suite=nope"], "harness: error: unknown suite 'nope'; suites: "),
    (["run", "profile=smoke"], "harness: error: missing suite=NAME; see harness list"),
    (["run", "suite=mlp_baseline", "container=k8s"], "harness: error: container='k8s': allowed: cpu, gpu"),
    (["frobnicate"], "harness: unknown command 'frobnicate'; commands: run, list, data, report"),
    (["report", "suite=mlp_baseline", "colour=red"], "harness: error: unknown option 'colour'; options: suite, run, reports"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, capsys, reports):
    code, out, err = run_cli(args + [f"reports={reports}"] if args[0] == "run" else args, capsys)
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1
    assert not reports.exists()


def test_bad_suite_file_is_one_line_exit_2(tmp_path, capsys, reports):
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\ntask = "classify"\n[profiles.smoke]\n[profiles.full]\n[[models]]\nname = "m"\n'
                   'layers = [{ type = "dense", units = 10 }]\n')
    code, _, err = run_cli(["run", f"suite={bad}", f"reports={reports}"], capsys)
    assert code == 2
    assert err == ("harness: error: suite bad: models['m']: layer 1 (Dense(10)): dense needs a flat input, "
                   "got 28x28x1: add a flatten layer before it\n")
    assert not reports.exists()


def test_list_shows_every_suite(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for name, mirrors in [("mlp_baseline", "Table 3.1"), ("mlp_depth", "Table 3.2"), ("cnn_baseline", "Table 4.1"),
                          ("cnn_depth", "Table 4.4"), ("mlp_vs_cnn", "Table 4.3")]:
        assert name in out and mirrors in out


def test_help_lists_commands_and_options(capsys):
    assert run_cli([], capsys)[0] == 2
    code, out, _ = run_cli(["run", "--help"], capsys)
    assert code == 0 and "profile" in out and "resume" in out


def test_report_without_results_is_a_user_error(capsys, reports):
    code, _, err = run_cli(["report", "suite=mlp_baseline", f"reports={reports}"], capsys)
    assert code == 2 and "no results store" in err


def test_python_dash_m_and_the_bare_suite_form(reports):
    # `harness suite=...` means run: the form `docker run harness suite=...` relies on.
    result = subprocess.run([sys.executable, "-m", "harness", "suite=mlp_baseline", "train.epochs=0",
                             f"reports={reports}"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "harness: error: suite mlp_baseline: train.epochs: Input should be greater than 0 (got 0)"


def test_a_torch_run_plan_never_imports_tensorflow(reports):
    code = ("import sys; from harness.runner import plan, RunRequest, check_frameworks;"
            "suite, task, cells = plan(RunRequest('mlp_baseline', 'smoke')); check_frameworks(task, cells);"
            "print('tensorflow' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


def test_loading_suites_imports_no_framework():
    code = ("import sys; from harness.commands.list import suites; suites();"
            "print('tensorflow' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_importing_the_harness_makes_openmp_threads_wait_passively_unless_the_user_chose():
    script = "import harness, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    chosen = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert chosen.stdout.strip() == "PASSIVE"
    kept = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert kept.stdout.strip() == "ACTIVE"
