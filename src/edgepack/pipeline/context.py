"""The build context every stage takes: target, project, runner, and where steps keep their outputs.

A target's build is a plan of cached steps (``pipeline.plan``): base, deps,
model (model, export, quantize, validate for a spec), app, image, smoke. The
stages read what an earlier step made from its stamp (``stamp_of``).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from edgepack.config import Project, Target
from edgepack.locks.drift import Drift
from edgepack.pipeline.docker import BuildxOptions
from edgepack.pipeline.steps import Outputs, Step, StepCache, digest
from edgepack.runner import Runner


def _runtime_source() -> Path:
    """The on-board package's source folder, wherever edgepack is installed (a clone or a wheel)."""
    spec = importlib.util.find_spec("edgepack_runtime")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("edgepack_runtime is not installed beside edgepack")
    return Path(spec.origin).parent


RUNTIME_SRC = _runtime_source()
DEBIAN_SITE = "usr/lib/python3/dist-packages"  # where Debian's python3-* packages put their modules


def board_site(python: str) -> str:
    """Where the image's Python finds the wheels and edgepack_runtime (relative to /)."""
    return f"usr/local/lib/python{python}/dist-packages"


@dataclass(frozen=True)
class ModelOptions:
    """``edgepack build --samples/--quantize``: over the spec's, or the whole spec of a bare .onnx."""

    samples: tuple[str, ...] = ()
    quantize: str = ""  # "" = the spec's (a bare .onnx: what the target's CPU benefits from)


@dataclass(frozen=True)
class Build:
    target: Target
    project: Project
    runner: Runner
    model: str  # bundled name or path; the target's unless overridden
    # Where the image step runs and which layer cache it shares (CI, native nodes): not in any key.
    buildx: BuildxOptions = field(default_factory=BuildxOptions)
    # Lock entries re-resolved before this build because no source served them (edgepack.locks.drift).
    drift: tuple[Drift, ...] = ()
    model_options: ModelOptions = field(default_factory=ModelOptions)
    # The image is also tagged <image>:latest (what run.sh and bench scripts take); not by a command that
    # only measures (model.runtimes), which must leave the target's published tag where it is.
    tag_latest: bool = True

    @property
    def cache(self) -> StepCache:
        from edgepack.pipeline.shared import SharedSteps

        return StepCache(self.project.cache_root, shared=SharedSteps.for_project(self.project.root))

    @property
    def out_dir(self) -> Path:
        return self.project.build_dir / self.target.name

    def cache_dir(self, kind: str, key: str) -> Path:
        return self.project.cache_dir(kind, key)


def code_digest(*modules: ModuleType) -> str:
    """Steps are re-run when the code that performs them changes.

    A package counts with every module in it: ``inspect.getsource`` of a
    package is only its ``__init__``.
    """
    parts = []
    for module in modules:
        if hasattr(module, "__path__"):
            root = Path(module.__file__ or "").parent
            parts += [f"{p.relative_to(root)}\n{p.read_text()}" for p in sorted(root.rglob("*.py"))]
        else:
            parts.append(inspect.getsource(module))
    return digest(*parts)


def stamp_of(b: Build, step: Step) -> Outputs:
    outputs: Outputs = json.loads(b.cache.stamp(step).read_text())
    return outputs


def stamp_by_key(b: Build, name: str, key: str) -> Outputs:
    outputs: Outputs = json.loads(b.cache.stamp_at(name, key).read_text())
    return outputs


def git_revision(root: Path) -> str:
    """HEAD's commit without running git: read .git/HEAD and the ref it names."""
    head = root / ".git" / "HEAD"
    try:
        text = head.read_text().strip()
        if text.startswith("ref: "):
            ref = text[5:]
            loose = root / ".git" / ref
            if loose.is_file():
                return loose.read_text().strip()
            for line in (root / ".git" / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
            return "unknown"
        return text
    except OSError:
        return "unknown"


def host_compiles(b: Build) -> bool:
    return f"{sys.version_info.major}.{sys.version_info.minor}" == b.target.python


def bytecode_stage(b: Build) -> str:
    """The Dockerfile's stage under the app: bytecode made on the host, or by the image's own Python."""
    return "base" if host_compiles(b) else "base-compiled"


def bytecode_key(b: Build) -> str:
    """Who makes the bytecode, and how: part of the key of each step whose tree holds it."""
    return digest(bytecode_stage(b), inspect.getsource(precompile))


def precompile(tree: Path, b: Build, *, board: str) -> None:
    """Bytecode for the board, made by the host when its Python is the target's.

    Under QEMU, compiling numpy's and onnxruntime's modules at each start would
    cost seconds; .pyc files are architecture-independent. unchecked-hash keeps
    them valid whatever the files' mtimes become. Each .pyc names its source:
    -s/-p make that ``board`` (where ``tree`` is in the image), not this
    checkout's folder; a fixed hash seed keeps frozenset constants in one
    order. With another Python than the target's, the image build compiles
    instead (stage base-compiled).
    """
    if not host_compiles(b):
        return
    argv = [sys.executable, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash"]
    b.runner.run(
        [*argv, "-s", str(tree), "-p", f"/{board}", str(tree)],
        env={"PYTHONHASHSEED": "0"},
        what=f"precompiling {tree.name}",
    )
