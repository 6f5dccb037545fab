"""The app stage: the on-board runtime package, the model, the smoke input; the host's reference outputs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from edgepack.fsutil import atomic_path, sha256_file, sha256_tree, write_json
from edgepack.pipeline import smoke
from edgepack.pipeline.context import RUNTIME_SRC, Build, board_site, bytecode_key, code_digest, precompile
from edgepack.pipeline.steps import Outputs, Step, key_of


def app_step(b: Build, model: Step) -> Step:
    audio = b.project.find(b.target.smoke.audio)
    smoke_cfg = json.dumps([b.target.smoke.runs, b.target.threads])
    inputs = {
        "model": model.key,
        "runtime": sha256_tree(RUNTIME_SRC),
        "audio": sha256_file(audio),
        "smoke": smoke_cfg,
        "code": code_digest(smoke, sys.modules[__name__], sys.modules[board_site.__module__]),
        "bytecode": bytecode_key(b),
    }
    out = b.cache_dir("app", key_of("app", inputs))

    def action() -> Outputs:
        from edgepack.modelpipe.pipeline import REPORT_FILES  # published to build/<target>/model/ instead

        model_dir = Path(json.loads(b.cache.stamp(model).read_text())["dir"])
        with atomic_path(out, is_dir=True) as tmp:
            root = tmp / "root"
            opt = root / "opt" / "edgepack"
            # model.fp32.tflite: a LiteRT build's fp32 baseline for the latency step, not the image's
            ignore = shutil.ignore_patterns(*REPORT_FILES, "*.fp32.*", "convert.json")
            shutil.copytree(model_dir, opt / "model", ignore=ignore)
            meta = json.loads((model_dir / "model.json").read_text())
            if meta.get("runtime", "onnxruntime") != "onnxruntime":  # the host runs it too, for the reference
                from edgepack.runtimes.litert import use_on_host

                use_on_host(b)
            spec = smoke.prepare(meta, b.target, audio=audio, smoke_dir=opt / "smoke")
            site = root / board_site(b.target.python)
            shutil.copytree(
                RUNTIME_SRC, site / "edgepack_runtime", ignore=shutil.ignore_patterns("__pycache__")
            )
            reference = smoke.host_reference(spec)
            fed = smoke.fed(meta, audio, shown_as=b.target.smoke.audio)
            smoke.require_informative(reference, fed)
            write_json(tmp / "reference.json", reference)
            precompile(site, b, board=board_site(b.target.python))
        return {
            "root": str(out / "root"),
            "reference": str(out / "reference.json"),
            "model": meta,
            "fed": fed,
        }

    summary = "runtime package, model, smoke input; host reference"
    return Step("app", summary, inputs, action, lambda o: Path(o["reference"]).is_file(), needs=(model.name,))
