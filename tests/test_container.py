"""The Docker launcher: its pure parts without a daemon, then the CPU image end to end where a daemon answers.

The end-to-end tests (marker ``container``) build ``harness:cpu`` from this checkout once per session,
with the layer cache (a cold build takes about 6 minutes on a 2-core machine, a cached one seconds),
and run smoke suites in it: as ``docker run harness suite=...`` does (with the reports mounted, and
with no volume and no network), through ``launch``, killed halfway then resumed, and on a Ray cluster
of three containers (docker/ray-compose.yml). Without a reachable daemon (or, for the Ray cluster,
without Docker Compose) they are skipped, saying why.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import threading
import time
import tomllib
from pathlib import Path

import pytest

from harness import container
from harness.container import builder, context, daemon, datasets, images, launcher
from harness.errors import UserError

# --- without a daemon -----------------------------------------------------------------------------


def test_container_command_drops_the_options_that_only_mean_something_on_the_host():
    args = ["suite=mlp_baseline", "container=cpu", "profile=smoke", "reports=/home/me/reports", "seed=3"]
    assert launcher.container_command(args) == ["run", "suite=mlp_baseline", "profile=smoke", "seed=3"]


def test_run_options_mount_reports_and_data_and_pass_the_image_id():
    options = launcher.run_options(container.FLAVOURS["cpu"], "sha256:feed", Path("/h/reports"),
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
    options = launcher.run_options(container.FLAVOURS["gpu"], "sha256:feed", Path("/r"), Path("/d"), None)
    [request] = options["device_requests"]
    assert (request["Count"], request["Capabilities"]) == (-1, [["gpu"]])
    assert "user" not in options  # None: the image's own non-root user


def test_host_ids_are_this_process_uid_and_gid():
    assert launcher.host_ids() == (os.getuid(), os.getgid())


def test_the_container_user_is_the_host_user_unless_that_is_root(tmp_path):
    reports = tmp_path / "reports"
    assert launcher.container_user(reports, (0, 0)) == launcher.ROOT_HOST_USER == (65534, 65534)  # to be made
    reports.mkdir()
    owner = reports.stat()
    assert launcher.container_user(reports, (1234, 5678)) == (1234, 5678)
    assert launcher.container_user(reports, None) is None  # off POSIX: the image's own user
    if owner.st_uid == 0:
        assert launcher.container_user(reports, (0, 0)) == launcher.ROOT_HOST_USER
    if os.geteuid() != 0:
        pytest.skip("giving the reports folder to another user needs root")
    os.chown(reports, 1234, 5678)  # `sudo harness run` in a user's checkout: the files stay the user's
    assert launcher.container_user(reports, (0, 0)) == (1234, 5678)


def test_root_may_launch_again_into_the_folder_its_last_container_wrote_but_not_into_roots(tmp_path, monkeypatch,
                                                                                           console):
    # A rerun after a killed container finds the reports folder the first launch made and gave to
    # nobody: it runs as nobody again. A root-owned folder is refused (its owner never changes).
    if os.geteuid() != 0:
        pytest.skip("owning a folder as nobody needs root")

    class Reached(Exception):
        pass

    def no_daemon():
        raise Reached

    monkeypatch.setattr(launcher, "client", no_daemon)
    monkeypatch.setattr(launcher, "host_ids", lambda: (0, 0))
    reports = tmp_path / "reports"
    reports.mkdir()
    os.chown(reports, *launcher.ROOT_HOST_USER)
    with pytest.raises(Reached):
        container.launch("cpu", ["suite=pca"], reports_dir=reports, data_dir=tmp_path, console=console)
    assert (reports.stat().st_uid, reports.stat().st_gid) == launcher.ROOT_HOST_USER
    os.chown(reports, 0, 0)
    with pytest.raises(UserError, match="belongs to root"):
        container.launch("cpu", ["suite=pca"], reports_dir=reports, data_dir=tmp_path, console=console)
    assert reports.stat().st_uid == 0


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(UserError, match=r"container='tpu': allowed: cpu, gpu"):
        container.flavour("tpu")


def test_exit_summary_tells_a_kill_from_a_failure_and_says_where_finished_cells_are():
    reports = Path("/h/reports")
    assert launcher.exit_summary("cpu", 137, False, reports) == (
        "the cpu container was killed (exit 137); the cells it finished are kept in /h/reports "
        "and the same command resumes")
    assert launcher.exit_summary("gpu", 137, True, reports).startswith(
        "the gpu container was killed: out of memory (exit 137);")
    assert launcher.exit_summary("cpu", 2, False, reports).startswith("the cpu container failed (exit 2);")


def test_failure_message_is_one_line_then_the_indented_log_tail():
    message = daemon.failure_message("the cpu container failed (exit 2)", ["", "loading", "harness: error: x"])
    assert message.splitlines() == [
        "the cpu container failed (exit 2)",
        "  last 2 line(s) of its log:",
        "    loading",
        "    harness: error: x",
    ]
    assert daemon.failure_message("built", []) == "built"


def test_log_lines_joins_chunks_split_mid_line_and_mid_character():
    text = "épochs 1/2\r\nepoch 2\rdone\n".encode()
    chunks = [text[:1], text[1:9], text[9:20], text[20:]]  # the first cut splits the two-byte 'é'
    assert list(launcher.log_lines(chunks)) == ["épochs 1/2", "epoch 2", "done"]
    assert list(launcher.log_lines([b"no newline at the end"])) == ["no newline at the end"]


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
    assert [wheel.name for wheel in context.cpu_torch_wheels([tmp_path, tmp_path])] == [names[0]]


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
    context.write_build_context(root, "Dockerfile.cpu", {"docker/certs/launcher-ca.crt": ca}, out)
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
    monkeypatch.setattr(context, "find_links_dirs", lambda: [links])
    root = tmp_path / "checkout"
    (root / "wheelhouse").mkdir(parents=True)
    assert context.context_extras(root, container.FLAVOURS["cpu"]) == {
        "docker/certs/launcher-ca.crt": bundle, f"wheelhouse/{wheel.name}": wheel}
    # The GPU image must not get the CPU wheel; a wheelhouse that has torch needs none.
    assert context.context_extras(root, container.FLAVOURS["gpu"]) == {"docker/certs/launcher-ca.crt": bundle}
    (root / "wheelhouse" / wheel.name).write_bytes(b"")
    assert f"wheelhouse/{wheel.name}" not in context.context_extras(root, container.FLAVOURS["cpu"])


def test_checkout_is_found_from_the_package_or_the_working_folder(tmp_path, monkeypatch):
    repository = Path(images.__file__).resolve().parents[2]
    assert images.checkout() == repository  # this test runs from a checkout
    monkeypatch.setattr(images, "__file__", str(tmp_path / "site-packages" / "harness" / "container" / "images.py"))
    monkeypatch.chdir(tmp_path)
    assert images.checkout() is None
    monkeypatch.chdir(repository)
    assert images.checkout() == repository


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
        builder.ensure_base_image(Client())
    assert str(caught.value) == (
        "base image debian:bookworm-slim is not here and cannot be pulled (Get https://registry-1.docker.io/v2/: "
        "dial tcp: no such host); make it from Debian's archive with scripts/bootstrap-base-image")


REPOSITORY = Path(__file__).resolve().parent.parent


def test_the_manifest_the_image_build_checks_is_the_harness_sha256_table():
    assert (REPOSITORY / datasets.MANIFEST).read_text() == datasets.manifest_text()
    line = "mnist mnist train-images-idx3-ubyte ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    assert line in datasets.manifest_text().splitlines()
    assert "fashion_mnist fashion-mnist " in datasets.manifest_text()  # Debian's folder name, where the harness looks


def test_only_verified_datasets_go_into_the_build_context(tmp_path, mnist):
    from harness import data

    cache = data.data_dir()
    copy = tmp_path / "cache"
    (copy / "mnist").mkdir(parents=True)
    for file in data.DATASETS["mnist"].files:
        (copy / "mnist" / file).symlink_to(cache / "mnist" / file)
    (copy / "fashion_mnist").mkdir()
    for file in data.DATASETS["fashion_mnist"].files:
        (copy / "fashion_mnist" / file).write_bytes(b"not the real bytes")
    assert datasets.verified(copy) == ["mnist"]
    assert datasets.context_files(["mnist"], copy) == {
        f"docker/datasets/mnist/{file}": copy / "mnist" / file for file in data.DATASETS["mnist"].files}


def test_the_frameworks_layer_is_keyed_on_the_framework_extras_alone():
    import sys

    def lines(*args: str) -> list[str]:
        proc = subprocess.run([sys.executable, str(REPOSITORY / "docker" / "requirements.py"), *args],
                              capture_output=True, text=True, check=True)
        return proc.stdout.splitlines()

    pyproject = str(REPOSITORY / "pyproject.toml")
    frameworks = lines("--extras-only", pyproject, "torch,tensorflow")
    assert [line.split("=")[0].split(">")[0] for line in frameworks] == ["torch", "tensorflow-cpu"]
    everything = lines(pyproject, "torch,tensorflow,ray")
    assert everything[0].startswith("setuptools")  # the harness installs without build isolation
    assert set(frameworks) < set(everything) and any(line.startswith("ray") for line in everything)
    # `all = ["harness[torch,...]"]` names the project itself: expanded into those extras' requirements.
    extras = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    [self_reference] = extras["all"]
    named = self_reference.split("[", 1)[1].rstrip("]")
    assert lines("--extras-only", pyproject, "all") == lines("--extras-only", pyproject, named)
    assert "torch==2.13.0" in lines("--extras-only", pyproject, "all")


def run_datasets_script(tmp_path, names: str, content: bytes) -> subprocess.CompletedProcess:
    """docker/datasets.sh on a one-file dataset ``tiny`` staged with ``content``; its SHA-256 is that of b"abc"."""
    staged, dest = tmp_path / "staged", tmp_path / "share"
    (staged / "tiny").mkdir(parents=True, exist_ok=True)
    (staged / "tiny" / "a-file").write_bytes(content)
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256(b"abc")
    (staged / "MANIFEST").write_text(f"# dataset folder file sha256\ntiny tiny-folder a-file {sha}\n")
    return subprocess.run(["sh", str(REPOSITORY / "docker" / "datasets.sh"), names], capture_output=True, text=True,
                          env={**os.environ, "DATASETS_SRC": str(staged), "DATASETS_DEST": str(dest)})


def test_the_image_build_keeps_a_staged_dataset_gzipped_where_the_harness_looks(tmp_path):
    import gzip

    proc = run_datasets_script(tmp_path, "tiny", b"abc")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"datasets.sh: tiny verified and installed in {tmp_path / 'share' / 'tiny-folder'}\n"
    assert gzip.decompress((tmp_path / "share" / "tiny-folder" / "a-file.gz").read_bytes()) == b"abc"
    assert run_datasets_script(tmp_path / "none", "", b"abc").returncode == 0  # DATASETS= leaves them out
    assert not list((tmp_path / "none" / "share").iterdir())


def test_the_image_build_refuses_a_wrong_missing_or_unknown_dataset(tmp_path):
    proc = run_datasets_script(tmp_path, "tiny", b"abd")
    assert proc.returncode == 1
    assert "docker/datasets/tiny/a-file has the wrong SHA-256" in proc.stderr
    proc = run_datasets_script(tmp_path, "tiny,cifar", b"abc")
    assert (proc.returncode, proc.stderr.strip()) == (1, "datasets.sh: DATASETS: unknown dataset 'cifar'; known: tiny "
                                                         "(empty for none)")
    (tmp_path / "staged" / "tiny" / "a-file").unlink()
    proc = subprocess.run(["sh", str(REPOSITORY / "docker" / "datasets.sh"), "tiny"], capture_output=True, text=True,
                          env={**os.environ, "DATASETS_SRC": str(tmp_path / "staged"),
                               "DATASETS_DEST": str(tmp_path / "share")})
    assert proc.returncode == 1 and "docker/datasets/tiny/a-file is missing: run scripts/stage-datasets" in proc.stderr


def test_the_entrypoint_wants_the_heads_address_for_a_worker():
    proc = subprocess.run(["sh", str(REPOSITORY / "docker" / "entrypoint.sh"), "ray-worker", "--num-cpus=1"],
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stderr.strip()) == (
        2, "entrypoint: ray-worker needs the head's address first, e.g. ray-worker head:6379")


def test_the_kuberay_manifest_runs_the_gpu_image_unprivileged_with_gpus_and_a_data_volume():
    yaml = pytest.importorskip("yaml", reason="pyyaml (extra 'dev') reads the manifest")
    cluster, claim = yaml.safe_load_all((REPOSITORY / "deploy" / "kuberay.yaml").read_text())
    kinds = (cluster["apiVersion"], cluster["kind"], claim["kind"])
    assert kinds == ("ray.io/v1", "RayCluster", "PersistentVolumeClaim")
    head = cluster["spec"]["headGroupSpec"]
    [group] = cluster["spec"]["workerGroupSpecs"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # cells go to the GPU workers only
    for pod in (head["template"]["spec"], group["template"]["spec"]):
        [node] = pod["containers"]
        assert node["image"] == container.FLAVOURS["gpu"].tag
        assert pod["securityContext"]["runAsUser"] == launcher.IMAGE_USER[0]
        mounts = {mount["mountPath"]: mount["name"] for mount in node["volumeMounts"]}
        assert mounts["/data"] == "data" and "data" in {volume["name"] for volume in pod["volumes"]}
        assert node["livenessProbe"]["exec"]["command"][0] in ("ray", "python")
    [worker] = group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == worker["resources"]["requests"]["nvidia.com/gpu"] == "8"
    [reports] = [v for v in head["template"]["spec"]["volumes"] if v["name"] == "reports"]
    assert reports["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


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
        monkeypatch.setattr(launcher, "client", lambda: fake)
        monkeypatch.setattr(launcher, "build", lambda kind, console: "sha256:0123456789abcdef")
        monkeypatch.setattr(launcher, "prefetch", lambda *args, **kwargs: None)
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


def test_launch_as_root_runs_as_nobody_in_a_reports_folder_made_for_the_run(fake_launch, console):
    if os.geteuid() != 0:
        pytest.skip("the root case needs root")
    fake, folders = fake_launch(b"done\n", 0)
    folders["data_dir"].mkdir()
    (folders["data_dir"] / "mnist").mkdir()
    container.launch("cpu", ["suite=mlp_baseline"], console=console, **folders)
    [(_, _, options)] = fake.started
    assert options["user"] == "65534:65534"  # never root inside, and no account of the host
    assert folders["reports_dir"].stat().st_uid == 65534  # the folder made for this run
    assert folders["data_dir"].stat().st_uid == (folders["data_dir"] / "mnist").stat().st_uid == 0  # untouched
    assert "as 65534:65534" in console.file.getvalue()


def test_launch_as_root_never_changes_the_owner_of_what_exists(fake_launch, console):
    if os.geteuid() != 0:
        pytest.skip("the root case needs root")
    fake, folders = fake_launch(b"done\n", 0)
    reports = folders["reports_dir"]
    (reports / "mlp_depth" / "run").mkdir(parents=True)
    (reports / "results.db").write_text("db")
    folders["data_dir"].mkdir()
    before = {path: path.lstat().st_uid for path in (reports, *reports.rglob("*"), folders["data_dir"])}
    with pytest.raises(UserError, match=f"^reports={reports} belongs to root, and a container launched by root runs "
                                        "as uid 65534 .nobody., which cannot write it; the harness never changes"):
        container.launch("cpu", ["suite=mlp_baseline"], console=console, **folders)
    assert fake.started == []
    assert {path: path.lstat().st_uid for path in before} == before


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

    if not docker_client.images.list(name=images.BASE_IMAGE) and os.geteuid() == 0:
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
def data_cache(mnist, tmp_path_factory):
    """A dataset cache holding a verified copy of MNIST, to mount at /data.

    A copy, not the host's cache itself: launched as root, the launcher gives the mounted cache to the
    container's user, and the test must not change who owns the machine's cache.
    """
    from harness import data

    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(data.data_dir() / "mnist", cache / "mnist")
    cache.chmod(0o755)  # mktemp makes it private; the image's user must read it, as it reads a user's cache
    return cache


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
    assert b"from system folder" not in output  # the mounted cache came first; the image's copy was not needed
    folder, rows = results(reports, "mlp_baseline")
    [row] = rows
    assert (row["model"], row["params"], row["status"], row["epochs"]) == ("MLP Baseline Model", "1796010", "ok", "1")
    assert float(row["test_accuracy"]) > 85  # chance is 10%
    assert (folder / "results.csv").stat().st_uid == 1000  # the image's non-root user


@pytest.mark.container
@pytest.mark.slow
def test_the_image_runs_a_suite_with_no_volume_and_no_network(docker_client, cpu_image):
    """The mission's ``docker run harness suite=cnn_depth``: the datasets come from the image itself."""
    running = docker_client.containers.run(
        cpu_image, ["suite=cnn_depth", "profile=smoke", "model=CNN Baseline Model"], detach=True,
        network_disabled=True)
    try:
        status = running.wait(timeout=600)
        output = running.logs().decode()
    finally:
        running.remove(v=True, force=True)  # and its anonymous /data volume
    assert status["StatusCode"] == 0, output[-3000:]
    # Copied from the image's verified copy into the container's own cache, checked again on the way.
    assert "mnist: 4 verified file(s) from system folder /usr/share/datasets/mnist -> /data/mnist" in output
    assert "npm" not in output and "results: /app/reports/cnn_depth/" in output


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
    # The host user's, whoever launched; root on the host runs as nobody, in the reports folder made for it.
    expected = launcher.ROOT_HOST_USER[0] if os.getuid() == 0 else os.getuid()
    assert (folder / "results.csv").stat().st_uid == reports.stat().st_uid == expected
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
    [running] = [c for c in docker_client.containers.list(filters={"label": f"{images.LABEL}=cpu"})
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


# --- with a daemon: a Ray cluster of CPU containers (docker/ray-compose.yml) -----------------------


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) or ``docker-compose`` (v1), whichever is installed; None if neither."""
    try:
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.SubprocessError):
        pass
    return ["docker-compose"] if shutil.which("docker-compose") else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComposeCluster:
    """A running docker/ray-compose.yml project: ``run`` a compose subcommand, read the mounted reports."""

    def __init__(self, command: list[str], env: dict[str, str], reports: Path):
        self.command, self.env, self.reports = command, env, reports

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def nodes(self) -> list[dict[str, object]]:
        """Ray's alive nodes, as the head sees them: id, host name, address, CPUs."""
        script = ("import json, ray; ray.init(address='auto', logging_level='ERROR'); print(json.dumps(["
                  "{'id': n['NodeID'], 'host': n['NodeManagerHostname'], 'address': n['NodeManagerAddress'], "
                  "'cpus': n['Resources'].get('CPU', 0)} for n in ray.nodes() if n['Alive']]))")
        proc = self.run("exec", "-T", "head", "python", "-c", script, timeout=120)
        return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else []


@pytest.fixture
def ray_cluster(docker_client, cpu_image, tmp_path):
    """docker/ray-compose.yml up (a head and two one-CPU workers from harness:cpu), reports in a tmp folder."""
    compose = compose_command()
    if compose is None:
        pytest.skip("the Ray cluster test needs Docker Compose (scripts/start-docker-daemon installs docker-compose)")
    reports = tmp_path / "reports"
    reports.mkdir()
    if os.geteuid() == 0:
        os.chown(reports, *launcher.IMAGE_USER)  # the nodes run as the image's user, as on a user's machine
    else:
        reports.chmod(0o777)
    env = {**os.environ, "HARNESS_IMAGE": container.FLAVOURS["cpu"].tag, "HARNESS_REPORTS_DIR": str(reports),
           "HARNESS_USER": "1000:1000", "RAY_WORKER_CPUS": "1",
           "RAY_CLIENT_PORT": str(free_port()), "RAY_DASHBOARD_PORT": str(free_port())}
    command = [*compose, "-f", str(REPOSITORY / "docker" / "ray-compose.yml"), "-p", f"harnessraytest{os.getpid()}"]
    cluster = ComposeCluster(command, env, reports)
    try:
        up = cluster.run("up", "-d")
        assert up.returncode == 0, up.stderr[-3000:]
        deadline = time.monotonic() + 180
        while len(cluster.nodes()) < 3 and time.monotonic() < deadline:
            time.sleep(2)
        yield cluster
    finally:
        logs = cluster.run("logs", "--no-color", "--tail", "30").stdout
        print(logs[-6000:])  # shown by pytest when the test fails
        cluster.run("down", "-v", "--timeout", "5")


@pytest.mark.container
@pytest.mark.slow
def test_a_compose_ray_cluster_runs_every_cell_on_both_workers(ray_cluster):
    nodes = ray_cluster.nodes()
    assert sorted(node["cpus"] for node in nodes) == [0, 1, 1]  # the head takes no cells
    workers = [node for node in nodes if node["cpus"] == 1]
    # Nine cells of the smoke profile, made smaller still: the test is about where cells run.
    proc = ray_cluster.run("exec", "-T", "head", "harness", "run", "suite=mlp_depth", "profile=smoke",
                           "data.train_samples=600", "data.test_samples=200", "executor=ray", "ray_address=auto",
                           timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    folder, rows = results(ray_cluster.reports, "mlp_depth")
    assert len(rows) == 9 and len({row["model"] for row in rows}) == 9
    assert all(row["status"] == "ok" for row in rows)
    assert all(row["executor"] == "ray" for row in rows)

    def worker_of(value: str) -> int:
        [index] = [i for i, node in enumerate(workers) if value in (node["id"], node["host"], node["address"])]
        return index

    assert {worker_of(row["node"]) for row in rows} == {0, 1}  # both workers took cells
    assert (folder / "results.csv").stat().st_uid == 1000  # written by the image's user, not root
