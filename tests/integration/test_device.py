"""Real boards in miniature: sshd on 127.0.0.1, sessions in an arm64 rootfs under QEMU (device_board.py).

Deploy (docker load and chroot bundle), smoke and bench on the board, the
metrics service, a fleet with an unreachable board, a connection dropped in
the middle of a transfer, refused host keys, wrong user and key, a board of
another architecture, one without Docker, a full disk, and a slowdown that
device.regress must catch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from edgepack.commands import device as device_cli
from edgepack.config import Project, load_target
from edgepack.device.deploy import prepare_artifact, probe, runtime_argv
from edgepack.device.errors import (
    BoardAuthError,
    BoardDiskFullError,
    BoardIncompatibleError,
    ConnectionLostError,
    HostKeyError,
    RegressionError,
)
from edgepack.device.ssh import Board
from edgepack.errors import Reported
from edgepack.pipeline.context import Build
from edgepack.pipeline.image import publish
from edgepack.pipeline.plan import plan
from edgepack.pipeline.report import build_report, write_report
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner
from tests.integration.device_board import (
    REPO,
    DroppingProxy,
    SshBoard,
    board_userland,
    boards,
    free_port,
    make_board,
)
from tests.integration.test_build import copy_project

SLOW = """# Test only: a build that got slower (every inference call sleeps 100 ms).
import time

import onnxruntime

_run = onnxruntime.InferenceSession.run


def run(self, *args, **kwargs):
    time.sleep(0.1)
    return _run(self, *args, **kwargs)


onnxruntime.InferenceSession.run = run
"""


@pytest.fixture(scope="module", autouse=True)
def openssh() -> None:
    """The test boards need OpenSSH's server: missing, it fails in CI and skips locally (like docker)."""
    missing = [
        tool
        for tool in ("/usr/sbin/sshd", "ssh", "ssh-keygen", "ssh-keyscan", "unshare")
        if shutil.which(tool) is None
    ]
    if missing:
        problem = f"{', '.join(missing)} not found (run: edgepack doctor --fix)"
        if os.environ.get("CI"):
            pytest.fail(f"device tests need OpenSSH in CI: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of the project whose build cache is the repository's (content-addressed: safe to share)."""
    root = tmp_path_factory.mktemp("device-project")
    copy_project(root)  # what a build needs, as the build's own integration test copies it
    shutil.copytree(REPO / "baselines", root / "baselines")
    (REPO / "build" / "cache").mkdir(parents=True, exist_ok=True)
    (root / "build").mkdir()
    (root / "build" / "cache").symlink_to(REPO / "build" / "cache")
    proj = Project(root)
    target = load_target(proj, "rpi4")
    # The VAD job, not rpi4's default ASR one: the injected 100 ms slowdown (SLOW) must dominate a call's
    # latency, and a VAD chunk takes ~1 ms where an ASR chunk takes ~100 ms under QEMU, as noisy as that.
    b = Build(target=target, project=proj, runner=Runner(echo=False), model="models/silero-vad.yaml")
    records = execute(plan(b), b.cache)
    image = {r.name: r for r in records}["image"].outputs
    write_report(b, build_report(b, records, total_seconds=0.0, image_tar=publish(b, image)))
    return proj


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SshBoard]:
    userland = board_userland(REPO / "build" / "cache")
    with boards(tmp_path_factory.mktemp("boards"), userland, ("dock", True), ("bund", False)) as made:
        yield {b.name: b for b in made}


def one(board: SshBoard, project: Project, **changes: object) -> device_cli.Selection:
    s = board.spec
    sel = device_cli.Selection(
        target="rpi4",
        hosts=(f"root@127.0.0.1:{board.port}",),
        key=s.key,
        known_hosts=s.known_hosts,
        mode=s.mode,
        root=str(project.root),
    )
    return replace(sel, **changes)


def inventory(project: Project, fleet: dict[str, SshBoard], *extra: str) -> Path:
    lines = ["defaults:", "  user: root", "  target: rpi4", "boards:"]
    for b in fleet.values():
        lines += [
            f"  {b.name}:",
            "    address: 127.0.0.1",
            f"    port: {b.port}",
            f"    key: {b.spec.key}",
            f"    known_hosts: {b.spec.known_hosts}",
            f"    mode: {b.spec.mode}",
            "    labels: [lab]",
        ]
    path = project.root / "boards.yaml"
    path.write_text("\n".join([*lines, *extra]) + "\n")
    return path


def report(project: Project) -> dict:
    return json.loads((project.build_dir / "rpi4" / "report.json").read_text())


def test_deploy_with_docker_load_then_smoke_on_the_board(
    project: Project, fleet: dict[str, SshBoard]
) -> None:
    dock = fleet["dock"]
    (row,) = device_cli.deploy(one(dock, project))
    built = report(project)["image"]
    assert row.ok and row.result and row.result["changed"], row.detail
    assert row.result["transfer"]["sent"] > 10_000_000
    tagged = dock.docker_cli("image", "inspect", "--format", "{{.Id}}", "edgepack/rpi4:current")
    assert tagged.stdout.strip() == built["id"]
    assert not list((dock.root / "var/lib/edgepack/incoming").iterdir())  # nothing left behind

    (row,) = device_cli.smoke(one(dock, project), runs=1)
    assert row.ok, row.detail
    devices = report(project)["devices"][row.board]
    board = devices["smoke"]["board"]
    assert board["runtime"]["machine"] == "aarch64"
    # The board's CPU is a Cortex-A72: no dot product, no SVE.
    assert "asimddp" not in board["runtime"]["cpu_features"].split()
    assert devices["smoke"]["checks"] and all(c["ok"] for c in devices["smoke"]["checks"])
    assert report(project)["smoke"]["emulated"]["latency_ms"]["p50"] > 0  # the QEMU results stay beside


def test_bundle_deploy_bench_and_metrics_from_an_inventory(
    project: Project, fleet: dict[str, SshBoard]
) -> None:
    inv = inventory(project, fleet)
    sel = device_cli.Selection(boards=("bund",), inventory=str(inv), root=str(project.root))
    (row,) = device_cli.deploy(sel)
    assert row.ok, row.detail
    current = fleet["bund"].root / "var/lib/edgepack/rpi4/current"
    assert current.is_symlink() and (current / "rootfs/usr/bin/python3").exists()

    (row,) = device_cli.bench(sel, runs=1, warmup=0)
    assert row.ok, row.detail
    bench = report(project)["devices"]["bund"]["bench"]
    lat = bench["latency_ms"]
    assert lat["count"] > 0 and lat["p50"] <= lat["p95"] <= lat["p99"]
    assert 20 < bench["peak_rss_mb"] < 2000 and bench["cpu_percent"] > 0
    assert bench["thermal"]["after"]["zones_c"] == {"cpu-thermal": 51.54}
    assert bench["thermal"]["after"]["throttled_flags"] == ["under-voltage occurred", "throttling occurred"]
    device_cli.run_regress("rpi4", boards=["bund"], update_baseline=True, root=str(project.root))
    baseline = next((project.root / "baselines" / "rpi4").glob("*.json"))
    assert json.loads(baseline.read_text())["metrics"]["latency_p50_ms"] == lat["p50"]
    device_cli.run_regress("rpi4", boards=["bund"], update_baseline=False, root=str(project.root))  # passes

    # The runtime's metrics service on the board: Prometheus text on 127.0.0.1 (the bundle shares the
    # board's network), scraped while it runs.
    port = free_port()
    spec, target = fleet["bund"].spec, load_target(project, "rpi4")
    argv = runtime_argv(spec, target, ["serve", "--port", str(port), "--duration", "25", "--interval", "5"])
    served = threading.Thread(target=lambda: Board(spec, runner=Runner(echo=False)).run(argv, what="serve"))
    served.start()
    text = ""
    for _ in range(60):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            if "edgepack_inference_seconds_count" in text and " 0\n" not in text.split("_count")[1][:5]:
                break
        except OSError:
            pass
        time.sleep(0.5)
    served.join()
    assert 'edgepack_inference_seconds_bucket{le="+Inf"}' in text
    assert (
        f'sha256="{report(project)["model"]["sha256"]}"'
        in text.split("edgepack_model_info{")[1].split("}")[0]
    )
    assert "edgepack_resident_memory_bytes" in text and "edgepack_errors_total 0" in text


def test_a_fleet_run_fails_only_the_unreachable_board(project: Project, fleet: dict[str, SshBoard]) -> None:
    ghost = ["  ghost:", "    address: 127.0.0.1", f"    port: {free_port()}", "    labels: [lab]"]
    inv = inventory(project, fleet, *ghost)
    sel = device_cli.Selection(labels=("lab",), inventory=str(inv), root=str(project.root), jobs=3)
    with pytest.raises(Reported) as exit_info:
        device_cli.deploy(sel)
    assert exit_info.value.exit_code == 6
    rows = {
        r["board"]: r
        for r in (
            json.loads(x) for x in (project.build_dir / "rpi4" / "device-runs.jsonl").read_text().splitlines()
        )
        if r["kind"] == "deploy"
    }
    assert {"dock", "bund"} <= rows.keys() and "ghost" not in rows
    assert not rows["bund"]["changed"]  # already there: nothing sent


def slow_build(project: Project, tmp: Path) -> Project:
    """A second build of the same model whose inference is 100 ms slower per call."""
    built = report(project)
    (tmp / "ctx").mkdir()
    # A .pth line runs at every start (site, even under -I); Debian's own sitecustomize would shadow ours.
    (tmp / "ctx" / "edgepack_slow.py").write_text(SLOW)
    (tmp / "ctx" / "edgepack_slow.pth").write_text("import edgepack_slow\n")
    site = "/usr/local/lib/python3.11/dist-packages/"
    (tmp / "ctx" / "Dockerfile").write_text(
        f"FROM {built['image']['tag']}\nCOPY edgepack_slow.py edgepack_slow.pth {site}\n"
    )
    tag = "edgepack/rpi4:slow-test"
    subprocess.run(
        [
            "docker",
            "buildx",
            "build",
            "--builder",
            "default",
            "--platform",
            "linux/arm64",
            "--network",
            "none",
            "--pull=false",
            "--load",
            "-t",
            tag,
            str(tmp / "ctx"),
        ],
        check=True,
        capture_output=True,
    )
    slow = Project(tmp / "slow")
    shutil.copytree(
        project.root, slow.root, symlinks=True, ignore=shutil.ignore_patterns("image.tar", "deploy")
    )
    out = slow.build_dir / "rpi4"
    subprocess.run(["docker", "save", "--output", str(out / "image.tar"), tag], check=True)
    info = json.loads(
        subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=True).stdout
    )[0]
    built["image"].update(id=info["Id"], tag=tag, bytes=info["Size"])
    (out / "report.json").write_text(json.dumps(built))
    return slow


def test_a_dropped_connection_keeps_the_previous_deployment_and_the_next_deploy_resumes(
    project: Project, fleet: dict[str, SshBoard], tmp_path: Path
) -> None:
    slow = slow_build(project, tmp_path)
    bund = fleet["bund"]
    before = (bund.root / "var/lib/edgepack/rpi4/current").readlink()
    proxy = DroppingProxy(bund.port, drop_after=8_000_000)
    known = tmp_path / "known_hosts"
    key_line = Path(bund.spec.known_hosts).read_text().split(" ", 1)[1]
    known.write_text(f"[127.0.0.1]:{proxy.port} {key_line}")
    cut = replace(one(bund, slow), hosts=(f"root@127.0.0.1:{proxy.port}",), known_hosts=str(known))
    try:
        with pytest.raises(Reported) as exit_info:
            device_cli.deploy(cut)
    finally:
        proxy.close()
    assert exit_info.value.exit_code == 6 and proxy.dropped.is_set()
    assert (bund.root / "var/lib/edgepack/rpi4/current").readlink() == before  # the old one still runs
    parts = list((bund.root / "var/lib/edgepack/incoming").glob("*.part"))
    partial = parts[0].stat().st_size if len(parts) == 1 else -1
    assert 0 < partial < 20_000_000
    info = Board(bund.spec, runner=Runner(echo=False)).run(
        runtime_argv(bund.spec, load_target(project, "rpi4"), ["info"]), what="info"
    )
    assert json.loads(info.stdout)["machine"] == "aarch64"

    (row,) = device_cli.deploy(one(bund, slow))  # direct: the rest of the file, then the switch
    assert row.ok, row.detail
    assert row.result["transfer"]["resumed_from"] == partial < row.result["transfer"]["bytes"], row.result
    assert (bund.root / "var/lib/edgepack/rpi4/previous").readlink() == before

    # A regression that must be caught: the slow build, benchmarked on the same board.
    (row,) = device_cli.bench(one(bund, slow), runs=1, warmup=0)
    assert row.ok, row.detail
    shutil.copytree(project.root / "baselines", slow.root / "baselines", dirs_exist_ok=True)
    with pytest.raises(RegressionError, match=r"latency_p50_ms [\d.]+ -> [\d.]+ \(\+\d+\.\d%; threshold"):
        device_cli.run_regress("rpi4", boards=[row.board], update_baseline=False, root=str(slow.root))


def test_unknown_and_changed_host_keys_are_refused_with_the_fingerprint(
    project: Project, fleet: dict[str, SshBoard], tmp_path: Path
) -> None:
    dock, target = fleet["dock"], load_target(project, "rpi4")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with (
        pytest.raises(HostKeyError) as unknown,
        Board(replace(dock.spec, known_hosts=str(empty)), runner=Runner(echo=False)) as board,
    ):
        probe(board, target)
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(dock.dir / "host_ed25519.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert "unknown" in unknown.value.message and fingerprint in unknown.value.message
    assert f"ssh-keyscan -p {dock.port} 127.0.0.1" in unknown.value.hint

    other = tmp_path / "other_host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(
        f"[127.0.0.1]:{dock.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n"
    )
    with (
        pytest.raises(HostKeyError) as exc,
        Board(replace(dock.spec, known_hosts=str(changed)), runner=Runner(echo=False)) as board,
    ):
        probe(board, target)
    assert "CHANGED" in exc.value.message and fingerprint in exc.value.message
    assert f"ssh-keygen -R '[127.0.0.1]:{dock.port}'" in exc.value.hint


def test_wrong_user_wrong_key_no_docker_and_full_disk(
    project: Project, fleet: dict[str, SshBoard], tmp_path: Path
) -> None:
    dock, bund, target = fleet["dock"], fleet["bund"], load_target(project, "rpi4")
    runner = Runner(echo=False)
    with (
        pytest.raises(BoardAuthError, match="refused user 'pi'"),
        Board(replace(dock.spec, user="pi"), runner=runner) as board,
    ):
        probe(board, target)
    with (
        pytest.raises(BoardAuthError),
        Board(replace(dock.spec, key=str(bund.dir / "user_ed25519")), runner=runner) as board,
    ):
        probe(board, target)
    with pytest.raises(Reported) as no_docker:
        device_cli.deploy(one(bund, project, mode="docker"))
    assert no_docker.value.exit_code == 6
    small = bund.root / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(small)], check=True)
    try:
        with Board(replace(bund.spec, dir="/small"), runner=runner) as board:
            artifact = prepare_artifact(project, target, mode="bundle", runner=runner)
            from edgepack.device.deploy import deploy

            with pytest.raises(BoardDiskFullError, match=r"has \d+ MB free in /small .* nothing was sent"):
                deploy(board, target, artifact)
        assert not list(small.rglob("*.part"))
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_board_of_another_architecture_is_refused_before_any_transfer(
    project: Project, tmp_path: Path
) -> None:
    userland = board_userland(REPO / "build" / "cache")
    board = make_board(tmp_path, userland, name="x86", docker=False, arm64=False)
    try:
        with pytest.raises(Reported) as exit_info:
            device_cli.deploy(one(board, project))
        assert exit_info.value.exit_code == 6
        assert not Path(board.spec.dir).exists()  # not even a folder was made
    finally:
        board.stop()


def test_the_connection_lost_error_names_what_to_do() -> None:
    assert ConnectionLostError("x", hint="Run the same command again.").exit_code == 6
    assert BoardIncompatibleError("x").exit_code == 6
