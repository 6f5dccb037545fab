"""The PyPI wheel lock (``name==version --hash=sha256:...``) under the same policy as Debian's.

Wheels are fetched once into the package store with ``pip download`` for the
board's platform tags and installed from there (``--no-index``): a fresh clone
on a machine that has built before asks PyPI nothing. A pin whose file PyPI no
longer serves (a removed release, a replaced file) is re-resolved alone.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import InputError
from edgepack.fsutil import sha256_file, write_text
from edgepack.locks.drift import Drift, StaleLockError
from edgepack.locks.store import Store
from edgepack.runner import Runner

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")
_HASH = re.compile(r"--hash=sha256:(?P<sha>[0-9a-f]{64})")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.*\.whl$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]

    def render(self) -> str:
        hashes = (f"    --hash=sha256:{h}" for h in self.hashes)
        return " \\\n".join([f"{self.name}=={self.version}", *hashes])


def read_pins(path: Path) -> tuple[list[str], list[Pin]]:
    """The comment lines and the pins of a lock written by ``pydeps.lock``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"reading the wheel lock {path} failed: {exc}.") from exc
    comments = [line for line in text.splitlines() if line.startswith("#")]
    logical = re.sub(r"\\\n", " ", text)
    pins = []
    for number, line in enumerate(logical.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head, *rest = line.split(None, 1)
        match = _PIN.match(head)
        hashes = tuple(_HASH.findall(rest[0])) if rest else ()
        if match is None or not hashes:
            raise InputError(
                f"{path}: entry {number} ({head!r}) is not 'name==version --hash=sha256:...'.",
                hint="Regenerate the lock: edgepack lock --target <name>",
            )
        pins.append(Pin(match["name"].lower(), match["version"], hashes))
    return comments, pins


def write_pins(path: Path, comments: Sequence[str], pins: Sequence[Pin]) -> None:
    write_text(path, "\n".join([*comments, *(p.render() for p in sorted(pins, key=lambda p: p.name))]) + "\n")


def stored(pins: Sequence[Pin], store: Store, *, verify: bool = True) -> dict[str, Path]:
    """Each pin's stored wheel, by name; pins with none are absent. ``verify=False``: present, unread
    (the pre-build check; pip installs with --require-hashes, so a corrupt file still cannot go in)."""
    found = {}
    for pin in pins:
        for sha in pin.hashes:
            if (path := store.get(sha) if verify else store.present(sha)) is not None:
                found[pin.name] = path
                break
    return found


def download(spec: str, *, platform: Sequence[str], runner: Runner) -> tuple[Path, list[Path]] | None:
    """``pip download`` one requirement for the board into a fresh folder; None when pip finds nothing."""
    from edgepack.pipeline.pip import pip_argv

    tmp = Path(tempfile.mkdtemp(prefix="edgepack-wheel-"))
    result = runner.run(
        pip_argv("download", "--no-deps", "--only-binary=:all:", *platform, "--dest", tmp, spec),
        what=f"downloading {spec}", check=False,
    )  # fmt: skip
    return (tmp, sorted(tmp.glob("*.whl"))) if result.returncode == 0 else None


def sync_pypi(
    path: Path,
    *,
    dest: Path | None = None,
    target: str,
    platform: Sequence[str],
    requirements: Path | None,
    store: Store,
    runner: Runner,
    locked: bool,
    root: Path,
    say: Callable[[str], None],
) -> list[Drift]:
    """Every pin's wheel in the store; re-resolve (or, ``locked``, refuse) the pins PyPI no longer serves."""
    if runner.dry_run or not path.is_file():
        return []
    comments, pins = read_pins(path)
    have = stored(pins, store, verify=False)
    gone = [pin for pin in pins if pin.name not in have and not fetch_pin(pin, platform, store, runner)]
    if not gone:
        return []
    name = _relative(path, root)
    labels = ", ".join(f"{p.name} {p.version}" for p in gone)
    if locked:
        raise StaleLockError(
            f"{name}: PyPI no longer serves {labels} with the locked sha256 (and --locked refuses a change).",
            hint=f"Refresh the lock, run: edgepack lock --target {target} (or build without --locked)",
        )
    wanted = _requirement_specs(requirements)
    drift, fresh = [], []
    for pin in gone:
        spec = wanted.get(pin.name, pin.name)  # within what the requirements allow
        got = download(spec, platform=platform, runner=runner)
        if got is None or not got[1]:
            raise InputError(
                f"{name}: PyPI no longer serves {pin.name} {pin.version}, and no wheel for the board "
                f"satisfies '{spec}'.",
                hint=f"Change '{spec}' in {requirements or 'the requirements'}, "
                f"then run: edgepack lock --target {target}",
            )
        folder, (wheel, *_) = got
        match = _WHEEL.match(wheel.name)
        version = match["version"] if match else "?"
        sha = sha256_file(wheel)
        store.put(wheel, sha256=sha, name=wheel.name)
        folder.rmdir() if not any(folder.iterdir()) else None
        fresh.append(Pin(pin.name, version, (sha,)))
        drift.append(Drift(name, pin.name, pin.version, version, "pypi"))
        say(f"  {pin.name} {pin.version} -> {version}")
    keep = [p for p in pins if p.name not in {g.name for g in gone}]
    write_pins(dest or path, comments, [*keep, *fresh])
    return drift


def fetch_pin(pin: Pin, platform: Sequence[str], store: Store, runner: Runner) -> bool:
    got = download(f"{pin.name}=={pin.version}", platform=platform, runner=runner)
    if got is None:
        return False
    folder, wheels = got
    ok = False
    for wheel in wheels:
        sha = sha256_file(wheel)
        if sha in pin.hashes:
            store.put(wheel, sha256=sha, name=wheel.name)
            ok = True
        else:
            wheel.unlink()
    folder.rmdir()
    return ok


def _requirement_specs(requirements: Path | None) -> dict[str, str]:
    if requirements is None or not requirements.is_file():
        return {}
    specs = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower()
            specs[name] = line.replace(" ", "")
    return specs


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
