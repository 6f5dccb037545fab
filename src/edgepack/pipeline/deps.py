"""The deps stage: the locked wheels (PyPI's, and the native ones edgepack builds) as site-packages."""

from __future__ import annotations

import sys
from pathlib import Path

from edgepack import wheels
from edgepack.config import Target
from edgepack.fsutil import sha256_file
from edgepack.pipeline import pip, slim
from edgepack.pipeline.context import Build, board_site, bytecode_key, code_digest, precompile
from edgepack.pipeline.steps import Outputs, Step, key_of
from edgepack.runtimes import board, registry


def runtime_key(target: Target) -> str:
    """The runtime the layer carries: onnxruntime as locked, or another by its pinned wheel."""
    entry = registry.wheel_for(target.runtime, arch=target.wheel_arch, python=target.python)
    return target.runtime + (f"={entry['sha256']}" if entry else "")


def deps_step(b: Build) -> Step:
    lock_path = b.project.lock_path(b.target, "requirements")
    lock_digest = sha256_file(lock_path) if lock_path.is_file() else "missing"
    inputs = {
        "requirements.lock": lock_digest,
        "platform": " ".join(pip.platform_args(b.target)),
        "prune": " ".join(b.target.prune),
        **slim.inputs(slim.site_groups(b.target), b.target),
        "code": code_digest(pip, slim, board, sys.modules[__name__]),
        "runtime": runtime_key(b.target),
    }
    if b.target.wheels:  # built for the board from wheels/*.yaml (edgepack wheels), by recipe + toolchain
        inputs["wheels"] = wheels.planned_digest(b.target, project=b.project, runner=b.runner)
    inputs["bytecode"] = bytecode_key(b)
    out = b.cache_dir("deps", key_of("deps", inputs)) / "site-packages"

    def action() -> Outputs:
        built = wheels.ensure_index(b.target, project=b.project, runner=b.runner) if b.target.wheels else None
        removed = pip.install(b.target, project=b.project, runner=b.runner, out_dir=out, wheelhouse=built)
        precompile(out, b, board=board_site(b.target.python))
        return {"site_packages": str(out), "left_out": removed}

    summary = f"locked wheels for {b.target.platform}" + (
        f", {b.target.runtime} instead of onnxruntime" if b.target.runtime != "onnxruntime" else ""
    )
    return Step("deps", summary, inputs, action, lambda o: Path(o["site_packages"]).is_dir())
