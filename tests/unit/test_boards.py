"""The boards besides rpi4, target selection, the shared cache's key lock and the bake file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from edgepack.config import Project, load_target, select_targets
from edgepack.errors import CommandError, ConfigError, SmokeTestError, ToolchainError
from edgepack.host import gpu
from edgepack.modelpipe.quantize import cpu_info
from edgepack.pipeline import bake
from edgepack.pipeline import parallel as multibuild
from edgepack.pipeline.executor import TargetRun
from edgepack.pipeline.image import ImageJob
from edgepack.pipeline.steps import Step, StepCache, execute
from edgepack_runtime.session import choose_providers
from tests.conftest import FakeRunner, ok
from tests.unit.conftest import write_target

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


# -- the targets ---------------------------------------------------------------------------------


def test_rpi5_emulates_a76_whose_dot_product_the_model_stage_plans_for() -> None:
    t = load_target(Project(REPO), "rpi5")
    assert (t.platform, t.qemu_cpu, t.cpu_model, t.emulated) == (
        "linux/arm64",
        "cortex-a76",
        "cortex-a76",
        True,
    )
    a76, a72 = cpu_info(t.cpu_model), cpu_info(load_target(Project(REPO), "rpi4").cpu_model)
    assert (a76.dotprod, a76.fp16) == (True, True) and (a72.dotprod, a72.fp16) == (False, False)


def test_jetson_runs_under_the_closest_qemu_cpu_and_plans_for_its_real_core() -> None:
    t = load_target(Project(REPO), "jetson-orin-nano")
    assert (t.qemu_cpu, t.cpu_model, t.threads) == ("cortex-a76", "cortex-a78ae", 6)
    assert cpu_info("cortex-a78ae").dotprod
    assert t.gpu is not None and t.gpu.providers == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert t.gpu.base_image.startswith("nvcr.io/nvidia/l4t-jetpack:")


def test_x86_box_is_native_with_its_own_locks() -> None:
    proj = Project(REPO)
    t = load_target(proj, "x86-box")
    assert (t.platform, t.qemu_cpu, t.emulated, t.binfmt, t.cpu_model) == (
        "linux/amd64",
        None,
        False,
        "",
        "x86-64-v3",
    )
    assert t.runs_on == "native (no emulation)"
    assert proj.lock_path(t, "debian").name == "debian-bookworm-amd64.json"
    assert proj.lock_path(t, "requirements").name == "requirements-py311-x86_64.txt"
    assert proj.lock_path(t, "debian").is_file() and proj.lock_path(t, "requirements").is_file()
    assert json.loads(proj.lock_path(t, "debian").read_text())["arch"] == "amd64"


def test_a_native_target_refuses_a_qemu_cpu(project: Project) -> None:
    text = (REPO / "targets/x86-box.yaml").read_text() + "qemu_cpu: cortex-a72\n"
    path = write_target(project, "bad", text)
    with pytest.raises(ConfigError) as err:
        load_target(project, "bad")
    line = text.splitlines().index("qemu_cpu: cortex-a72") + 1
    assert err.value.message == f"{path}:{line}: 'qemu_cpu' is set, but linux/amd64 runs natively (no QEMU)."
    assert "Remove qemu_cpu" in err.value.hint


def test_an_emulated_target_needs_a_qemu_cpu(project: Project) -> None:
    text = (REPO / "targets/rpi5.yaml").read_text().replace("qemu_cpu: cortex-a76\n", "")
    write_target(project, "bad", text)
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: missing required key 'qemu_cpu': linux/arm64 runs"):
        load_target(project, "bad")


def test_an_unknown_cpu_suggests_a_known_one(project: Project) -> None:
    text = (
        (REPO / "targets/jetson-orin-nano.yaml").read_text().replace("cpu: cortex-a78ae", "cpu: cortex-a78e")
    )
    write_target(project, "bad", text)
    with pytest.raises(ConfigError, match=r"CPU 'cortex-a78e' is not in resources/cpus\.yaml") as err:
        load_target(project, "bad")
    assert "Did you mean 'cortex-a78ae'?" in err.value.hint


def test_a_native_target_must_name_its_cpu(project: Project) -> None:
    write_target(project, "bad", (REPO / "targets/x86-box.yaml").read_text().replace("cpu: x86-64-v3\n", ""))
    with pytest.raises(ConfigError, match="missing required key 'cpu': a native target names its core"):
        load_target(project, "bad")


def test_an_unknown_execution_provider_is_rejected(project: Project) -> None:
    text = (
        (REPO / "targets/jetson-orin-nano.yaml").read_text().replace("CUDAExecutionProvider", "CudaProvider")
    )
    write_target(project, "bad", text)
    with pytest.raises(ConfigError, match=r"'gpu\.providers\.1' must be one of"):
        load_target(project, "bad")


# -- selecting targets ---------------------------------------------------------------------------


def test_all_selects_every_target_in_name_order() -> None:
    expected = ["jetson-orin-nano", "rpi-zero2w", "rpi4", "rpi5", "x86-box"]
    assert select_targets(Project(REPO), "all") == expected


def test_a_list_keeps_its_order_without_duplicates() -> None:
    assert select_targets(Project(REPO), " rpi5, rpi4,rpi5 ") == ["rpi5", "rpi4"]


def test_an_unknown_name_in_a_list_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as err:
        select_targets(Project(REPO), "rpi4,x86box")
    assert err.value.message == "unknown target 'x86box' in --target rpi4,x86box (no targets/x86box.yaml)."
    assert err.value.hint.startswith("Did you mean 'x86-box'? Known targets: jetson-orin-nano, rpi-zero2w")


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="--target is empty"):
        select_targets(Project(REPO), " , ")


# -- the step cache's lock on a key --------------------------------------------------------------


def slow_step(calls: list[str], *, name: str = "base", seconds: float = 0.2) -> Step:
    def action() -> dict[str, str]:
        calls.append(threading.current_thread().name)
        time.sleep(seconds)  # long enough for the other builds to find the key taken
        return {"out": name}

    return Step(name, "s", {"debian.lock": "same"}, action)


def test_a_step_shared_by_concurrent_builds_runs_once(tmp_path: Path) -> None:
    cache, calls = StepCache(tmp_path), []
    results: dict[str, bool] = {}

    def build(name: str) -> None:
        results[name] = execute([slow_step(calls)], cache)[0].cached

    threads = [threading.Thread(target=build, args=(n,), name=n) for n in ("rpi4", "rpi5", "jetson")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(results.values()) == [False, True, True]


def test_different_keys_do_not_wait_for_each_other(tmp_path: Path) -> None:
    """Each step's action waits, inside its key's lock, until the other's has started too.

    Had one key waited for the other's lock, only one action would ever reach
    the barrier and it would break (its timeout is for that failure only).
    """
    cache, events = StepCache(tmp_path), []
    both_running = threading.Barrier(2, timeout=30)
    failures: list[BaseException] = []

    def step(name: str) -> Step:
        def action() -> dict[str, str]:
            events.append(f"start {name}")
            both_running.wait()
            events.append(f"end {name}")
            return {"out": name}

        return Step(name, "s", {"debian.lock": "same"}, action)

    def build(s: Step) -> None:
        try:
            execute([s], cache)
        except BaseException as exc:  # a broken barrier: asserted in the test's own thread
            failures.append(exc)

    threads = [threading.Thread(target=build, args=(step(n),)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(events[:2]) == ["start a", "start b"] and sorted(events[2:]) == ["end a", "end b"]


def test_the_lock_excludes_another_process(tmp_path: Path) -> None:
    cache, calls = StepCache(tmp_path), []
    step = slow_step(calls)
    with cache.claim(step):
        pid = os.fork()
        if pid == 0:  # the child: a second build of the same key must not get the lock now
            import fcntl

            lock = next((tmp_path / "locks").iterdir())
            with lock.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os._exit(1)
                except BlockingIOError:
                    os._exit(0)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_failed_step_releases_its_key_and_leaves_no_stamp(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)

    def boom() -> dict[str, str]:
        raise SmokeTestError("no")

    step = Step("smoke", "s", {"x": "1"}, boom)
    with pytest.raises(SmokeTestError):
        cache.run(step)
    assert not cache.stamp(step).exists()
    calls: list[str] = []
    assert cache.run(slow_step(calls, name="smoke", seconds=0)) == ({"out": "smoke"}, False)


# -- the bake file -------------------------------------------------------------------------------


def job(target: str, platform: str, threads: str) -> ImageJob:
    tag = f"edgepack/{target}:0123456789ab"
    return ImageJob(
        target=target,
        tag=tag,
        context=Path(f"/p/build/{target}/context"),
        dockerfile=Path("/p/docker/runtime.Dockerfile"),
        platform=platform,
        tags=(tag, f"edgepack/{target}:latest"),
        labels={"io.edgepack.target": target, "org.opencontainers.image.version": "0.1.0"},
        build_args={"THREADS": threads, "PYTHON": "3.11"},
    )


def test_bake_file_matches_the_golden_file() -> None:
    jobs = [
        job("rpi5", "linux/arm64", "4"),
        job("x86-box", "linux/amd64", "4"),
        job("a.b", "linux/arm64", "6"),
    ]
    made = json.dumps(bake.bake_file(jobs), indent=2, sort_keys=True) + "\n"
    golden = GOLDEN / "bake.json"
    if os.environ.get("EDGEPACK_UPDATE_GOLDEN"):
        golden.write_text(made)
    assert made == golden.read_text(), "regenerate: EDGEPACK_UPDATE_GOLDEN=1 pytest tests/unit/test_boards.py"


def test_bake_argv_exact() -> None:
    argv = bake.bake_argv(
        file=Path("/p/build/bake.json"), targets=["rpi5", "x86-box"], metadata=Path("/m.json")
    )
    assert argv == [
        "docker",
        "buildx",
        "bake",
        "--builder",
        "default",
        "--file",
        "/p/build/bake.json",
        "--progress",
        "plain",
        "--metadata-file",
        "/m.json",
        "rpi5",
        "x86-box",
    ]


def test_bake_knows_which_builds_run_something(tmp_path: Path) -> None:
    runtime = REPO / "docker" / "runtime.Dockerfile"
    assert bake.run_lines(runtime, {"BASE": "base"}) == []  # bytecode made on the host: bake can build it
    (compiled,) = bake.run_lines(runtime, {"BASE": "base-compiled"})  # the image's Python compiles it
    assert runtime.read_text().splitlines()[compiled - 1].startswith("RUN ")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "ARG B=one\nFROM scratch AS one\nRUN a\nFROM scratch AS two\n  run b\n"
        "FROM scratch AS three\nCOPY --from=two /x /\nFROM ${B}\nCOPY c /\n"
    )
    assert bake.run_lines(dockerfile, {}) == [3]
    assert bake.run_lines(dockerfile, {"B": "three"}) == [5]
    assert bake.run_lines(dockerfile, {"B": "scratch"}) == []


def failing_bake(runner: FakeRunner, bad: str) -> None:
    """bake fails when the failing target is among those asked (it cancels the others)."""

    def is_bake(argv: list[str]) -> bool:
        return argv[:3] == ["docker", "buildx", "bake"]

    runner.on(lambda a: is_bake(a) and bad in a[11:], ok(stderr=f"ERROR: target {bad} failed", code=1))
    runner.on(is_bake, ok())


def test_a_failed_bake_is_retried_target_by_target(fake_runner: FakeRunner, tmp_path: Path) -> None:
    failing_bake(fake_runner, "rpi5")
    failures = multibuild.run_bake(
        ["rpi4", "rpi5", "x86-box"], file=tmp_path / "bake.json", runner=fake_runner
    )
    assert list(failures) == ["rpi5"] and isinstance(failures["rpi5"], CommandError)
    assert "target rpi5 failed" in failures["rpi5"].output
    assert [c[11:] for c in fake_runner.calls] == [
        ["rpi4", "rpi5", "x86-box"],
        ["rpi4"],
        ["rpi5"],
        ["x86-box"],
    ]


def test_a_bake_that_passes_runs_once(fake_runner: FakeRunner, tmp_path: Path) -> None:
    failing_bake(fake_runner, "none")
    assert multibuild.run_bake(["rpi4", "rpi5"], file=tmp_path / "b.json", runner=fake_runner) == {}
    assert len(fake_runner.calls) == 1


# -- results of several targets ------------------------------------------------------------------


def ran(name: str, seconds: float, cache: Path) -> multibuild.TargetBuild:
    return multibuild.TargetBuild(name, run=TargetRun(name, [], StepCache(cache), seconds=seconds))


def test_every_target_gets_a_row_and_the_failures_their_reason(project: Project, tmp_path: Path) -> None:
    good = ran("x86-box", 12.0, tmp_path)
    bad = ran("rpi5", 3.0, tmp_path)
    assert bad.run is not None
    bad.run.fail(
        "smoke", SmokeTestError("smoke test of edgepack/rpi5:1 failed because its outputs differ:\n  x")
    )
    report = {
        "image": {"tag": "edgepack/x86-box:1", "bytes": 2.5e8},
        "smoke": {"providers": ["CPUExecutionProvider"]},
    }
    rows = multibuild.summary_rows([good, bad], {"x86-box": report})
    assert rows[0][3:] == ("ok", "12.0", "edgepack/x86-box:1  250.0 MB, smoke on CPUExecutionProvider")
    assert rows[1][3:] == (
        "failed (smoke)",
        "3.0",
        "smoke test of edgepack/rpi5:1 failed because its outputs differ:",
    )
    assert multibuild.exit_code([good, bad]) == SmokeTestError.exit_code and multibuild.exit_code([good]) == 0
    written = json.loads(multibuild.write_failure(bad, project).read_text())
    assert (written["target"], written["ok"], written["failed_step"], written["exit_code"]) == (
        "rpi5",
        False,
        "smoke",
        5,
    )


# -- execution providers and the GPU variant -----------------------------------------------------


def test_the_runtime_takes_the_wanted_providers_it_has_and_falls_back_to_cpu() -> None:
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(wanted, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    jetpack = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(wanted, jetpack) == wanted
    assert choose_providers(["CUDAExecutionProvider"], jetpack) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_the_gpu_variant_without_its_base_says_what_to_do(fake_runner: FakeRunner) -> None:
    fake_runner.on(lambda a: a[:3] == ["docker", "image", "inspect"], ok(stderr="No such image", code=1))
    with pytest.raises(ToolchainError) as err:
        gpu.require_base(Project(REPO), ["jetson-orin-nano"], runner=fake_runner)
    assert err.value.message.startswith("jetson-orin-nano's GPU variant needs nvcr.io/nvidia/l4t-jetpack:")
    assert "cannot be pulled here" in err.value.message
    assert (
        err.value.hint == "docker load it (docker load -i FILE.tar), or build the CPU variant: "
        "edgepack build --target jetson-orin-nano"
    )
    assert len(err.value.render().splitlines()) == 2
    assert fake_runner.calls == [["docker", "image", "inspect", "nvcr.io/nvidia/l4t-jetpack:r36.4.0"]]


def test_a_target_without_a_gpu_section_has_no_gpu_variant(fake_runner: FakeRunner) -> None:
    with pytest.raises(ConfigError, match="target 'rpi5' has no GPU variant"):
        gpu.require_base(Project(REPO), ["rpi5"], runner=fake_runner)
    assert fake_runner.calls == []


def test_a_failed_tool_adds_its_error_line_to_the_reason() -> None:
    run = multibuild.TargetBuild("rpi5-bad")
    output = '#1 DONE 0.0s\nERROR: invalid tag "edgepack/RPi5-Bad:1": repository name must be lowercase\n'
    run.failed_step, run.error = (
        "image",
        CommandError("docker buildx bake of rpi5-bad failed.", argv=["docker"], returncode=1, output=output),
    )
    assert run.reason == (
        'docker buildx bake of rpi5-bad failed. ERROR: invalid tag "edgepack/RPi5-Bad:1": '
        "repository name must be lowercase"
    )


def test_the_quantize_note_speaks_of_each_cores_own_int8_path() -> None:
    from edgepack.modelpipe.quantize import _arm_note

    assert "AVX2" in _arm_note("dynamic", cpu_info("x86-64-v3")) and "NEON" not in _arm_note(
        "dynamic", cpu_info("x86-64-v3")
    )
    assert "has SDOT/UDOT" in _arm_note("dynamic", cpu_info("cortex-a78ae"))
    assert "widening NEON" in _arm_note("dynamic", cpu_info("cortex-a72"))
