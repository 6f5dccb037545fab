"""Unit-test fixtures: the bundled ASR model exported once per session (fp32, with its metadata)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgepack.config import Project

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "assets" / "eval" / "cmdasr"


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
