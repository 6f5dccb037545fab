"""The pruned rpi4 image for real: every runtime module imports under QEMU, the smoke passes, and what
the target's `unused` groups name is gone (capture kept: rpi4 has the feature)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgepack.config import load_target
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner
from tests.integration.test_build import copy_project

pytestmark = pytest.mark.integration

# Every module of edgepack_runtime (all entry points: smoke, serve, bench, transcribe, listen, ...),
# then the capture backend itself, then what the pruned groups held must not import.
IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import edgepack_runtime
names = sorted(m.name for m in pkgutil.walk_packages(edgepack_runtime.__path__, "edgepack_runtime."))
failed = {}
for name in [*names, "pyaudio", "numpy.fft", "numpy.ma", "numpy.linalg", "http.server", "ssl", "decimal"]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
gone = {}
for name in ["sqlite3", "dbm.gnu", "curses", "readline", "numpy.random", "google.protobuf", "unittest"]:
    try:
        importlib.import_module(name)
        gone[name] = "importable"
    except ImportError:
        pass
print(json.dumps({"modules": names, "failed": failed, "still_there": gone}))
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    proj = copy_project(tmp_path_factory.mktemp("proj"))
    target = load_target(proj, "rpi4")
    b = Build(target=target, project=proj, runner=Runner(echo=False), model=target.model)
    records = {r.name: r for r in execute(plan(b), b.cache)}  # the smoke step runs and must pass
    return records["image"].outputs["tag"], records["deps"].outputs


def emulated_python(tag: str, code: str) -> subprocess.CompletedProcess[str]:
    argv = ["docker", "run", "--rm", "--network", "none", "--platform", "linux/arm64", "--read-only",
            "--env", "QEMU_CPU=cortex-a72", "--entrypoint", "/usr/bin/python3",
            tag, "-I", "-c", code]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)


def test_every_runtime_module_imports_in_the_pruned_image_under_qemu(image: tuple[str, dict]) -> None:
    tag, _ = image
    out = emulated_python(tag, IMPORT_EVERYTHING)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    entry_points = {"edgepack_runtime.smoke", "edgepack_runtime.live", "edgepack_runtime.metrics"}
    assert entry_points <= set(result["modules"])
    assert result["failed"] == {}
    assert result["still_there"] == {}


def test_the_deps_step_records_what_each_group_left_out(image: tuple[str, dict]) -> None:
    _, deps = image
    left_out = deps["left_out"]
    assert left_out["onnxruntime-c-api"] == ["onnxruntime/capi/libonnxruntime.so.1.32.0"]
    assert "capture" not in left_out  # rpi4 has the capture feature: pyaudio and its libraries stay
    site = Path(deps["site_packages"])
    assert (site / "pyaudio.libs").is_dir() and not (site / "numpy/random").exists()
