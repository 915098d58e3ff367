"""The Docker launcher: its pure parts without a daemon, then the CPU image end to end where a daemon answers.

The end-to-end tests (marker ``container``) build ``harness:cpu`` from this checkout once per session,
with the layer cache (a cold build takes about 6 minutes on a 2-core machine, a cached one seconds),
and run smoke suites in it: as ``docker run harness suite=...`` does, through ``launch``, and killed
halfway then resumed. Without a reachable daemon they are skipped, saying why.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from harness import container
from harness.errors import UserError

# --- without a daemon -----------------------------------------------------------------------------


def test_container_command_drops_the_options_that_only_mean_something_on_the_host():
    args = ["suite=mlp_baseline", "container=cpu", "profile=smoke", "reports=/home/me/reports", "seed=3"]
    assert container.container_command(args) == ["run", "suite=mlp_baseline", "profile=smoke", "seed=3"]


def test_run_options_mount_reports_and_data_and_pass_the_image_id():
    options = container.run_options(container.FLAVOURS["cpu"], "sha256:feed", Path("/h/reports"),
                                    Path("/h/cache"), "1234:5678")
    assert options["volumes"] == {
        "/h/reports": {"bind": "/app/reports", "mode": "rw"},
        "/h/cache": {"bind": "/data", "mode": "rw"},
    }
    assert options["environment"] == {
        "HARNESS_IMAGE_ID": "sha256:feed", "HARNESS_REPORTS": "/app/reports", "HARNESS_DATA": "/data",
    }
    assert options["user"] == "1234:5678"
    assert options["labels"] == {"org.harness.kind": "cpu"}
    assert "device_requests" not in options


def test_run_options_give_the_gpu_image_every_gpu():
    options = container.run_options(container.FLAVOURS["gpu"], "sha256:feed", Path("/r"), Path("/d"), None)
    [request] = options["device_requests"]
    assert (request["Count"], request["Capabilities"]) == (-1, [["gpu"]])
    assert "user" not in options  # None: the image's own non-root user


def test_host_user_is_this_process_uid_and_gid():
    assert container.host_user() == f"{os.getuid()}:{os.getgid()}"


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(UserError, match=r"container='tpu': allowed: cpu, gpu"):
        container.flavour("tpu")


def test_exit_summary_tells_a_kill_from_a_failure_and_says_where_finished_cells_are():
    reports = Path("/h/reports")
    assert container.exit_summary("cpu", 137, False, reports) == (
        "the cpu container was killed (exit 137); the cells it finished are kept in /h/reports "
        "and the same command resumes")
    assert container.exit_summary("gpu", 137, True, reports).startswith(
        "the gpu container was killed: out of memory (exit 137);")
    assert container.exit_summary("cpu", 2, False, reports).startswith("the cpu container failed (exit 2);")


def test_failure_message_is_one_line_then_the_indented_log_tail():
    message = container.failure_message("the cpu container failed (exit 2)", ["", "loading", "harness: error: x"])
    assert message.splitlines() == [
        "the cpu container failed (exit 2)",
        "  last 2 line(s) of its log:",
        "    loading",
        "    harness: error: x",
    ]
    assert container.failure_message("built", []) == "built"


def test_log_lines_joins_chunks_split_mid_line_and_mid_character():
    text = "épochs 1/2\r\nepoch 2\rdone\n".encode()
    chunks = [text[:1], text[1:9], text[9:20], text[20:]]  # the first cut splits the two-byte 'é'
    assert list(container.log_lines(chunks)) == ["épochs 1/2", "epoch 2", "done"]
    assert list(container.log_lines([b"no newline at the end"])) == ["no newline at the end"]


def test_cpu_torch_wheels_takes_only_cpu_builds_for_the_image_python(tmp_path):
    names = [
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",  # the one
        "torch-2.13.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl",  # other Python
        "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",  # CUDA build
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_aarch64.whl",  # other machine
        "torchvision-0.28.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [wheel.name for wheel in container.cpu_torch_wheels([tmp_path, tmp_path])] == [names[0]]


def test_build_context_follows_dockerignore_and_adds_the_extras(tmp_path):
    pytest.importorskip("docker", reason="the Docker SDK (extra 'container') is not installed")
    root = tmp_path / "checkout"
    for name in ("Dockerfile.cpu", "harness/cli.py", "reports/old/results.csv", "reports/README.md",
                 ".venv/bin/python", "harness/__pycache__/cli.pyc"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / ".dockerignore").write_text("# comment\n.venv\n**/__pycache__\nreports/*\n!reports/README.md\n")
    (tmp_path / "bundle.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    ca = tmp_path / "cert.pem"
    ca.symlink_to(tmp_path / "bundle.pem")  # as the system bundle often is: the file must travel, not the link
    out = io.BytesIO()
    container.write_build_context(root, "Dockerfile.cpu", {"docker/certs/launcher-ca.crt": ca}, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        files = {member.name: member for member in tar.getmembers() if member.isfile()}
        assert sorted(files) == [".dockerignore", "Dockerfile.cpu", "docker/certs/launcher-ca.crt",
                                 "harness/cli.py", "reports/README.md"]
        assert tar.extractfile(files["docker/certs/launcher-ca.crt"]).read() == b"-----BEGIN CERTIFICATE-----\n"
        assert (files["docker/certs/launcher-ca.crt"].uid, files["docker/certs/launcher-ca.crt"].mode) == (0, 0o644)


def test_context_extras_bring_the_host_ca_bundle_and_a_cpu_torch_wheel(tmp_path, monkeypatch):
    links = tmp_path / "links"
    links.mkdir()
    wheel = links / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"")
    bundle = tmp_path / "ca.pem"
    bundle.write_text("pem")
    monkeypatch.setenv("HARNESS_CA_CERT", str(bundle))
    monkeypatch.setattr(container, "find_links_dirs", lambda: [links])
    root = tmp_path / "checkout"
    (root / "wheelhouse").mkdir(parents=True)
    assert container.context_extras(root, container.FLAVOURS["cpu"]) == {
        "docker/certs/launcher-ca.crt": bundle, f"wheelhouse/{wheel.name}": wheel}
    # The GPU image must not get the CPU wheel; a wheelhouse that has torch needs none.
    assert container.context_extras(root, container.FLAVOURS["gpu"]) == {"docker/certs/launcher-ca.crt": bundle}
    (root / "wheelhouse" / wheel.name).write_bytes(b"")
    assert f"wheelhouse/{wheel.name}" not in container.context_extras(root, container.FLAVOURS["cpu"])


def test_checkout_is_found_from_the_package_or_the_working_folder(tmp_path, monkeypatch):
    repository = Path(container.__file__).resolve().parent.parent
    assert container.checkout() == repository  # this test runs from a checkout
    monkeypatch.setattr(container, "__file__", str(tmp_path / "site-packages" / "harness" / "container.py"))
    monkeypatch.chdir(tmp_path)
    assert container.checkout() is None
    monkeypatch.chdir(repository)
    assert container.checkout() == repository


def test_no_daemon_is_a_user_error_that_says_so(monkeypatch):
    pytest.importorskip("docker", reason="the Docker SDK (extra 'container') is not installed")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(UserError, match=r"^no Docker daemon reachable at unix:///nonexistent/docker.sock \("):
        container.client()


def test_a_base_image_that_cannot_be_pulled_points_to_the_bootstrap_script():
    errors = pytest.importorskip("docker.errors", reason="the Docker SDK (extra 'container') is not installed")

    class NoRegistry:
        def get(self, name):
            raise errors.ImageNotFound(f"No such image: {name}")

        def pull(self, name):
            raise errors.APIError("Get https://registry-1.docker.io/v2/: dial tcp: no such host")

    class Client:
        images = NoRegistry()

    with pytest.raises(UserError) as caught:
        container.ensure_base_image(Client())
    assert str(caught.value) == (
        "base image debian:bookworm-slim is not here and cannot be pulled (Get https://registry-1.docker.io/v2/: "
        "dial tcp: no such host); make it from Debian's archive with scripts/bootstrap-base-image")


class FakeContainer:
    """What ``launch`` uses of a container: its log, its end, and its removal."""

    def __init__(self, log: bytes, status: int, oom: bool = False):
        self.log, self.status, self.removed = log, status, False
        self.attrs = {"State": {"OOMKilled": oom}}

    def logs(self, stream, follow):
        return iter([self.log[:7], self.log[7:]])

    def wait(self):
        return {"StatusCode": self.status}

    def reload(self):
        pass

    def remove(self, force):
        self.removed = True


class FakeDocker:
    def __init__(self, fake: FakeContainer):
        self.containers, self.fake, self.started = self, fake, []

    def run(self, image, command, detach, **options):
        self.started.append((image, command, options))
        return self.fake


@pytest.fixture
def fake_launch(monkeypatch, tmp_path):
    """``launch`` against a fake daemon: no build, no dataset fetching; returns (fake docker, kwargs)."""

    def make(log: bytes, status: int, oom: bool = False):
        fake = FakeDocker(FakeContainer(log, status, oom))
        monkeypatch.setattr(container, "client", lambda: fake)
        monkeypatch.setattr(container, "build", lambda kind, console: "sha256:0123456789abcdef")
        monkeypatch.setattr(container, "prefetch", lambda *args, **kwargs: None)
        return fake, {"reports_dir": tmp_path / "reports", "data_dir": tmp_path / "data"}

    return make


def test_launch_streams_the_log_and_returns_the_image_id(fake_launch, console):
    fake, folders = fake_launch(b"cell 1/1 ok\nresults: /app/reports/x\n", 0)
    image = container.launch("cpu", ["suite=mlp_baseline", "container=cpu"], console=console, user="1:2", **folders)
    assert image == "sha256:0123456789abcdef"
    [(started, command, options)] = fake.started
    assert (started, command, options["user"]) == (image, ["run", "suite=mlp_baseline"], "1:2")
    assert options["volumes"][str(folders["reports_dir"].resolve())]["bind"] == "/app/reports"
    assert folders["reports_dir"].is_dir()  # made before the mount, so Docker does not make it as root
    output = console.file.getvalue()
    assert "running harness run suite=mlp_baseline in harness:cpu (0123456789ab)" in output
    assert "cell 1/1 ok\nresults: /app/reports/x" in output
    assert fake.fake.removed


def test_launch_of_a_killed_container_raises_with_the_log_tail(fake_launch, console):
    fake, folders = fake_launch(b"".join(f"line {i}\n".encode() for i in range(30)), 137)
    with pytest.raises(UserError) as caught:
        container.launch("cpu", ["suite=mlp_depth"], console=console, **folders)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("the cpu container was killed (exit 137); the cells it finished are kept in ")
    assert lines[1:3] == ["  last 20 line(s) of its log:", "    line 10"] and lines[-1] == "    line 29"
    assert fake.fake.removed


# --- with a daemon: the CPU image end to end ------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client():
    try:
        return container.client()
    except UserError as error:
        pytest.skip(f"container tests need a Docker daemon: {error}")


@pytest.fixture(scope="session")
def cpu_image(docker_client):
    """``harness:cpu`` built from this checkout (cached layers make a rebuild cheap); its id."""
    from rich.console import Console

    if not docker_client.images.list(name=container.BASE_IMAGE) and os.geteuid() == 0:
        # A machine like CI's, with no image registry: make the base image from Debian's archive.
        script = Path(__file__).resolve().parent.parent / "scripts" / "bootstrap-base-image"
        subprocess.run([str(script)], check=True)
    started = time.monotonic()
    log = io.StringIO()
    try:
        image = container.build("cpu", Console(file=log, width=200))
    except UserError as error:
        pytest.fail(f"{error}\n{log.getvalue()[-3000:]}")
    print(f"harness:cpu built in {time.monotonic() - started:.0f} s: {image}")
    return image


@pytest.fixture(scope="session")
def data_cache(mnist):
    """The host's dataset cache, MNIST verified in it (the image fetches nothing itself)."""
    from harness import data

    return data.data_dir()


def results(reports: Path, suite: str) -> tuple[Path, list[dict[str, str]]]:
    [folder] = [path for path in (reports / suite).iterdir() if path.is_dir() and not path.is_symlink()]
    with open(folder / "results.csv") as handle:
        return folder, list(csv.DictReader(handle))


def stored_cells(reports: Path) -> list[tuple[str, str, str]]:
    """(run id, cell key, finished) of every stored cell, read without taking a write lock."""
    db = reports / "results.db"
    if not db.exists():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute("SELECT run_id, key, finished FROM cells ORDER BY position").fetchall()
    except sqlite3.OperationalError:  # the container has not made the tables yet
        return []
    finally:
        connection.close()


@pytest.mark.container
@pytest.mark.slow
def test_docker_run_of_the_image_runs_a_suite_into_the_mounted_reports(docker_client, cpu_image, data_cache,
                                                                      tmp_path):
    """What ``docker run -v $PWD/reports:/app/reports harness suite=...`` does: the entrypoint, the image's user."""
    reports = tmp_path / "reports"
    reports.mkdir()
    reports.chmod(0o777)  # the image's user (uid 1000) writes here, as into a user's own folder
    output = docker_client.containers.run(
        cpu_image, ["suite=mlp_baseline", "profile=smoke"], remove=True, stderr=True,
        volumes={str(reports): {"bind": "/app/reports", "mode": "rw"},
                 str(data_cache): {"bind": "/data", "mode": "ro"}})  # read-only: the cache is only read
    assert b"results: " in output
    folder, rows = results(reports, "mlp_baseline")
    [row] = rows
    assert (row["model"], row["params"], row["status"], row["epochs"]) == ("MLP Baseline Model", "1796010", "ok", "1")
    assert float(row["test_accuracy"]) > 85  # chance is 10%
    assert (folder / "results.csv").stat().st_uid == 1000  # the image's non-root user


@pytest.mark.container
@pytest.mark.slow
def test_launch_runs_a_suite_and_records_the_image_id(cpu_image, data_cache, tmp_path, console):
    from harness.store import ResultsStore

    reports = tmp_path / "reports"
    image = container.launch("cpu", ["suite=mlp_baseline", "profile=smoke"], reports_dir=reports,
                             data_dir=data_cache, console=console, datasets=["mnist"])
    # The checkout may have changed since the session's build (launch rebuilds then): the tag decides.
    assert image == container.image_id("cpu")
    folder, [row] = results(reports, "mlp_baseline")
    assert (row["params"], row["status"]) == ("1796010", "ok")
    assert (folder / "results.csv").stat().st_uid == os.getuid()  # the host user's, whoever launched
    with ResultsStore(reports / "results.db") as store:
        [run] = store.runs("mlp_baseline")
    assert run.environment["image_id"] == image and run.status == "complete"
    assert "results: /app/reports/mlp_baseline/" in console.file.getvalue()


@pytest.mark.container
@pytest.mark.slow
def test_a_killed_container_loses_no_cell_and_the_rerun_duplicates_none(docker_client, cpu_image, data_cache,
                                                                       tmp_path, console):
    reports = tmp_path / "reports"
    launch = dict(reports_dir=reports, data_dir=data_cache, console=console, datasets=["mnist"])
    # Nine cells of the smoke profile, made smaller still: the test is about cells, not accuracy.
    args = ["suite=mlp_depth", "profile=smoke", "data.train_samples=600", "data.test_samples=200"]
    failure: list[BaseException] = []

    def first_run():
        try:
            container.launch("cpu", args, **launch)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            failure.append(error)

    thread = threading.Thread(target=first_run)
    thread.start()
    deadline = time.monotonic() + 600
    while len(stored_cells(reports)) < 2 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    [running] = [c for c in docker_client.containers.list(filters={"label": f"{container.LABEL}=cpu"})
                 if any(m["Source"] == str(reports.resolve()) for m in c.attrs["Mounts"])]
    running.kill()
    thread.join(60)
    before = stored_cells(reports)
    assert 2 <= len(before) < 9, "the kill came too late to test anything"
    [error] = failure
    assert isinstance(error, UserError) and str(error).startswith("the cpu container was killed (exit 137)")

    container.launch("cpu", args, **launch)
    after = stored_cells(reports)
    folder, rows = results(reports, "mlp_depth")
    assert len(rows) == len(after) == 9 and len({row["model"] for row in rows}) == 9
    assert all(row["status"] == "ok" for row in rows)
    assert len({run_id for run_id, _, _ in after}) == 1  # resumed into the same run, not a new one
    assert set(before) <= set(after)  # the cells finished before the kill were kept, not run again
