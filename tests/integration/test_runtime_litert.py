"""runtime: litert, end to end: a torch model converted by litert-torch (in its hash-locked venv),
int8 by ai-edge-quantizer and gated against the ONNX export, an rpi4 image that carries ai-edge-litert
and no onnxruntime, and its smoke test through LiteRT under QEMU cortex-a72 against the host's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgepack.config import Project, load_target
from edgepack.pipeline.context import Build
from edgepack.pipeline.docker import run_argv
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner
from tests.integration.test_build import copy_project
from tests.unit.modelspecs import CONV_GRU

TARGET = """extends: rpi4
image: edgepack/rpi4-litert-test
runtime: litert
model: models/toy.yaml
"""
SPEC = CONV_GRU + "quantize: {mode: dynamic}\n"


@pytest.fixture(scope="module")
def litert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Build, dict]:
    proj: Project = copy_project(tmp_path_factory.mktemp("proj"))
    (proj.root / "targets" / "rpi4-litert.yaml").write_text(TARGET)
    (proj.root / "models" / "toy.yaml").write_text(SPEC)
    target = load_target(proj, "rpi4-litert")
    b = Build(target=target, project=proj, runner=Runner(echo=False), model=target.model)
    return b, {r.name: r for r in execute(plan(b), b.cache)}


def test_the_model_is_converted_gated_and_baked_as_tflite(litert) -> None:
    _, records = litert
    done = records["convert"].outputs
    assert done["file"] == "model.tflite" and done["shipped"] in ("int8", "fp32")
    record = json.loads((Path(done["dir"]) / "convert.json").read_text())
    assert record["parity"][done["shipped"]]["ok"] and record["parity"]["fp32"]["max_abs"] < 1e-4
    assert records["app"].outputs["model"]["runtime"] == "litert"


def test_the_image_carries_litert_and_not_onnxruntime(litert) -> None:
    _, records = litert
    site = Path(records["deps"].outputs["site_packages"])
    assert (site / "ai_edge_litert").is_dir() and not list(site.glob("onnxruntime*"))
    assert not (site / "ai_edge_litert" / "libLiteRtWebGpuAccelerator.so").exists()  # pruned
    tag = records["image"].outputs["tag"]
    argv = run_argv(image=tag, platform="linux/arm64", qemu_cpu="cortex-a72", command=["info"])
    info = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert info["litert"] == "2.3.0" and "onnxruntime" not in info and info["machine"] == "aarch64"


def test_the_smoke_test_runs_through_litert_on_the_boards_cpu_and_matches_the_host(litert) -> None:
    _, records = litert
    smoke = records["smoke"].outputs
    assert smoke["ok"] and smoke["providers"] == ["litert 2.3.0"] and smoke["qemu_cpu"] == "cortex-a72"
    (check,) = smoke["checks"]
    assert check["name"] == "y" and check["ok"] and check["shape"] == [2, 12, 16]
    timed = records["latency"].outputs
    assert timed["mode"].startswith("litert") or "skipped" in timed
