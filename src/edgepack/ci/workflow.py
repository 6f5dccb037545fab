"""The GitHub Actions workflows, rendered from targets/ and pinned data.

build.yml (resources/ci-build*.yml.in) builds, smoke-tests and releases every
target; locks.yml (resources/ci-locks.yml.in) re-resolves the locks weekly and
proposes the change as a pull request; both set up Debian's archive keys
(resources/ci-debian-keys.yml.in). The templates hold the jobs; what varies
comes from data: the targets (the dispatch choice and the header table), the
pinned actions, QEMU image and Debian keyring (resources/ci-pins.yaml), the
wheel toolchain (resources/toolchain.yaml), and the step cache's layout
(edgepack.plan.StepCache). Rendering is pure: the same inputs give the same
bytes, so a test and build.yml's own first job can tell a stale file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgepack.ci import matrix
from edgepack.config import Project, load_target
from edgepack.errors import ConfigError
from edgepack.fsutil import write_text
from edgepack.host.pins import load_pins
from edgepack.pipeline.steps import StepCache
from edgepack.yamlconf import build, json_schema, load_yaml

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
WORKFLOW = Path(".github") / "workflows" / "build.yml"
LOCKS_WORKFLOW = Path(".github") / "workflows" / "locks.yml"
SCHEMA = Path(".github") / "matrix.schema.json"  # for editors; .github/matrix.yaml names it
MARKER = re.compile(r"@@([a-z:_A-Z0-9-]+)@@")


@dataclass(frozen=True)
class ActionPin:
    key: str = field(metadata={"doc": "the name the template uses (@@uses:KEY@@)"})
    uses: str = field(metadata={"doc": "owner/name of the action"})
    sha: str = field(metadata={"doc": "full commit SHA of that version"})
    version: str = field(metadata={"doc": "the release the SHA is, for humans and updaters"})
    # node20 is refused: runners force such actions onto Node 24 with a deprecation warning.
    runs: Literal["node24", "composite", "docker"] = field(
        metadata={"doc": "runs.using of the action.yml at that SHA"}
    )


@dataclass(frozen=True)
class DebianKeyring:
    version: str
    url: str = field(metadata={"doc": "Debian's pool URL of debian-archive-keyring_VERSION_all.deb"})
    snapshot: str = field(metadata={"doc": "the same file on snapshot.debian.org, once the pool moved on"})
    sha256: str = field(metadata={"doc": "the SHA256 Debian's signed Packages index gives for the .deb"})


@dataclass(frozen=True)
class CiPins:
    actions: tuple[ActionPin, ...]
    binfmt_image: str
    torch_index: str
    debian_keyring: DebianKeyring
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
    if not re.fullmatch(r"[0-9a-f]{64}", pins.debian_keyring.sha256):
        line = doc.lines.get(("debian_keyring", "sha256"), (path, 1))[1]
        raise ConfigError(f"{path}:{line}: debian_keyring: sha256 must be 64 hex digits.")
    return pins


# What the step cache saves, and restores (the same list, or actions/cache would not match the entry).
STEP_CACHE_PATHS = ("build/cache", "build/wheelhouse")
# Never restored or saved by CI: every job builds its image and smoke-tests it itself (ci.release),
# and image tars (~170 MB each, a new one per commit) stay out of the cache.
FRESH_STEPS = ("image", "smoke")
# Where the keys go: edgepack's private apt reads the host's (edgepack.debian.apt).
APT_TRUSTED = "/etc/apt/trusted.gpg.d"


def fresh_paths(project: Project) -> list[str]:
    """The restored step cache's image tars and image and smoke stamps, relative to the project.

    actions/cache cannot exclude them: a `!path` under a cached folder is
    ignored and the folder is archived whole (actions/toolkit#713), so the
    workflow deletes these after restoring and before saving. The layout is
    the build's own (Build.cache, Build.cache_dir); tests hold the two equal.
    """
    cache = StepCache(project.cache_root.relative_to(project.root))
    return [str(cache.root / "image"), *(str(cache.stamp_at(name, "*")) for name in FRESH_STEPS)]


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
        "HOST_PACKAGES": " ".join(load_pins().wheels.packages),
        "CACHE_INPUTS": ", ".join(f"'{glob}'" for glob in pins.cache_inputs),
        "STORE_INPUTS": ", ".join(f"'{folder}/**'" for folder in pins.lock_dirs),
        "STEP_CACHE_PATHS": "\n".join(f"            {path}" for path in STEP_CACHE_PATHS),
        "FRESH_PATHS": " ".join(fresh_paths(project)),
    }
    values["BUILD_STEPS"] = _fill((RESOURCES / "ci-build-steps.yml.in").read_text().rstrip("\n"), values)
    return _fill((RESOURCES / "ci-build.yml.in").read_text(), values)


def render_locks(project: Project, *, pins: CiPins | None = None) -> str:
    """locks.yml's text: the weekly `edgepack lock --all`, proposed as a pull request."""
    pins = pins or load_ci_pins()
    values = {
        **_common(project, matrix.entries(project), pins),
        "LOCK_DIRS": " ".join(pins.lock_dirs),
        "LOCK_ADD_PATHS": "\n".join(f"            {folder}" for folder in pins.lock_dirs),
    }
    return _fill((RESOURCES / "ci-locks.yml.in").read_text(), values)


def _common(project: Project, rows: list[matrix.Entry], pins: CiPins) -> dict[str, str]:
    """What both workflows fill in: the host's Python (the targets' oldest), the pinned actions, the keys."""
    pythons = sorted({load_target(project, r.target).python for r in rows}) or ["3.11"]
    ring = pins.debian_keyring
    keys = {"KEYRING_URL": ring.url, "KEYRING_SNAPSHOT": ring.snapshot, "KEYRING_SHA256": ring.sha256,
            "APT_TRUSTED": APT_TRUSTED}  # fmt: skip
    return {
        "HOST_PYTHON": pythons[0],
        "DEBIAN_KEYS_STEP": _fill((RESOURCES / "ci-debian-keys.yml.in").read_text().rstrip("\n"), keys),
        **{f"uses:{a.key}": f"{a.uses}@{a.sha} # {a.version}" for a in pins.actions},
    }


def schema_text() -> str:
    doc = json_schema(matrix.MatrixConfig, title="edgepack CI overrides (.github/matrix.yaml)")
    return json.dumps(doc, indent=2) + "\n"


def generated(project: Project) -> dict[Path, str]:
    """Every file ``edgepack ci.workflow`` writes, relative to the project, and its text."""
    pins = load_ci_pins()
    return {
        WORKFLOW: render(project, pins=pins),
        LOCKS_WORKFLOW: render_locks(project, pins=pins),
        SCHEMA: schema_text(),
    }


def write(project: Project) -> Path:
    write_all(project)
    return project.root / WORKFLOW


def write_all(project: Project) -> list[Path]:
    """Write every generated file (build.yml, locks.yml, the matrix schema); return their paths."""
    written = []
    for rel, text in generated(project).items():
        write_text(project.root / rel, text)
        written.append(project.root / rel)
    return written


def check(project: Project) -> Path:
    """Raise when a committed file is not what targets/ and the pins generate now."""
    for rel, text in generated(project).items():
        path = project.root / rel
        current = path.read_text() if path.is_file() else None
        if current != text:
            state = (
                "is missing" if current is None else "is out of date with targets/ and .github/matrix.yaml"
            )
            raise ConfigError(f"{rel} {state}.", hint="Run: edgepack ci.workflow (and commit the result).")
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
