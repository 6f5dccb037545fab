"""A target's GPU variant (targets/<name>.yaml: gpu): NVIDIA's base image, checked locally.

Jetson's CUDA and TensorRT execution providers come with NVIDIA's L4T/JetPack
base image, which no registry reachable here serves. ``--variant gpu`` looks
for that image in the local engine first and stops with a short message
when it is not there; the CPU variant (the default) needs nothing of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgepack.config import Project, load_target
from edgepack.errors import ConfigError, ToolchainError
from edgepack.pipeline.docker import inspect_image
from edgepack.runner import Runner


def require_base(project: Project, names: Sequence[str], *, runner: Runner) -> None:
    """Every named target has a GPU variant whose base image the local engine holds; else say what to do."""
    for name in names:
        target = load_target(project, name)
        if target.gpu is None:
            raise ConfigError(
                f"target '{name}' has no GPU variant (no 'gpu' section in targets/{name}.yaml).",
                hint=f"Build its CPU variant: edgepack build --target {name}",
            )
        base = target.gpu.base_image
        if inspect_image(base, runner=runner) is None:
            raise ToolchainError(
                f"{name}'s GPU variant needs {base}, which is not in the local docker engine and cannot be "
                "pulled here (no registry).",
                hint=f"docker load it (docker load -i FILE.tar), or build the CPU variant: "
                f"edgepack build --target {name}",
            )
        # What the base brings is not enough: onnxruntime with the CUDA/TensorRT providers for
        # JetPack's Python (3.10 on Ubuntu 22.04) is NVIDIA's wheel, from an index not reachable here.
        raise ToolchainError(
            f"{name}: {base} is in the local engine, but edgepack does not build the GPU variant on it yet: "
            "NVIDIA's onnxruntime-gpu wheel for JetPack cannot be fetched here.",
            hint=f"Build the CPU variant (edgepack build --target {name}); the runtime picks "
            f"{', '.join(target.gpu.providers)} on a board whose onnxruntime offers them.",
        )
