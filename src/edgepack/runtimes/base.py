"""The runtime plug-in interface and what its steps return (data: the UI renders it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgepack.modelpipe.spec import ModelSpec
    from edgepack.pipeline.context import Build
    from edgepack.runtimes.compare import Job


@dataclass(frozen=True)
class Availability:
    """Whether a board can run the runtime: the package that does, or why none can."""

    ok: bool
    package: str = ""  # name==version, or the Debian package
    wheel: str = ""  # the board's wheel file (pinned by ``sha256``)
    sha256: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Converted:
    """The model in the runtime's format: fp32 and, where its toolchain quantized it, int8."""

    ok: bool
    fp32: Path | None = None
    int8: Path | None = None
    unsupported: tuple[str, ...] = ()  # operators the converter refused, by name
    reason: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """One runtime's line of the comparison."""

    runtime: str
    available: Availability
    converted: Converted | None = None
    chosen: str = ""  # "int8" or "fp32": the file this runtime would ship
    parity: dict[str, Any] = field(default_factory=dict)  # max_abs / cosine / task metric vs reference
    passes: bool = False
    model_bytes: int = 0
    runtime_bytes: int = 0  # the runtime's files on the board (its wheel, unpacked)
    host_ms: float | None = None
    emulated_ms: float | None = None
    start_ms: float | None = None  # on the board: the runtime's import and the model's load
    peak_rss_mb: float | None = None
    why_not: str = ""  # the first reason this runtime is out of the running
    # measured, but a build cannot carry it for this model (the speech and VAD runtimes stream through
    # onnxruntime sessions): shown as evidence, never chosen
    not_buildable: str = ""


class Runtime(Protocol):
    """A runtime: availability per board, conversion (and its own int8), host run, board package."""

    name: str
    suffix: str

    def availability(self, b: Build) -> Availability: ...

    def refuses(self, spec: ModelSpec) -> str:
        """Why this runtime cannot take the spec's source at all (known before any build), or ""."""
        ...

    def convert(self, job: Job, out: Path) -> Converted: ...

    def run_host(self, job: Job, model: Path, feeds_npz: Path, outputs_npz: Path, runs: int) -> float:
        """Run ``model`` on the host on the inputs; write its outputs (in order); median ms."""
        ...

    def board_files(self, job: Job, avail: Availability) -> tuple[Path | None, int]:
        """The unpacked runtime to mount in the target's image for a run there (None: already in the
        image), and its size on the board in bytes."""
        ...
