"""The guide's classifier end to end (docs/your-model.md): Magika from its PyPI wheel, real samples,
`quantize.mode: auto`, the task metric, an rpi4 image and its smoke test under QEMU cortex-a72."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepack.config import Project, load_target
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner
from tests.integration.test_build import copy_project


@pytest.fixture(scope="module")
def magika(tmp_path_factory: pytest.TempPathFactory) -> tuple[Build, dict]:
    proj: Project = copy_project(tmp_path_factory.mktemp("proj"))
    b = Build(
        target=load_target(proj, "rpi4"), project=proj, runner=Runner(echo=False), model="models/magika.yaml"
    )
    return b, {r.name: r for r in execute(plan(b), b.cache)}


def test_magika_is_quantized_by_auto_judged_by_top1_and_smoke_tested_on_a_real_file(magika) -> None:
    _, records = magika
    report = json.loads((Path(records["validate"].outputs["dir"]) / "report.json").read_text())
    quant = report["quantize"]
    assert quant["mode"] == "auto" and next(a for a in quant["attempts"] if a["chosen"])["ok"]
    assert quant["outcome"]["quantized"] > 0 and quant["size_ratio"] < 0.5
    metrics = {m["name"]: m for m in report["validation"]["metrics"]}
    assert metrics["top-1 agreement"]["ok"] and report["validation"]["judged_on"] == "samples"
    fed = records["app"].outputs["fed"]
    assert fed["source"].startswith("samples: edgepack.modelpipe.zoo.guide:magika_samples #0")
    assert fed["inputs"]["bytes"]["shape"] == [1, 2048] and fed["inputs"]["bytes"]["max"] > 32
    smoke = records["smoke"].outputs
    assert smoke["ok"] and smoke["qemu_cpu"] == "cortex-a72"
    (check,) = smoke["checks"]
    assert check["name"] == "target_label" and check["shape"] == [1, 214] and check["ok"]
    reference = json.loads(Path(records["app"].outputs["reference"]).read_text())
    from edgepack_runtime.arrays import decode

    scores = decode(reference["outputs"]["target_label"])
    assert np.ptp(scores) > 0.5  # a real file: one content type stands out
