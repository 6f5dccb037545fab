"""Where the runtime finds its model and smoke spec: in the image, or a host build of a target.

In the image they are /opt/edgepack/{model,smoke}. On the host, ``--target NAME`` (or
``$EDGEPACK_TARGET``) means the last build of that target: build/NAME/{model,smoke}/, found from
the current folder up (the project's build folder, as ``edgepack build`` leaves it).
"""

from __future__ import annotations

import os
from pathlib import Path

IN_IMAGE = Path("/opt/edgepack")
TARGET_ENV = "EDGEPACK_TARGET"


def built(target: str, relative: str) -> Path | None:
    """build/<target>/<relative> of the nearest project above the current folder, if it exists."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / "build" / target / relative
        if candidate.exists():
            return candidate
    return None


def default_path(relative: str, *, target: str | None) -> Path:
    """The image's file, else the target's last build's; else the image path (the error names it)."""
    image = IN_IMAGE / relative
    target = target or os.environ.get(TARGET_ENV)
    if image.exists() or not target:
        return image
    return built(target, relative) or image


def default_spec(target: str | None) -> Path:
    return default_path("smoke/spec.json", target=target)


def default_model(target: str | None) -> Path:
    return default_path("model/model.onnx", target=target)
