"""Unit-test fixtures: the bundled ASR model exported once per session (fp32, with its metadata)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from edgepack.config import Project

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "assets" / "eval" / "cmdasr"


@pytest.fixture(scope="session")
def asr_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """speech/weights/cmdasr.pt exported as models/cmdasr.yaml does (the zoo's streaming step), fp32."""
    import torch

    from edgepack.modelpipe import metadata
    from edgepack.modelpipe.zoo.cmdasr import cmdasr_chunk
    from edgepack_runtime.modelmeta import asr_props

    weights = REPO / "speech" / "weights" / "cmdasr.pt"
    meta = json.loads(weights.with_suffix(".json").read_text())
    module = cmdasr_chunk()
    module.load_state_dict(torch.load(weights, weights_only=True))
    path = tmp_path_factory.mktemp("asr") / "cmdasr.onnx"
    axes = {"feats": {0: "batch", 1: "time"}, "h0": {1: "batch"}, "log_probs": {0: "batch", 1: "out_time"},
            "hN": {1: "batch"}}  # fmt: skip
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and GRU batch-size notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 24, 40), torch.zeros(2, 1, 192)), str(path),
                          dynamo=False, opset_version=17, input_names=["feats", "h0"],
                          output_names=["log_probs", "hN"], dynamic_axes=axes)  # fmt: skip
    metadata.stamp(path, asr_props(meta))
    return path


@pytest.fixture(scope="session")
def heldout() -> list[tuple[Path, str]]:
    """The committed held-out utterances (assets/eval/cmdasr) and their transcripts."""
    rows = [json.loads(line) for line in (EVAL / "manifest.jsonl").read_text().splitlines() if line.strip()]
    return [(EVAL / r["audio"], r["text"]) for r in rows]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project holding a copy of targets/ (a module may define its own, with more parts)."""
    shutil.copytree(REPO / "targets", tmp_path / "targets")
    return Project(tmp_path)


def write_target(project: Project, name: str, text: str) -> Path:
    path = project.targets_dir / f"{name}.yaml"
    path.write_text(text)
    return path
