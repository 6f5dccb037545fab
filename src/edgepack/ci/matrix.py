"""The CI matrix: one entry per target in targets/, with .github/matrix.yaml's overrides.

The workflow's first job runs ``edgepack ci.matrix`` and feeds the JSON to the
build job's ``strategy.matrix``, so the matrix really comes from targets/ at
run time. Per target: the runner (a label from matrix.yaml's ``runners``,
each with its own platform), whether the target's platform is emulated
there (QEMU set-up, smoke test under the board's CPU model), the timeout and
extra ``edgepack build`` flags.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgepack.config import Platform, Project, Target, load_target
from edgepack.errors import ConfigError
from edgepack.yamlconf import Located, build, load_yaml

MATRIX_FILE = Path(".github") / "matrix.yaml"


@dataclass(frozen=True)
class RunnerSpec:
    label: str = field(metadata={"doc": "runs-on label, e.g. ubuntu-24.04 or ubuntu-24.04-arm"})
    platform: Platform = field(metadata={"doc": "the runner's own platform; other platforms run under QEMU"})
    default_for: tuple[Platform, ...] = field(
        default=(), metadata={"doc": "target platforms that build on this runner unless a target names one"}
    )


@dataclass(frozen=True)
class TargetOverride:
    name: str = field(metadata={"doc": "target name (targets/NAME.yaml)"})
    runner: str | None = field(default=None, metadata={"doc": "a label from runners"})
    timeout_minutes: int | None = field(default=None, metadata={"doc": "the build job's timeout"})
    model: str | None = field(
        default=None, metadata={"doc": "the model CI builds instead of the target's (edgepack build --model)"}
    )


@dataclass(frozen=True)
class MatrixConfig:
    timeout_minutes: int = field(metadata={"doc": "the build job's timeout unless a target sets one"})
    runners: tuple[RunnerSpec, ...] = field(metadata={"doc": "the runners targets may build on"})
    targets: tuple[TargetOverride, ...] = field(default=(), metadata={"doc": "per-target overrides"})


@dataclass(frozen=True)
class Entry:
    """One matrix entry; the field names are what the workflow reads as ``matrix.<name>``."""

    target: str
    platform: str
    runner: str
    emulated: bool  # the runner's platform is not the target's: QEMU set-up, smoke under QEMU_CPU
    binfmt: str  # binfmt_misc entry QEMU registers for the platform ("" when native)
    timeout: int
    model: str  # "" for the target's own
    python: str  # the target's Python: the host's must match (bytecode, host reference)


def load_config(project: Project) -> tuple[MatrixConfig, Located]:
    doc = load_yaml(project.find(MATRIX_FILE))
    return build(MatrixConfig, doc.data, where=doc), doc


def entries(project: Project, *, only: str = "all") -> list[Entry]:
    """The matrix for every target (or ``only`` one), validated against targets/ and the runners."""
    config, doc = load_config(project)
    names = project.target_names()
    _check_overrides(config, doc, names, root=project.root)
    if only != "all" and only not in names:
        close = difflib.get_close_matches(only, names, n=1)
        tip = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"--only {only}: no such target.{tip}",
                          hint=f"Known targets: {', '.join(names)} (or all).")  # fmt: skip
    chosen = names if only == "all" else [only]
    return [_entry(load_target(project, n), config, doc) for n in chosen]


def as_json_matrix(rows: Sequence[Entry]) -> dict[str, list[dict[str, object]]]:
    return {"include": [dict(vars(r)) for r in rows]}


def _entry(target: Target, config: MatrixConfig, doc: Located) -> Entry:
    override = next((o for o in config.targets if o.name == target.name), None)
    runner = _runner(target, config, override, doc)
    emulated = runner.platform != target.platform
    if emulated and not target.binfmt:
        raise ConfigError(
            f"{_where(doc, config, target.name)}: target '{target.name}' ({target.platform}) would build on "
            f"{runner.label} ({runner.platform}), and edgepack has no QEMU emulator for {target.platform}.",
            hint=f"Give it a runner whose platform is {target.platform} (under targets: in that file).",
        )
    timeout = override.timeout_minutes if override and override.timeout_minutes else config.timeout_minutes
    model = override.model if override and override.model else ""
    return Entry(target.name, target.platform, runner.label, emulated, target.binfmt if emulated else "",
                 timeout, model, target.python)  # fmt: skip


def _runner(
    target: Target, config: MatrixConfig, override: TargetOverride | None, doc: Located
) -> RunnerSpec:
    if override and override.runner:
        return next(r for r in config.runners if r.label == override.runner)
    defaults = [r for r in config.runners if target.platform in r.default_for]
    if not defaults:
        raise ConfigError(
            f"{doc.path}:{doc.lines.get(('runners',), (doc.path, 1))[1]}: no runner is the default for "
            f"{target.platform}, which target '{target.name}' needs.",
            hint=f"Add {target.platform} to a runner's default_for, or give {target.name} a runner.",
        )
    return defaults[0]


def _check_overrides(config: MatrixConfig, doc: Located, names: Sequence[str], *, root: Path) -> None:
    labels = [r.label for r in config.runners]
    for i, runner in enumerate(config.runners):
        for platform in runner.default_for:
            taken = [r.label for r in config.runners[:i] if platform in r.default_for]
            if taken:
                _fail(doc, ("runners", str(i), "default_for"),
                      f"{platform} already defaults to {taken[0]} (one default per platform).")  # fmt: skip
    seen: set[str] = set()
    for i, override in enumerate(config.targets):
        at = ("targets", str(i))
        if override.name not in names:
            _fail(doc, (*at, "name"), f"unknown target '{override.name}'." + _suggest(override.name, names))
        if override.name in seen:
            _fail(doc, (*at, "name"), f"target '{override.name}' is listed twice.")
        seen.add(override.name)
        if override.runner is not None and override.runner not in labels:
            _fail(
                doc,
                (*at, "runner"),
                f"unknown runner '{override.runner}'." + _suggest(override.runner, labels),
            )
        if override.timeout_minutes is not None and not 1 <= override.timeout_minutes <= 360:
            _fail(
                doc, (*at, "timeout_minutes"), "timeout_minutes must be 1..360 (GitHub's job limit is 6 h)."
            )
        if override.model and "/" in override.model and not (root / override.model).is_file():
            _fail(doc, (*at, "model"), f"model '{override.model}' is not a file of the project.")


def _suggest(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" Did you mean '{close[0]}'?" if close else f" Known: {', '.join(known)}."


def _where(doc: Located, config: MatrixConfig, name: str) -> str:
    index = next((i for i, o in enumerate(config.targets) if o.name == name), None)
    at = ("targets", str(index)) if index is not None else ("runners",)
    path, line = doc.lines.get(at, (doc.path, 1))
    return f"{path}:{line}"


def _fail(doc: Located, at: tuple[str, ...], message: str) -> None:
    path, line = doc.lines.get(at) or doc.lines.get(at[:-1]) or (doc.path, 1)
    raise ConfigError(f"{path}:{line}: {message}")
