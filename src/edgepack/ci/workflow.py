"""The GitHub Actions workflows, rendered from targets/ and pinned data.

build.yml (resources/ci-build*.yml.in) builds, smoke-tests and releases every
target; locks.yml (resources/ci-locks.yml.in) re-resolves the locks weekly and
proposes the change as a pull request. The templates hold the jobs; what
varies comes from data: the targets (the dispatch choice and the header
table), the pinned actions and QEMU image (resources/ci-pins.yaml), the wheel
toolchain (resources/toolchain.yaml). Rendering is pure: the same inputs give
the same bytes, so a test and build.yml's own first job can tell a stale file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgepack.ci import matrix
from edgepack.config import Project, load_target
from edgepack.doctor import load_pins
from edgepack.errors import ConfigError
from edgepack.fsutil import write_text
from edgepack.yamlconf import build, json_schema, load_yaml

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
WORKFLOW = Path(".github") / "workflows" / "build.yml"
LOCKS_WORKFLOW = Path(".github") / "workflows" / "locks.yml"
SCHEMA = Path(".github") / "matrix.schema.json"  # for editors; .github/matrix.yaml names it
MARKER = re.compile(r"@@([a-z:_A-Z-]+)@@")


@dataclass(frozen=True)
class ActionPin:
    key: str = field(metadata={"doc": "the name the template uses (@@uses:KEY@@)"})
    uses: str = field(metadata={"doc": "owner/name of the action"})
    sha: str = field(metadata={"doc": "full commit SHA of that version"})
    version: str = field(metadata={"doc": "the release the SHA is, for humans and updaters"})


@dataclass(frozen=True)
class CiPins:
    actions: tuple[ActionPin, ...]
    binfmt_image: str
    torch_index: str
    host_packages: tuple[str, ...]
    whisper: str
    cache_inputs: tuple[str, ...]
    lock_dirs: tuple[str, ...]


def load_ci_pins(path: Path = RESOURCES / "ci-pins.yaml") -> CiPins:
    doc = load_yaml(path)
    pins = build(CiPins, doc.data, where=doc)
    for i, pin in enumerate(pins.actions):
        if not re.fullmatch(r"[0-9a-f]{40}", pin.sha):
            line = doc.lines.get(("actions", str(i)), (path, 1))[1]
            raise ConfigError(f"{path}:{line}: {pin.uses}: sha must be a full 40-hex commit SHA.")
    return pins


# `invoke build` flags per job of build.yml: a release builds only what the locks name.
BUILD_FLAGS = {"BUILD_STEPS": "", "RELEASE_STEPS": " --locked"}


def render(project: Project, *, pins: CiPins | None = None) -> str:
    """build.yml's text for the targets in ``project``."""
    pins = pins or load_ci_pins()
    rows = matrix.entries(project)  # validates targets/ and .github/matrix.yaml
    values = {
        **_common(project, rows, pins),
        "TARGET_TABLE": "\n".join(_table(rows)),
        "TARGET_OPTIONS": "\n".join(f"          - {name}" for name in ["all", *(r.target for r in rows)]),
        "WORKFLOW_FILES": " ".join(str(path) for path in (WORKFLOW, LOCKS_WORKFLOW)),
        "BINFMT_IMAGE": pins.binfmt_image,
        "TORCH_INDEX": pins.torch_index,
        "WHISPER": pins.whisper,
        "HOST_PACKAGES": " ".join([*load_pins().wheels.packages, *pins.host_packages]),
        "CACHE_INPUTS": ", ".join(f"'{glob}'" for glob in pins.cache_inputs),
        "STORE_INPUTS": ", ".join(f"'{folder}/**'" for folder in pins.lock_dirs),
    }
    steps = (RESOURCES / "ci-build-steps.yml.in").read_text().rstrip("\n")
    for marker, flags in BUILD_FLAGS.items():
        values[marker] = _fill(steps, {**values, "BUILD_FLAGS": flags})
    return _fill((RESOURCES / "ci-build.yml.in").read_text(), values)


def render_locks(project: Project, *, pins: CiPins | None = None) -> str:
    """locks.yml's text: the weekly `invoke lock --all`, proposed as a pull request."""
    pins = pins or load_ci_pins()
    values = {
        **_common(project, matrix.entries(project), pins),
        "LOCK_HOST_PACKAGES": " ".join(pins.host_packages),
        "LOCK_DIRS": " ".join(pins.lock_dirs),
        "LOCK_ADD_PATHS": "\n".join(f"            {folder}" for folder in pins.lock_dirs),
    }
    return _fill((RESOURCES / "ci-locks.yml.in").read_text(), values)


def _common(project: Project, rows: list[matrix.Entry], pins: CiPins) -> dict[str, str]:
    """What both workflows fill in: the host's Python (the targets' oldest) and the pinned actions."""
    pythons = sorted({load_target(project, r.target).python for r in rows}) or ["3.11"]
    return {
        "HOST_PYTHON": pythons[0],
        **{f"uses:{a.key}": f"{a.uses}@{a.sha} # {a.version}" for a in pins.actions},
    }


def schema_text() -> str:
    doc = json_schema(matrix.MatrixConfig, title="edgepack CI overrides (.github/matrix.yaml)")
    return json.dumps(doc, indent=2) + "\n"


def generated(project: Project) -> dict[Path, str]:
    """Every file ``invoke ci.workflow`` writes, relative to the project, and its text."""
    pins = load_ci_pins()
    return {
        WORKFLOW: render(project, pins=pins),
        LOCKS_WORKFLOW: render_locks(project, pins=pins),
        SCHEMA: schema_text(),
    }


def write(project: Project) -> Path:
    for rel, text in generated(project).items():
        write_text(project.root / rel, text)
    return project.root / WORKFLOW


def check(project: Project) -> Path:
    """Raise when a committed file is not what targets/ and the pins generate now."""
    for rel, text in generated(project).items():
        path = project.root / rel
        current = path.read_text() if path.is_file() else None
        if current != text:
            state = (
                "is missing" if current is None else "is out of date with targets/ and .github/matrix.yaml"
            )
            raise ConfigError(f"{rel} {state}.", hint="Run: invoke ci.workflow (and commit the result).")
    return project.root / WORKFLOW


def _table(rows: list[matrix.Entry]) -> list[str]:
    width = max((len(r.target) for r in rows), default=0)
    out = []
    for r in rows:
        how = f"QEMU ({r.binfmt}), smoke with the board's CPU model" if r.emulated else "native"
        out.append(f"#   {r.target:<{width}}  {r.platform:<12}  {r.runner:<16}  {how}")
    return out or ["#   (no targets)"]


def _fill(template: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise ConfigError(f"workflow template: no value for @@{match.group(1)}@@.")
        return values[match.group(1)]

    return MARKER.sub(one, template)
