"""ExecuTorch: measured where a board can have its runtime; today none of edgepack's can (the reason
is in resources/runtimes.yaml and in the comparison's table, never a silent skip)."""

from __future__ import annotations

from pathlib import Path

from edgepack.errors import ToolchainError
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline.context import Build
from edgepack.runtimes import registry
from edgepack.runtimes.base import Availability, Converted
from edgepack.runtimes.compare import Job


class ExecuTorch:
    name = "executorch"
    suffix = ".pte"

    def availability(self, b: Build) -> Availability:
        return registry.board_wheel(self.name, b.target)

    def refuses(self, spec: ModelSpec) -> str:
        return ""  # it is refused for every board by availability, before this matters

    def convert(self, job: Job, out: Path) -> Converted:
        return Converted(False, reason="edgepack has no ExecuTorch converter toolchain yet")

    def run_host(self, job: Job, model: Path, feeds_npz: Path, outputs_npz: Path, runs: int) -> float:
        raise ToolchainError("ExecuTorch models are not run by edgepack yet.")

    def board_files(self, job: Job, avail: Availability) -> tuple[Path | None, int]:
        raise ToolchainError("ExecuTorch models are not run by edgepack yet.")
