"""LiteRT: a torch source converted by litert-torch (in its own venv), int8 by ai-edge-quantizer's
dynamic-range recipe, run by ai-edge-litert's interpreter (XNNPACK) on the board."""

from __future__ import annotations

import re
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np

from edgepack.errors import EdgepackError
from edgepack.fsutil import held
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline.context import Build
from edgepack.runtimes import registry
from edgepack.runtimes.base import Availability, Converted
from edgepack.runtimes.compare import Job
from edgepack.runtimes.ort import tree_bytes
from edgepack.runtimes.toolchain import tool

# ai-edge-litert's parts the Interpreter API does not load: the WebGPU accelerator, the CompiledModel
# runtime, ahead-of-time compilation and the converter's wrapper (it needs only
# libpywrap_litert_common.so and _pywrap_litert_interpreter_wrapper.so).
PRUNE = (
    "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
    "ai_edge_litert/libLiteRt.so",
    "ai_edge_litert/_pywrap_litert_converter.so",
    "ai_edge_litert/aot",
)
_OP = re.compile(r"(?:aten|prim|prims)[.:]{1,2}\w+")


class LiteRT:
    name = "litert"
    suffix = ".tflite"

    def availability(self, b: Build) -> Availability:
        return registry.board_wheel(self.name, b.target)

    def refuses(self, spec: ModelSpec) -> str:
        if spec.source.kind == "onnx":
            return ("the source is an ONNX file: litert-torch converts torch modules, and ONNX to TFLite "
                    "(onnx2tf) needs TensorFlow, which this toolchain does not carry")  # fmt: skip
        if spec.source.kind == "torchscript":
            return ("the source is a TorchScript file: torch.export (litert-torch's input) takes no "
                    "ScriptModule; give its weights to a torch factory")  # fmt: skip
        return ""

    def convert(self, job: Job, out: Path) -> Converted:
        if why := self.refuses(job.spec):
            return Converted(False, reason=why)
        program = out / "model.pt2"
        failed = export_program(job, program)
        if failed is not None:
            return failed
        venv = job.converter_venv()
        answer = tool(
            venv,
            job.b.runner,
            "convert",
            program,
            job.feeds,
            out,
            what=f"converting {job.spec.name} to LiteRT (litert-torch)",
            timeout=3600,
        )
        if not answer["ok"]:
            return Converted(False, unsupported=tuple(answer.get("unsupported", ())), reason=answer["reason"])
        notes = [f"litert-torch {answer['seconds']:.1f} s, static shapes of the input set (batch 1)"]
        if "int8_error" in answer:
            notes.append(f"int8 failed: {answer['int8_error']}")
        int8 = out / "model.int8.tflite" if "int8_bytes" in answer else None
        return Converted(True, fp32=out / "model.tflite", int8=int8, notes=tuple(notes))

    def run_host(self, job: Job, model: Path, feeds_npz: Path, outputs_npz: Path, runs: int) -> float:
        answer = tool(
            job.converter_venv(),
            job.b.runner,
            "run",
            model,
            feeds_npz,
            outputs_npz,
            str(runs),
            what=f"running {model.name} with LiteRT on the host",
        )
        return float(answer["median_ms"])

    def board_files(self, job: Job, avail: Availability) -> tuple[Path | None, int]:
        """The board's pinned wheel (fetched into the package store by its sha256), unpacked once."""
        from edgepack.pipeline.pip import platform_args

        site = unpacked(job.b, avail.wheel, avail.sha256, platform_args(job.b.target), prune=PRUNE)
        return site, tree_bytes(site)


def unpacked(b: Build, wheel_name: str, sha256: str, platform: list[str], *, prune: tuple[str, ...]) -> Path:
    """A pinned ai-edge-litert wheel from the package store (fetched there by its sha256), unpacked
    once under build/cache/runtime-sites, minus ``prune``."""
    from edgepack.locks.pypi import Pin, fetch_pin
    from edgepack.locks.store import Store
    from edgepack.pipeline.steps import digest

    store = Store.default()
    wheel = store.get(sha256)
    if wheel is None:
        version = registry.facts()["litert"]["version"]
        if not fetch_pin(Pin("ai-edge-litert", version, (sha256,)), platform, store, b.runner):
            raise EdgepackError(f"PyPI serves no {wheel_name} with the pinned sha256 {sha256[:12]}.")
        wheel = store.get(sha256)
        assert wheel is not None
    site = b.project.cache_dir("runtime-sites", digest(sha256, *prune))
    if not (site / ".complete").is_file():
        with held(site.with_name(f"{site.name}.lock")):
            if not (site / ".complete").is_file():
                site.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(wheel) as z:
                    z.extractall(site)
                for name in prune:  # what the interpreter never loads; a run that uses the site proves it
                    target = site / name
                    shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
                (site / ".complete").write_text(sha256 + "\n")
    return site


def use_on_host(b: Build) -> None:
    """ai-edge-litert for this host's Python, on sys.path: the app step's host reference runs LiteRT."""
    import platform
    import sys

    python = ".".join(platform.python_version_tuple()[:2])
    entry = registry.wheel_for("litert", arch=platform.machine(), python=python)
    if entry is None:
        raise EdgepackError(
            f"ai-edge-litert has no pinned wheel for this host ({platform.machine()}, Python {python}): "
            "the host reference of a LiteRT image cannot be computed here."
        )
    tag = f"manylinux_2_27_{platform.machine()}"
    args = [
        "--platform",
        tag,
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        f"cp{python.replace('.', '')}",
    ]
    site = unpacked(b, entry["file"], entry["sha256"], args, prune=())
    if str(site) not in sys.path:
        sys.path.append(str(site))


def export_program(job: Job, program: Path) -> Converted | None:
    """The spec's torch module as a torch.export program at the input set's shapes (None: written)."""
    import torch

    from edgepack.modelpipe import binding, sources
    from edgepack.modelpipe.pipeline import source_path
    from edgepack.modelpipe.serial import PROCESS_STATE

    module = binding.bind(sources.build_module(job.spec, source_path(job.source_dir, "weights")), job.spec)
    with np.load(job.feeds, allow_pickle=False) as data:
        args = tuple(torch.from_numpy(data[t.name]) for t in job.spec.inputs)
    try:
        with PROCESS_STATE, warnings.catch_warnings():  # torch.export warns about the GRU's flat weights
            warnings.simplefilter("ignore")
            ep = torch.export.export(module.eval(), args)
        torch.export.save(ep, str(program))
    except Exception as exc:  # torch.export raises many types; the refused construct is the result
        text = f"{type(exc).__name__}: {exc}"
        return Converted(
            False,
            unsupported=tuple(sorted(set(_OP.findall(text)))),
            reason="torch.export: " + text.strip().splitlines()[0][:300],
        )
    return None
