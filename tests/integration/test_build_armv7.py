"""The 32-bit board for real: rpi-zero2w (armhf, Debian trixie, onnxruntime from Debian) built by
buildx and smoke-tested under qemu-arm emulating a Cortex-A7, in 512 MB."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from edgepack.config import load_target
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner
from tests.integration.test_build import copy_project, docker, step


@pytest.fixture(scope="module", autouse=True)
def qemu_arm() -> None:
    if Path("/proc/sys/fs/binfmt_misc/qemu-arm").exists():
        return
    problem = "QEMU not registered for arm (armhf) in binfmt_misc (run: edgepack doctor --fix)"
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Build, list, list]:
    proj = copy_project(tmp_path_factory.mktemp("proj"))
    target = load_target(proj, "rpi-zero2w")
    b = Build(target=target, project=proj, runner=Runner(echo=False), model=target.model)
    first = execute(plan(b), b.cache)
    second = execute(plan(b), b.cache)
    return b, first, second


def python_in(image: str, code: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The image's own Python, under QEMU cortex-a7, as the smoke test runs it."""
    return docker("run", "--rm", "--network", "none", "--platform", "linux/arm/v7", "--pull=never",
                  "--read-only", "--env", "QEMU_CPU=cortex-a7", *extra, "--entrypoint", "/usr/bin/python3",
                  image, "-I", "-c", code)  # fmt: skip


def test_cold_build_has_no_wheel_step_and_rebuild_reuses_all(built) -> None:
    _, first, second = built
    assert [r.name for r in first] == [
        "base",
        "model",
        "export",
        "quantize",
        "validate",
        "app",
        "image",
        "smoke",
        "latency",
    ]
    assert not any(r.cached for r in first) and all(r.cached for r in second)
    timed = first[-1].outputs  # the quantized model against fp32 on the board's own CPU
    assert timed["where"] == "QEMU -cpu cortex-a7" and timed["fp32_ms"] > 0 and timed["quantized_ms"] > 0


def test_smoke_matched_the_host_under_cortex_a7_in_512_mb(built) -> None:
    _, first, _ = built
    smoke = step(first, "smoke").outputs
    assert smoke["ok"] and (smoke["qemu_cpu"], smoke["memory_mb"]) == ("cortex-a7", 512)
    checks = {c["name"]: c for c in smoke["checks"]}
    assert checks["text"]["ok"] and checks["log_probs"]["ok"], checks
    runtime = smoke["emulated"]["runtime"]
    assert runtime["machine"] == "armv7l" and runtime["onnxruntime"].startswith("1.21"), runtime
    assert runtime["python"].startswith("3.13") and runtime["numpy"].startswith("2.2")
    assert 0 < smoke["emulated"]["peak_rss_mb"] < 512


def test_image_is_armv7_distroless_non_root(built) -> None:
    _, first, _ = built
    image = step(first, "image").outputs
    assert image["architecture"] == "arm"
    inspect = json.loads(docker("image", "inspect", image["tag"]).stdout)[0]
    assert inspect["Variant"] == "v7" and inspect["Config"]["User"] == "1000:1000"
    assert (
        docker(
            "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image["tag"], "-c", "true"
        ).returncode
        != 0
    )


IMPORT_ALL = """
import importlib, json, os, pkgutil, sys
import numpy, onnxruntime, edgepack_runtime
names = sorted(m.name for m in pkgutil.walk_packages(edgepack_runtime.__path__, "edgepack_runtime."))
failed = {}
for name in [*names, "numpy.fft", "numpy.linalg", "numpy.ma", "http.server", "argparse", "logging", "email"]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
mods = [numpy, onnxruntime, json, sys.modules["edgepack_runtime.smoke"], sys.modules["argparse"]]
sources = [os.path.join(d, f) for top in ("/usr/lib", "/usr/local/lib")
           for d, _, fs in os.walk(top) for f in fs if f.endswith(".py")]
print(json.dumps({"modules": len(names), "failed": failed, "files": [m.__file__ for m in mods],
                  "sources": sources}))
"""


def test_bytecode_was_compiled_in_the_image_and_the_sources_left_out(built) -> None:
    """Host Python 3.11, board 3.13: the image build compiled numpy's, onnxruntime's, the runtime's and the
    stdlib's bytecode, sourceless (no .py beside a .pyc), and every runtime module imports from it."""
    _, first, _ = built
    r = python_in(step(first, "image").outputs["tag"], IMPORT_ALL)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["modules"] > 15 and out["failed"] == {}, out["failed"]
    assert all(f.endswith(".pyc") for f in out["files"]), out["files"]
    assert len(out["sources"]) < 20, out["sources"][:20]  # only files that do not compile keep their .py


def test_the_memory_limit_is_enforced(built) -> None:
    """The smoke container has the board's 512 MB and no swap: touching 700 MB gets it killed."""
    _, first, _ = built
    touch = "b = bytearray(700 << 20); b[::4096] = bytes([1]) * len(b[::4096])"
    r = python_in(step(first, "image").outputs["tag"], touch, "--memory", "512m", "--memory-swap", "512m")
    assert r.returncode == 137, (r.returncode, r.stderr[-500:])


def test_a_bad_input_is_one_line_without_onnxruntimes_import_noise(built) -> None:
    """Debian's armhf onnxruntime printed 1,134 "Schema error" lines at import, above every message."""
    _, first, _ = built
    tag = step(first, "image").outputs["tag"]
    emulate = ["--platform", "linux/arm/v7", "--pull=never", "--read-only", "--env", "QEMU_CPU=cortex-a7"]
    r = docker("run", "--rm", "--network", "none", *emulate, tag, "transcribe", "/nope.wav")
    assert r.returncode == 2, r.stderr[-500:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 2 and "/nope.wav" in lines[-1], lines[:5]
