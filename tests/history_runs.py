"""Stored runs made up for the history tests (merge, site, drift, MLflow export): a one-model suite on
two backends, two seeds a backend, with per-epoch history, repeated timings and a calibration, in the
shape ``harness run`` stores them; the machine is faked through ``$HARNESS_MACHINE`` as a second
machine would record it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness import environment
from harness.cells import Cell, CellResult
from harness.store import ResultsStore, RunInfo, write_run_files

SUITE = "demo"
START = datetime(2026, 3, 1, 2, 17, tzinfo=timezone.utc)
CONFIG = {"title": "Demo", "train": {"epochs": 3, "batch_size": 50}, "regression": {"fail": "test_accuracy:-1.0,train_seconds:+10%"}}


def stored_run(reports: Path, run_id: str, night: int, machine: str, seconds: float = 10.0, accuracy: float = 97.0,
               noise: float = 0.0, rng: random.Random | None = None, calibration: float = 0.05,
               status: str = "complete", monkeypatch=None) -> RunInfo:
    """A finished run ``night`` days after :data:`START`, its training taking about ``seconds`` (each
    epoch's time varied by ``noise``, a relative standard deviation, and the run as a whole too)."""
    rng = rng or random.Random(run_id)
    if monkeypatch is not None:
        monkeypatch.setenv("HARNESS_MACHINE", machine)
        env = environment.collect()
    else:
        env = {"machine": machine, "cpu": "EPYC", "cpu_cores": 2, "git_commit": f"{night:040x}", "git_dirty": False}
    env["git_commit"] = f"{night:040x}"
    env["calibration"] = {"version": 1, "seconds": calibration, "samples": [calibration * f for f in (0.98, 1.0, 1.03)]}
    created = (START + timedelta(days=night)).isoformat()
    run = RunInfo(run_id, SUITE, "nightly", "cafe01", created, None, "running", CONFIG, env)
    run_factor = 1 + rng.gauss(0, noise)
    with ResultsStore(reports / "results.db") as store:
        store.create_run(run)
        position = 0
        for backend in ("torch", "tensorflow"):
            for seed in (0, 1):
                epochs = [seconds / 3 * run_factor * (1 + rng.gauss(0, noise / 3)) for _ in range(3)]
                history = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_accuracy": 0.9 + e / 100,
                            "seconds": epochs[e]} for e in range(3)]
                record = {"model": "MLP", "backend": backend, "device": "cpu", "seed": seed, "params": 1000,
                          "flops": 2000, "test_accuracy": accuracy + seed / 10, "train_seconds": sum(epochs),
                          "seconds_to_target": epochs[0] * 2, "status": "ok", "error": ""}
                cell = Cell(SUITE, "classify", "MLP", backend, "cpu", seed, CONFIG, {})
                store.save_cell(run_id, position, cell, CellResult("ok", record, {"history": history}))
                position += 1
        store.update_run(run_id, status=status, finished=created)
        run = store.run(run_id)
        write_run_files(run.folder(reports), run, store.cells(run_id), ["model"])
    return run
