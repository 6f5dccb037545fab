"""Targets: ``targets/<name>.yaml`` over ``targets/defaults.yaml``, as frozen models.

Defaults live in data (targets/defaults.yaml), not in code. Unknown keys,
wrong types and missing fields are rejected with file:line and a suggestion.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml

from edgepack.errors import ConfigError
from edgepack.yamlconf import Located, build, json_schema, load_yaml

Platform = Literal["linux/arm64", "linux/arm/v7", "linux/amd64"]
# Where the runtime's Python packages come from: locked PyPI wheels, or the
# board's Debian release (for boards PyPI has no wheels for: 32-bit ARM).
DepsSource = Literal["wheels", "debian"]
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# Optional runtime features of a target. capture: live audio input (`listen`): PyAudio and the
# PortAudio, ALSA and JACK libraries it carries; a target without it does not get them.
Feature = Literal["capture"]
# The on-device inference engine the image carries (edgepack.runtimes; docs/runtimes.md).
RuntimeName = Literal["onnxruntime", "litert", "executorch", "auto"]

# docker platform -> (Debian architecture, wheel platform tag suffix, binfmt name)
PLATFORM_ARCH: dict[str, tuple[str, str, str]] = {
    "linux/arm64": ("arm64", "aarch64", "qemu-aarch64"),
    "linux/arm/v7": ("armhf", "armv7l", "qemu-arm"),
    "linux/amd64": ("amd64", "x86_64", ""),
}


@dataclass(frozen=True)
class DebianConfig:
    suite: str = field(metadata={"doc": "Debian release of the board's base, e.g. bookworm"})
    glibc: str = field(metadata={"doc": "glibc version of that release: sets the manylinux tags accepted"})
    sources: tuple[str, ...] = field(metadata={"doc": "apt source lines the base packages come from"})
    packages: tuple[str, ...] = field(metadata={"doc": "root packages of the base rootfs"})
    exclude: tuple[str, ...] = field(metadata={"doc": "never installed, even when depended on"})


@dataclass(frozen=True)
class SmokeConfig:
    atol: float = field(metadata={"doc": "absolute tolerance, emulated output vs host reference"})
    rtol: float = field(metadata={"doc": "relative tolerance, emulated output vs host reference"})
    runs: int = field(metadata={"doc": "timed repetitions of the smoke inference"})
    timeout_s: int = field(metadata={"doc": "wall-clock limit of the emulated smoke run"})
    audio: str = field(metadata={"doc": "smoke input audio, relative to the project root"})


@dataclass(frozen=True)
class UnusedGroup:
    """Files no entry point of the runtime loads, left out of the image, with the evidence why.

    bench/opened.py lists what the runtime opens under QEMU_STRACE; the smoke
    test and tests/integration/test_slim.py (every runtime module imported in
    the pruned image) check that nothing needed went.
    """

    name: str = field(metadata={"doc": "the group's name, shown in the plan and the report"})
    why: str = field(metadata={"doc": "why no entry point of the runtime loads these files"})
    site: tuple[str, ...] = field(
        default=(), metadata={"doc": "globs under the runtime's site-packages (the wheels; Debian's "
                              "dist-packages for deps: debian)"},
    )  # fmt: skip
    rootfs: tuple[str, ...] = field(
        default=(), metadata={"doc": "globs of base rootfs paths (unpacked Debian packages); * matches /"}
    )
    unless: Feature | None = field(
        default=None, metadata={"doc": "the feature that needs these files: kept in a target that has it"}
    )


ExecutionProvider = Literal["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@dataclass(frozen=True)
class GpuConfig:
    """A GPU variant whose runtime comes from a vendor base image (Jetson: NVIDIA L4T/JetPack).

    That base cannot be pulled here (no registry): building the variant
    requires it in the local engine (``docker load``).
    """

    base_image: str = field(metadata={"doc": "vendor base image, e.g. nvcr.io/nvidia/l4t-jetpack:r36.4.0"})
    providers: tuple[ExecutionProvider, ...] = field(
        metadata={"doc": "onnxruntime execution providers wanted, in order; the CPU provider is the fallback"}
    )
    note: str = field(default="", metadata={"doc": "what the base brings (JetPack, CUDA, TensorRT versions)"})


@dataclass(frozen=True)
class SdcardConfig:
    """A flashable SD-card image of the target (edgepack flash.image); see src/edgepack/flash/."""

    card_mb: int = field(metadata={"doc": "declared card size in MiB: a larger image is refused"})
    boot_mb: int = field(metadata={"doc": "size of the FAT boot partition in MiB"})
    root_headroom_mb: int = field(metadata={"doc": "free MiB left in the ext4 root filesystem"})
    image_name: str = field(metadata={"doc": "file name stem of build/<target>/sdcard/<name>.img"})
    hostname: str = field(metadata={"doc": "hostname until the boot partition's edgepack.conf sets one"})
    sources: tuple[str, ...] = field(metadata={"doc": "apt source lines (with the firmware component)"})
    packages: tuple[str, ...] = field(metadata={"doc": "root packages: kernel, firmware, systemd, Python"})
    exclude: tuple[str, ...] = field(
        metadata={"doc": "never installed: package tools whose scripts never run"}
    )
    drop: tuple[str, ...] = field(metadata={"doc": "globs of rootfs paths left out (docs, foreign drivers)"})
    device_trees: tuple[str, ...] = field(metadata={"doc": "device trees copied to the boot partition"})
    initramfs_modules: tuple[str, ...] = field(metadata={"doc": "kernel modules the initramfs loads"})
    config_txt: tuple[str, ...] = field(metadata={"doc": "lines of the firmware's config.txt"})
    cmdline: str = field(metadata={"doc": "kernel command line (cmdline.txt) without root="})
    xz_preset: int = field(
        metadata={"doc": "xz preset of the .img.xz (0-9): 3 is ~1.5x as fast as 6, ~12% larger"}
    )
    boot_timeout_s: int = field(metadata={"doc": "limit of the QEMU boot test (edgepack flash.boot)"})


@dataclass(frozen=True)
class Target:
    name: str = field(metadata={"doc": "target name: the file name without .yaml"})
    description: str = field(metadata={"doc": "the board and OS, for humans"})
    platform: Platform = field(metadata={"doc": "OCI platform of the image"})
    python: Literal["3.11", "3.13"] = field(
        metadata={"doc": "Python of the Debian base (bookworm: 3.11, trixie: 3.13)"}
    )
    runtime: RuntimeName = field(
        metadata={
            "doc": "the inference engine the image carries: onnxruntime, litert (a torch model converted by "
            "litert-torch, ai-edge-litert on the board), or auto: the one edgepack model.runtimes measured "
            "and chose for this model on this board"
        }
    )
    threads: int = field(metadata={"doc": "intra-op threads: the board's core count"})
    image: str = field(metadata={"doc": "local image name (no registry)"})
    model: str = field(
        metadata={"doc": "bundled model name (silero-vad), an .onnx file, or a model spec (models/NAME.yaml)"}
    )
    requirements: str = field(metadata={"doc": "runtime requirements file, relative to the project root"})
    deps: DepsSource = field(
        metadata={
            "doc": "where the requirements come from: 'wheels' (PyPI, hash-locked in targets/locks/"
            "requirements-*.txt) or 'debian' (python3-<name> packages listed in debian.packages)"
        }
    )
    prune: tuple[str, ...] = field(
        metadata={"doc": "globs under site-packages left out of the image (tests, build-time tools)"}
    )
    wheels: tuple[str, ...] = field(
        metadata={"doc": "packages built for the board from wheels/<name>.yaml recipes (edgepack wheels)"}
    )
    features: tuple[Feature, ...] = field(
        metadata={"doc": "optional runtime features: capture (live audio input: PyAudio and its libraries)"}
    )
    unused: tuple[UnusedGroup, ...] = field(
        metadata={"doc": "groups of files no entry point of the runtime loads, each with why: left out of "
                  "the image unless the target has the group's feature"}
    )  # fmt: skip
    memory_mb: int | None = field(
        metadata={"doc": "the board's RAM: the smoke container's memory limit (null: no limit)"}
    )
    debian: DebianConfig
    smoke: SmokeConfig
    qemu_cpu: str | None = field(
        default=None,
        metadata={"doc": "QEMU_CPU emulating the board's CPU: required for an emulated platform, "
                  "absent for a native one (linux/amd64 on an x86-64 host)"},
    )  # fmt: skip
    cpu: str | None = field(
        default=None,
        metadata={"doc": "the board's core in resources/cpus.yaml when qemu_cpu is not it (QEMU lacks "
                  "that model) or there is no emulation; default: qemu_cpu"},
    )  # fmt: skip
    gpu: GpuConfig | None = field(default=None, metadata={"doc": "the board's GPU variant, if it has one"})
    sdcard: SdcardConfig | None = field(
        default=None, metadata={"doc": "a flashable SD-card image of the target (edgepack flash.image)"}
    )

    @property
    def arch(self) -> str:
        return PLATFORM_ARCH[self.platform][0]

    @property
    def wheel_arch(self) -> str:
        return PLATFORM_ARCH[self.platform][1]

    @property
    def binfmt(self) -> str:
        return PLATFORM_ARCH[self.platform][2]

    @property
    def emulated(self) -> bool:
        return self.binfmt != ""

    @property
    def cpu_model(self) -> str:
        """The board's core as resources/cpus.yaml names it (what the model stage plans for)."""
        return self.cpu or self.qemu_cpu or ""

    @property
    def runs_on(self) -> str:
        """Where the smoke test runs, for reports: 'QEMU -cpu X' or 'native'."""
        return f"QEMU -cpu {self.qemu_cpu}" if self.emulated else "native (no emulation)"


# What a project may leave out and edgepack supplies: the built-in boards (targets/ and their locks),
# the runtime Dockerfile, the native wheel recipes, the smoke clip, the bundled model specs and weights.
# In a clone these are the repository's own folders (symlinks); in the wheel, copies.
BUILTIN = Path(__file__).resolve().parent / "_data"
PROJECT_FILE = "edgepack.toml"
_PROJECT_KEYS = {
    "targets": "folder of target files",
    "build": "output folder",
    "python_path": "folders put on sys.path (torch factories, sample callables)",
}


@dataclass(frozen=True)
class Project:
    """The user's project: its targets/ (over the built-in boards), models, samples and build/ folder.

    Found by walking up to an ``edgepack.toml`` (or ``[tool.edgepack]`` in
    pyproject.toml); any file the project does not have comes from edgepack's
    own (``find``): a project can be one target file that ``extends: rpi4``.
    """

    root: Path
    targets_folder: str = "targets"
    build_folder: str = "build"
    python_path: tuple[str, ...] = (".",)

    @property
    def targets_dir(self) -> Path:
        return self.root / self.targets_folder

    @property
    def build_dir(self) -> Path:
        return self.root / self.build_folder

    @property
    def cache_root(self) -> Path:
        """build/cache: every step's outputs and stamps; the one owner of its layout is ``cache_dir``."""
        return self.build_dir / "cache"

    def cache_dir(self, kind: str, key: str = "") -> Path:
        """build/cache/<kind>[/<key prefix>]: where a kind of step (or tool state) keeps its files."""
        folder = self.cache_root / kind
        return folder / key[:20] if key else folder

    def find(self, relative: str | Path) -> Path:
        """The project's file if it has one, else edgepack's built-in one, else the project's (missing)."""
        mine = self.root / relative
        if mine.exists():
            return mine
        builtin = BUILTIN / relative
        return builtin if builtin.exists() else mine

    def target_file(self, name: str) -> Path:
        """targets/NAME.yaml of the project, else the built-in board's."""
        mine = self.targets_dir / f"{name}.yaml"
        builtin = BUILTIN / "targets" / f"{name}.yaml"
        return builtin if not mine.exists() and builtin.is_file() else mine

    def target_names(self) -> list[str]:
        """The project's own targets (``--target all``, the CI matrix); the built-in boards if it has none."""
        own = _target_stems(self.targets_dir)
        return own or builtin_boards()

    def known_targets(self) -> list[str]:
        """Every name ``--target`` accepts here: the project's targets and the built-in boards."""
        return sorted({*_target_stems(self.targets_dir), *builtin_boards()})

    def lock_path(self, target: Target, kind: Literal["debian", "requirements", "sdcard"]) -> Path:
        """The target's lock: the project's, else the built-in board's (a refresh writes the project's)."""
        return self.find(self.lock_relative(target, kind))

    def lock_relative(self, target: Target, kind: Literal["debian", "requirements", "sdcard"]) -> Path:
        locks = Path(self.targets_folder) / "locks"
        if kind == "sdcard":
            return locks / f"sdcard-{target.name}-{target.debian.suite}-{target.arch}.json"
        if kind == "debian":
            return locks / f"debian-{target.debian.suite}-{target.arch}.json"
        tag = target.python.replace(".", "")
        return locks / f"requirements-py{tag}-{target.wheel_arch}.txt"

    def writable(self, path: Path) -> Path:
        """Where a refreshed copy of ``path`` goes: the project's own file, never edgepack's built-in one."""
        try:  # BUILTIN's entries are symlinks in a clone: compare the paths, not what they resolve to
            return self.root / path.absolute().relative_to(BUILTIN)
        except ValueError:
            return path


def _target_stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "defaults") if folder.is_dir() else []


def builtin_boards() -> list[str]:
    """The boards edgepack ships (a project's target can ``extends:`` one)."""
    return _target_stems(BUILTIN / "targets")


def find_project(start: Path | None = None) -> Project:
    """Walk up from ``start`` to an edgepack.toml or a pyproject.toml with [tool.edgepack].

    Without either, the folder itself is the project (the built-in boards fill in what it lacks).
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        config = folder / PROJECT_FILE
        if config.is_file():
            return _project_from(folder, _read_toml(config), config)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("edgepack")
            if isinstance(table, dict):
                return _project_from(folder, table, pyproject)
    return Project(here)


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}.", hint="Fix the syntax.") from None


def _project_from(root: Path, table: dict[str, Any], origin: Path) -> Project:
    where = f"{origin}" + (" [tool.edgepack]" if origin.name == "pyproject.toml" else "")
    for key in table:
        if key not in _PROJECT_KEYS:
            close = difflib.get_close_matches(key, list(_PROJECT_KEYS), n=1)
            tip = f" Did you mean '{close[0]}'?" if close else f" Known keys: {', '.join(_PROJECT_KEYS)}."
            raise ConfigError(f"{where}: unknown key '{key}'.{tip}")
    folders = {k: table.get(k, d) for k, d in (("targets", "targets"), ("build", "build"))}
    for key, value in folders.items():
        if not isinstance(value, str) or not value or Path(value).is_absolute() or ".." in Path(value).parts:
            raise ConfigError(f"{where}: '{key}' must be a folder inside the project, got {value!r}.")
    paths = table.get("python_path", ["."])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ConfigError(f"{where}: 'python_path' must be a list of folders, got {paths!r}.")
    return Project(
        root, targets_folder=folders["targets"], build_folder=folders["build"], python_path=tuple(paths)
    )


def load_target(project: Project, name: str) -> Target:
    path = project.target_file(name)
    if not (path.exists() or path.is_symlink()):  # a folder or a symlink loop: load_yaml names the problem
        known = project.known_targets()
        close = difflib.get_close_matches(name, known, n=1)
        tip = f"Did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown target '{name}' (no {path}).",
            hint=f"{tip}Known targets: {', '.join(known) or 'none'}.",
        )
    doc = load_yaml(path)
    if doc.data in ({}, None) or not isinstance(doc.data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of target settings.")
    defaults = load_yaml(project.find(Path(project.targets_folder) / "defaults.yaml"))
    base = defaults
    extends = doc.data.pop("extends", None)
    if extends is not None:
        board = BUILTIN / "targets" / f"{extends}.yaml"
        if not isinstance(extends, str) or not board.is_file():
            boards = sorted(p.stem for p in (BUILTIN / "targets").glob("*.yaml") if p.stem != "defaults")
            line = doc.lines.get(("extends",), (path, 1))[1]
            close = difflib.get_close_matches(str(extends), boards, n=1)
            tip = f"Did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{path}:{line}: extends: {extends!r} is not a built-in board.",
                              hint=f"{tip}Built-in boards: {', '.join(boards)}.")  # fmt: skip
        board_doc = load_yaml(board)
        board_doc.data.pop("name", None)
        base = board_doc.over(defaults)
    merged: Located = doc.over(base)
    merged.data["name"] = doc.data.get("name", name)
    target = build(Target, merged.data, where=merged)
    if target.name != name:
        raise ConfigError(
            f"{path}:{merged.lines[('name',)][1]}: name '{target.name}' must match the file name."
        )
    _check_cpu(target, merged)
    _check_deps(target, project=project, where=merged)
    _check_features(target, where=merged)
    _check_runtime(target, where=merged)
    return target


def _check_cpu(target: Target, where: Located) -> None:
    """An emulated platform needs a QEMU CPU model; a native one must not claim one."""

    def line(key: str) -> str:
        path, number = where.lines.get((key,)) or where.lines.get(("platform",)) or (where.path, 1)
        return f"{path}:{number}"

    if target.emulated and not target.qemu_cpu:
        raise ConfigError(
            f"{line('platform')}: missing required key 'qemu_cpu': {target.platform} runs under QEMU.",
            hint="Name the board's core as QEMU knows it (qemu-aarch64 -cpu help), e.g. cortex-a72.",
        )
    if not target.emulated and target.qemu_cpu:
        raise ConfigError(
            f"{line('qemu_cpu')}: 'qemu_cpu' is set, but {target.platform} runs natively (no QEMU).",
            hint="Remove qemu_cpu; name the board's core in 'cpu' (resources/cpus.yaml).",
        )
    if not target.cpu_model:
        raise ConfigError(
            f"{line('platform')}: missing required key 'cpu': a native target names its core.",
            hint=f"One of resources/cpus.yaml: {', '.join(known_cpus())}.",
        )
    if target.cpu_model not in known_cpus():
        key = "cpu" if target.cpu else "qemu_cpu"
        close = difflib.get_close_matches(target.cpu_model, known_cpus(), n=1)
        tip = f"Did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"{line(key)}: CPU '{target.cpu_model}' is not in resources/cpus.yaml: its features are unknown.",
            hint=f"{tip}Add it there, or use one of: {', '.join(known_cpus())}.",
        )


def known_cpus() -> list[str]:
    table = yaml.safe_load(resources.files("edgepack").joinpath("resources/cpus.yaml").read_text())
    return sorted(table)


def select_targets(project: Project, spec: str) -> list[str]:
    """``all`` or a comma-separated list of target names, in order, each checked (did-you-mean)."""
    known = project.known_targets()
    if spec.strip() == "all":
        return project.target_names()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ConfigError("--target is empty.", hint=f"Give 'all' or names from: {', '.join(known)}.")
    if "all" in names:
        raise ConfigError(f"--target {spec}: 'all' means every target; it is not combined with names.",
                          hint="Give --target all, or a list of names.")  # fmt: skip
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            tip = f"Did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"unknown target '{name}' in --target {spec} (no targets/{name}.yaml).",
                hint=f"{tip}Known targets: {', '.join(known) or 'none'}, or all.",
            )
    return list(dict.fromkeys(names))


def debian_package_for(requirement: str) -> str:
    """Debian's name for a Python distribution: python3-<lowercase name, '_' and '.' as '-'>."""
    return "python3-" + re.sub(r"[._]+", "-", requirement.lower())


def requirement_names(path: Path) -> list[str]:
    """The distribution names of a requirements file (versions, markers and comments dropped)."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _REQUIREMENT.match(line.split("#", 1)[0])
        if match:
            names.append(match[1])
    return names


def _check_deps(target: Target, *, project: Project, where: Located) -> None:
    """deps: debian takes every requirement from a python3-<name> package, and builds no wheels."""
    if target.memory_mb is not None and target.memory_mb < 64:
        _fail_at(where, ("memory_mb",), f"memory_mb {target.memory_mb} is below what Linux boots in (64).")
    if target.deps != "debian":
        return
    if target.wheels:
        _fail_at(where, ("wheels",), "deps: debian installs no PyPI wheels, so 'wheels' must be [].",
                 hint="List the Debian package (python3-<name>) in debian.packages instead.")  # fmt: skip
    requirements = project.find(target.requirements)
    if not requirements.is_file():
        _fail_at(where, ("requirements",), f"{requirements}: requirements file not found.")
    missing = [debian_package_for(n) for n in requirement_names(requirements)
               if debian_package_for(n) not in target.debian.packages]  # fmt: skip
    if missing:
        close = difflib.get_close_matches(missing[0], target.debian.packages, n=1)
        tip = f"Did you mean '{close[0]}'? " if close else ""
        _fail_at(where, ("debian", "packages"),
                 f"deps: debian, but debian.packages lacks {', '.join(missing)} "
                 f"(required by {target.requirements}).",
                 hint=f"{tip}Add them, then: edgepack lock --target {target.name}")  # fmt: skip


def _check_features(target: Target, *, where: Located) -> None:
    """Group names are unique; a wheel that only a feature uses needs that feature (else it is waste)."""
    names = [g.name for g in target.unused]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        _fail_at(where, ("unused",), f"unused: group name {dupes[0]!r} appears twice.")
    for wheel in target.wheels:
        for group in target.unused:
            if group.unless and group.unless not in target.features and wheel in group.site:
                _fail_at(where, ("wheels",),
                         f"wheels lists {wheel}, which only the {group.unless} feature uses, "
                         f"but features does not list {group.unless}.",
                         hint=f"Add {group.unless} to features, or remove {wheel} from wheels.")  # fmt: skip


def _check_runtime(target: Target, *, where: Located) -> None:
    """A runtime the board cannot have is refused at load, naming why and what it can have."""
    name = target.runtime
    if name == "onnxruntime":
        return
    if name == "auto":  # the comparison's recorded choice, read at plan time (edgepack.runtimes.auto)
        return
    from edgepack.runtimes import registry

    if registry.wheel_for(name, arch=target.wheel_arch, python=target.python) is None:
        why = registry.missing_reason(name, arch=target.wheel_arch, python=target.python)
        _fail_at(
            where,
            ("runtime",),
            f"runtime: {name} cannot run on {target.platform} with Python {target.python}: {why}.",
            hint="Use runtime: onnxruntime (the default) for this board.",
        )
    if target.deps == "debian":
        _fail_at(
            where,
            ("runtime",),
            f"runtime: {name} comes as a PyPI wheel, and deps: debian installs Debian packages only.",
            hint="Use deps: wheels, or runtime: onnxruntime.",
        )


def _fail_at(where: Located, at: tuple[str, ...], message: str, *, hint: str = "") -> NoReturn:
    path, line = where.lines.get(at) or where.lines.get(at[:-1]) or (where.path, 1)
    raise ConfigError(f"{path}:{line}: {message}", hint=hint)


def target_schema() -> dict[str, object]:
    return json_schema(Target, title="edgepack target (targets/<name>.yaml merged over defaults.yaml)")
