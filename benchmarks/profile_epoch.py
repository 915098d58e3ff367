"""Where an epoch's time goes: the PyTorch profiler over the harness's training loop and the plain loop.

    python benchmarks/profile_epoch.py [--model mlp_baseline|cnn_baseline|all] [--device cpu|cuda]
                                       [--samples N] [--top N] [--json FILE]

For each model, one epoch of ``--samples`` training images (a few dozen steps of 50) runs once
unprofiled (cuDNN's and cuBLAS's first calls, the CUDA graph's capture warm-up) and once under
``torch.profiler``, on each side: the harness's fit (the suite's model and settings, the fast path
with its CUDA graph on a GPU; for the CNN also without channels-last) and the plain eager loop of
benchmarks/plain_torch.py. Printed and
written per side: the wall seconds of the profiled epoch, the device's busy time (the sum of its
kernels' time: far below the wall time means the host, not the GPU, sets the pace), the kernels with
the most device time and the host operations with the most CPU self time (the profiler's own
overhead inflates those).
benchmarks/device_check.py runs this when bench_epoch's ratios are to be explained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch.autograd import DeviceType  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import plain_torch  # noqa: E402
from harness.backends import get_backend  # noqa: E402
from harness.backends.base import SilentObserver  # noqa: E402
from harness.backends.torch import train  # noqa: E402
from harness.backends.torch.train import synchronize  # noqa: E402
from harness.suite.overrides import Override  # noqa: E402
from harness.tasks import load_suite  # noqa: E402
from harness.tasks.training import suite_splits  # noqa: E402

if TYPE_CHECKING:
    from harness.data import Splits

MODELS = ("mlp_baseline", "cnn_baseline")


def harness_sides(suite_name: str, samples: int, device: str) -> tuple[dict[str, Callable[[], None]], "Splits"]:
    """Callables training the suite's first model for one epoch as a cell does (a fresh model each call):
    the fast path the harness chooses, and for a convolutional model the same without channels-last
    (measured on CPUs only when it was chosen), to see what that layout does on this device."""
    suite = load_suite(suite_name, "full", [Override("data.train_samples", samples, "profile_epoch"),
                                            Override("train.epochs", 1, "profile_epoch")])
    splits, backend, spec = suite_splits(suite), get_backend("torch"), suite.models[0]

    def runner(channels_last: bool | None) -> Callable[[], None]:
        def run() -> None:
            model = backend.build(spec, seed=0, device=device)
            plan = train.StepPlan.choose(model, suite.train, device)
            plan = plan if channels_last is None else replace(plan, channels_last=channels_last)
            train.fit(model, splits, None, [1.0], suite.train, epochs=1, seed=0, device=device,
                      observer=SilentObserver(), plan=plan)
        return run

    sides = {"harness": runner(None)}
    if train.StepPlan.choose(backend.build(spec, seed=0, device="cpu"), suite.train, device).channels_last:
        sides["harness, NCHW"] = runner(False)
    return sides, splits


def profiled(run, device: str, top: int) -> dict:
    """Run ``run`` once to warm up, then once under the profiler; its wall time, busy time and top entries."""
    run()
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as profiler:
        synchronize(device)
        started = time.perf_counter()
        run()
        synchronize(device)
        wall = time.perf_counter() - started
    events = profiler.key_averages()
    kernels = [event for event in events if event.device_type == DeviceType.CUDA]
    host = [event for event in events if event.device_type == DeviceType.CPU]
    return {
        "wall_seconds": wall,
        "device_busy_seconds": sum(event.self_device_time_total for event in kernels) / 1e6 if cuda else None,
        "kernels": top_entries(kernels, lambda event: event.self_device_time_total, top),
        "host": top_entries(host, lambda event: event.self_cpu_time_total, top),
    }


def top_entries(events, self_us, top: int) -> list[dict]:
    """The ``top`` events by ``self_us`` (microseconds), as name, calls and self time."""
    ranked = sorted(events, key=self_us, reverse=True)[:top]
    return [{"name": event.key, "calls": event.count, "self_us": round(self_us(event), 1)} for event in ranked]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all", choices=[*MODELS, "all"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=2500, help="training images of the profiled epoch")
    parser.add_argument("--top", type=int, default=12, help="entries listed per side")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    results = []
    for model in MODELS if args.model == "all" else [args.model]:
        sides, splits = harness_sides(model, args.samples, args.device)
        sides["plain"] = lambda: plain_torch.run_epoch(model, splits, device=args.device)  # noqa: B023
        for side, run in sides.items():
            found = {"model": model, "side": side, "steps": -(-len(splits.y_train) // 50)}
            results.append(found)
            try:
                found.update(profiled(run, args.device, args.top))
            except Exception as error:  # noqa: BLE001 - the profiler failing on one side leaves the others
                found["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
                print(f"{model} {side}: {found['error']}", flush=True)
                continue
            busy = found["device_busy_seconds"]
            print(f"{model} {side}: {found['wall_seconds']:.3f} s for {found['steps']} steps"
                  + (f", device busy {busy:.3f} s" if busy is not None else ""), flush=True)
            for kind in ("kernels", "host"):
                for entry in found[kind]:
                    print(f"  {kind:<8}{entry['self_us']:>12.1f} us  {entry['calls']:>6}x  {entry['name'][:90]}")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "samples": args.samples, "results": results},
                                        indent=2))
    return 1 if any("error" in found for found in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
