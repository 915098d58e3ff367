"""``harness export mlflow``: stored runs logged to a live MLflow tracking server on 127.0.0.1 (a free
port, its own SQLite store and artifact folder) and read back through MLflow's client.

The server is the ``mlflow`` executable next to this Python, else $HARNESS_MLFLOW, else on PATH; the
test is skipped, saying why, where MLflow (the ``harness[mlflow]`` extra) is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.cells import CellResult
from harness.cli import main as cli_main
from harness.store import ResultsStore
from tests.history_runs import stored_run

mlflow = pytest.importorskip("mlflow", reason="needs MLflow: pip install 'harness[mlflow]'")
SERVER = (shutil.which("mlflow", path=str(Path(sys.executable).parent)) or os.environ.get("HARNESS_MLFLOW")
          or shutil.which("mlflow"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    if SERVER is None:
        pytest.skip("needs the mlflow executable to start a tracking server")
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    server = subprocess.Popen(
        [SERVER, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts")],
        stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail("the MLflow server did not start:\n" + (folder / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_a_run_is_exported_with_its_cells_params_epoch_metrics_tags_and_figures(tracking_uri, tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    stored_run(reports, "r1", 0, "box-a", monkeypatch=monkeypatch)
    figure = reports / "demo" / "r1" / "cells" / "c0" / "learning_curves.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(b"\x89PNG\r\n\x1a\n")
    # The first cell recorded its figure, as a path on the machine that ran it: found by name here.
    with ResultsStore(reports / "results.db") as store:
        first = store.cells("r1")[0]
        artifacts = {**first.result.artifacts, "figures": ["/elsewhere/c0/learning_curves.png"]}
        store.save_cell("r1", 0, first.cell, CellResult("ok", first.record, artifacts))

    assert cli_main(["export", "mlflow", f"tracking_uri={tracking_uri}", f"reports={reports}", "experiment=t1"]) == 0
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("t1")
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 1 + 4  # the harness run, and its four cells
    (parent,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and parent.data.tags["harness.run_id"] == "r1"
    assert parent.data.tags["env.machine"] == "box-a" and parent.info.status == "FINISHED"
    child = next(r for r in children if r.data.params["backend"] == "torch" and r.data.params["seed"] == "0")
    assert child.data.params["model"] == "MLP" and child.data.params["settings.train.epochs"] == "3"
    assert child.data.metrics["test_accuracy"] == 97.0 and child.data.metrics["params"] == 1000
    assert child.data.metrics["flops"] == 2000 and child.data.metrics["train_seconds"] > 0
    assert child.data.tags["env.git_commit"] == "0" * 40 and child.data.tags["harness.cell"].startswith("model=MLP")
    steps = client.get_metric_history(child.info.run_id, "epoch.train_loss")
    assert [(m.step, round(m.value, 3)) for m in steps] == [(1, 1.0), (2, 0.5), (3, 0.333)]
    assert [a.path for a in client.list_artifacts(child.info.run_id, "figures")] == ["figures/learning_curves.png"]

    # Exporting again adds nothing.
    assert cli_main(["export", "mlflow", f"tracking_uri={tracking_uri}", f"reports={reports}", "experiment=t1"]) == 0
    assert len(client.search_runs([experiment.experiment_id])) == 5


def test_without_a_tracking_uri_or_a_target_the_command_says_what_is_missing(tmp_path, capsys):
    assert cli_main(["export", "mlflow", f"reports={tmp_path}"]) == 2
    assert "missing tracking_uri=URI" in capsys.readouterr().err
    assert cli_main(["export", "wandb", "tracking_uri=x"]) == 2
    assert "targets: mlflow" in capsys.readouterr().err
