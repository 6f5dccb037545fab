"""Steps shared by every clone on the machine: a host step's outputs, kept beside the package store.

A step's key hashes everything that makes its outputs (its inputs' digests
and the code that runs it), so two clones, or two projects, that plan the same
key would make the same files. Once one of them has run it, the others take
its folder from here instead of running it again, as Bazel's disk cache or
ccache do; ``EDGEPACK_BUILT=off`` keeps each project to itself.

    <built>/steps/<step>/<key>/        the step's folder (files hard-linked where they can be)
    <built>/steps/<step>/<key>.json    its outputs, with the folder's path as a placeholder

Only ``host`` steps are shared (an image lives in the docker engine; smoke
and latency measure), and only those whose outputs name no file of the
project but their own folder: a step pointing at another project's files
would break when that project goes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepack.fsutil import atomic_path, held, write_json
from edgepack.locks.store import built_root
from edgepack.pipeline.steps import Outputs, Step

PLACEHOLDER = "@edgepack-step-folder@"


@dataclass(frozen=True)
class SharedSteps:
    root: Path  # <built>/steps
    project_root: Path

    @classmethod
    def for_project(cls, project_root: Path) -> SharedSteps | None:
        built = built_root()
        return None if built is None else cls(built / "steps", project_root)

    def _folder(self, step: Step) -> Path:
        return self.root / step.name / step.key[:20]

    def adopt(self, step: Step, folder: Path) -> Outputs | None:
        """The outputs another clone made for this key, its folder copied to ``folder``; None if none."""
        if step.phase != "host":
            return None
        shared = self._folder(step)
        try:
            templated = json.loads(shared.with_suffix(".json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if not shared.is_dir():
            return None
        with atomic_path(folder, is_dir=True) as tmp:
            shutil.copytree(shared, tmp, symlinks=True, dirs_exist_ok=True, copy_function=_link_or_copy)
        outputs = _fill(templated, str(folder))
        return outputs if step.still_valid(outputs) else None

    def publish(self, step: Step, outputs: Outputs, folder: Path) -> None:
        """Keep the step's folder and outputs for the other clones (when they name only that folder)."""
        if step.phase != "host" or not folder.is_dir():
            return
        templated = _template(outputs, str(folder), project=str(self.project_root))
        if templated is None:
            return
        shared = self._folder(step)
        with held(shared.with_name(f"{shared.name}.lock")):
            if shared.with_suffix(".json").is_file():
                return
            with atomic_path(shared, is_dir=True) as tmp:
                shutil.copytree(folder, tmp, symlinks=True, dirs_exist_ok=True, copy_function=_link_or_copy)
            write_json(shared.with_suffix(".json"), templated)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (the same bytes, no copy) where the filesystem allows, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _template(value: Any, folder: str, *, project: str) -> Any:
    """``value`` with ``folder`` replaced by the placeholder; None when it names another project file."""
    if isinstance(value, str):
        if value == folder or value.startswith(folder + os.sep):
            return PLACEHOLDER + value[len(folder) :]
        if value == project or value.startswith(project + os.sep):
            return None
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            t = _template(v, folder, project=project)
            if t is None and v is not None:
                return None
            out[k] = t
        return out
    if isinstance(value, list | tuple):
        items = [_template(v, folder, project=project) for v in value]
        if any(t is None and v is not None for t, v in zip(items, value, strict=True)):
            return None
        return items
    return value


def _fill(value: Any, folder: str) -> Any:
    if isinstance(value, str):
        return folder + value[len(PLACEHOLDER) :] if value.startswith(PLACEHOLDER) else value
    if isinstance(value, dict):
        return {k: _fill(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, folder) for v in value]
    return value
