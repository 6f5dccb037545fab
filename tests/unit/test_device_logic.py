"""Deploy checks, board probes, thermals, thresholds and fleet rows: pure logic and the FakeRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepack.config import Project, load_target
from edgepack.device import bench, fleet, regress
from edgepack.device.deploy import Artifact, BoardFacts, check_board, parse_probe, run_script, runtime_argv
from edgepack.device.errors import (
    BoardDiskFullError,
    BoardIncompatibleError,
    BoardUnreachableError,
    HostKeyError,
)
from edgepack.device.inventory import parse_host
from edgepack.device.ssh import Board
from edgepack.errors import CommandError
from tests.conftest import ok

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def target():  # type: ignore[no-untyped-def]
    return load_target(Project(REPO), "rpi4")


def artifact(mode: str = "docker", size: int = 60_000_000, image: int = 165_000_000) -> Artifact:
    return Artifact(
        mode=mode,
        path=Path("/x.tar.gz"),
        sha256="0" * 64,
        bytes=size,
        image_id="sha256:" + "a" * 64,
        image_bytes=image,
        image="edgepack/rpi4",
        run="",
    )  # type: ignore[arg-type]


def facts(machine: str = "aarch64", docker: str = "20.10", free: int = 10**10) -> BoardFacts:
    return BoardFacts(machine=machine, kernel="6.1", docker=docker, current="", free={"dir": (free, "fs1")})


def test_probe_output_is_parsed() -> None:
    text = "machine=aarch64\nkernel=6.1.0\nfree_dir=1000 4096 abc\ndocker=24.0.5\nimage=sha256:ff\n"
    f = parse_probe(text, mode="docker")
    assert (f.machine, f.docker, f.current, f.free) == (
        "aarch64",
        "24.0.5",
        "sha256:ff",
        {"dir": (4096000, "abc")},
    )
    assert parse_probe("machine=aarch64\nrelease=releases/abc\n", mode="bundle").current == "releases/abc"


def test_another_architecture_is_refused_before_transfer(target) -> None:  # type: ignore[no-untyped-def]
    spec = parse_host("pi@b", target="rpi4")
    with pytest.raises(
        BoardIncompatibleError, match=r"is armv7l \(uname -m\) but target rpi4 is linux/arm64"
    ):
        check_board(facts(machine="armv7l"), spec, target, artifact())


def test_no_docker_points_to_bundle_mode(target) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BoardIncompatibleError) as exc:
        check_board(facts(docker=""), parse_host("pi@b", target="rpi4"), target, artifact())
    assert "mode: bundle" in exc.value.hint
    check_board(facts(docker=""), parse_host("pi@b", target="rpi4", mode="bundle"), target, artifact())


def test_a_full_disk_is_refused_with_the_numbers(target) -> None:  # type: ignore[no-untyped-def]
    spec = parse_host("pi@b", target="rpi4")
    with pytest.raises(BoardDiskFullError, match=r"has 100 MB free in /var/lib/edgepack but .* needs 242 MB"):
        check_board(facts(free=100_000_000), spec, target, artifact())


def test_bundle_run_script_reproduces_the_image_config() -> None:
    script = run_script(
        {
            "Env": ["PATH=/x", "EDGEPACK_THREADS=4"],
            "User": "1000:1000",
            "Entrypoint": ["/usr/bin/python3", "-I", "-m", "edgepack_runtime"],
            "Cmd": ["smoke"],
        },
        image_id="sha256:ab",
    )
    assert (
        "env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin EDGEPACK_THREADS=4"
        in script
    )
    assert 'chroot --userspec=1000:1000 "$root" /usr/bin/python3 -I -m edgepack_runtime "$@"' in script
    assert "PATH=/x" not in script and "${QEMU_CPU:+QEMU_CPU=$QEMU_CPU}" in script


def test_runtime_argv_per_mode(target) -> None:  # type: ignore[no-untyped-def]
    docker = runtime_argv(parse_host("pi@b", target="rpi4"), target, ["smoke"])
    assert docker[:6] == ["docker", "run", "--rm", "--network", "none", "--platform"]
    assert docker[-4:] == ["--env", "QEMU_CPU", "edgepack/rpi4:current", "smoke"]
    bundle = runtime_argv(parse_host("pi@b", target="rpi4", mode="bundle"), target, ["bench"])
    assert bundle == ["/var/lib/edgepack/rpi4/current/run", "bench"]


def test_ssh_failures_become_board_errors(fake_runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    known = tmp_path / "kh"
    known.write_text("")
    spec = parse_host("pi@b", target="rpi4", known_hosts=str(known))
    fake_runner.on(
        lambda a: a[0] == "ssh" and "uname" in a[-1],
        ok(stderr="ssh: connect to host b port 22: Connection refused\n", code=255),
    )
    with (
        pytest.raises(BoardUnreachableError, match="Connection refused"),
        Board(spec, runner=fake_runner) as b,
    ):
        b.run(["uname"], what="probe")
    fake_runner.on(
        lambda a: a[0] == "ssh" and "date" in a[-1],
        ok(
            stderr="No ED25519 host key is known for b and you have requested strict checking.\n"
            "Host key verification failed.\n",
            code=255,
        ),
    )
    fake_runner.on(lambda a: a[0] == "ssh-keyscan", ok("b ssh-ed25519 AAAA\n"))
    fake_runner.on(lambda a: a[0] == "ssh-keygen", ok("256 SHA256:abcdef b (ED25519)\n"))
    with pytest.raises(HostKeyError) as exc, Board(spec, runner=fake_runner) as b:
        b.run(["date"], what="probe")
    assert "ED25519 SHA256:abcdef" in exc.value.message and "ssh-keyscan -p 22 b" in exc.value.hint
    fake_runner.on(lambda a: a[0] == "ssh" and "false" in a[-1], ok(stderr="nope", code=1))
    with pytest.raises(CommandError), Board(spec, runner=fake_runner) as b:
        b.run(["false"], what="x")


def test_thermal_lines_and_throttle_bits() -> None:
    parsed = bench.parse_thermal("zone cpu-thermal 61250\nvc temp=61.3'C throttled=0x50005\n")
    assert parsed["zones_c"] == {"cpu-thermal": 61.25} and parsed["vcgencmd_c"] == 61.3
    assert parsed["throttled_flags"] == [
        "under-voltage",
        "throttled",
        "under-voltage occurred",
        "throttling occurred",
    ]


def thresholds() -> regress.Thresholds:
    return regress.load_thresholds(REPO / "baselines" / "thresholds.yaml")


def test_a_regression_needs_both_the_relative_and_the_absolute_threshold() -> None:
    t = thresholds()
    base = {"latency_p50_ms": 1.0, "peak_rss_mb": 80.0}
    assert not any(
        f.regressed for f in regress.compare("b", base, {"latency_p50_ms": 1.4, "peak_rss_mb": 84}, t)
    )
    (lat, rss) = regress.compare("b", base, {"latency_p50_ms": 1.6, "peak_rss_mb": 95}, t)
    assert lat.regressed and rss.regressed
    assert lat.line() == "b: latency_p50_ms 1 -> 1.6 (+60.0%; threshold: higher by more than 15% and 0.5)"


def test_drift_is_reported_when_every_run_is_worse() -> None:
    runs = [{"latency_ms": {"p50": v}} for v in (10.0, 10.5, 11.2, 12.0)]
    (note,) = regress.drift("b", runs, thresholds())
    assert note.startswith("b: latency_p50_ms drifts over the last 4 runs: 10 -> 10.5 -> 11.2 -> 12")
    assert regress.drift("b", runs[:2], thresholds()) == []


def test_the_regress_command_fails_with_metric_baseline_new_and_threshold(tmp_path: Path, target) -> None:  # type: ignore[no-untyped-def]
    project = Project(tmp_path)
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "thresholds.yaml").write_text(
        (REPO / "baselines" / "thresholds.yaml").read_text()
    )
    runs = tmp_path / "build" / "rpi4" / "device-runs.jsonl"
    runs.parent.mkdir(parents=True)
    entry = {"board": "b", "kind": "bench", "model": {"sha256": "f" * 64}, "latency_ms": {"p50": 2.0}}
    runs.write_text(json.dumps(entry) + "\n")
    regress.regress(project, target, update_baseline=True)
    runs.write_text(runs.read_text() + json.dumps({**entry, "latency_ms": {"p50": 4.0}}) + "\n")
    from edgepack.device.errors import RegressionError

    with pytest.raises(RegressionError, match=r"b: latency_p50_ms 2 -> 4 \(\+100.0%") as exc:
        regress.regress(project, target)
    assert exc.value.exit_code == 7


def test_one_failing_board_fails_its_row_only() -> None:
    specs = [parse_host(f"pi@b{i}", target="rpi4") for i in range(3)]

    def action(spec):  # type: ignore[no-untyped-def]
        if spec.address == "b1":
            raise BoardUnreachableError("board b1 is unreachable: no route.")
        if spec.address == "b2":
            raise RuntimeError("bug")
        return "deployed", {"ok": True}

    rows = fleet.run_fleet(specs, action, jobs=2)
    assert [(r.board, r.ok) for r in rows] == [("pi@b0", True), ("pi@b1", False), ("pi@b2", False)]
    assert rows[1].detail.startswith("board b1 is unreachable") and rows[2].detail == "RuntimeError: bug"
    assert fleet.exit_code(rows) == 6 and fleet.exit_code(rows[:1]) == 0
