"""What a result was measured on: harness version and commit, Python, frameworks, CPU, GPU, image."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import __version__


def git_commit(folder: Path | None = None) -> tuple[str | None, bool | None]:
    """The commit of the checkout holding the harness and whether its tree has uncommitted changes."""
    folder = folder or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return os.environ.get("HARNESS_GIT_COMMIT"), None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("HARNESS_GIT_COMMIT"), None


def commit_text(environment: dict[str, Any], length: int = 10, missing: str = "–", dirty: str = "*") -> str:
    """A run's commit as people read it: the first ``length`` characters of ``git_commit`` (``missing``
    without one), then ``dirty`` when the tree had uncommitted changes, since the commit alone then
    does not say what ran: ``abc1234567*``."""
    commit = str(environment.get("git_commit") or missing)[:length]
    return commit + (dirty if environment.get("git_dirty") else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: The CPU flags (Linux ``/proc/cpuinfo``) by which a CPU computes each low precision natively rather
#: than emulating it through float32 (docs/backends.md, "Precision").
NATIVE_PRECISION_FLAGS = {"bf16": ("amx_bf16", "avx512_bf16"), "fp16": ("amx_fp16", "avx512_fp16")}


def cpu_flags() -> set[str]:
    """The first CPU's feature flags; empty where ``/proc/cpuinfo`` is missing (not Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_cpu_precisions(flags: set[str] | None = None) -> dict[str, list[str]]:
    """For each low precision, the flags this CPU computes it with natively; an empty list: emulated."""
    flags = cpu_flags() if flags is None else flags
    return {precision: [flag for flag in wanted if flag in flags] for precision, wanted in NATIVE_PRECISION_FLAGS.items()}


def collect() -> dict[str, Any]:
    """The machine and software, without importing any framework (backends add their own part)."""
    commit, dirty = git_commit()
    info: dict[str, Any] = {
        "harness": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        # Whether a bf16 or fp16 run's timings measure the hardware or an emulation of it.
        **{f"cpu_{precision}": " ".join(flags) or "none" for precision, flags in native_cpu_precisions().items()},
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "hostname": platform.node(),
        "executable": sys.executable,
    }
    if os.environ.get("HARNESS_MACHINE"):
        # A stable name for the machine (a CI runner's host name changes every night): the trend
        # site's series are drawn per machine.
        info["machine"] = os.environ["HARNESS_MACHINE"]
    if os.environ.get("HARNESS_IMAGE_ID"):
        info["image_id"] = os.environ["HARNESS_IMAGE_ID"]
    return info
