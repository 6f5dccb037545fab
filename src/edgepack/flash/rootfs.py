"""The card's root filesystem as a tree: locked Debian packages, configured by hand.

No maintainer script runs (they would need the board's CPU and make the
result depend on the time and the host): the packages are unpacked as for
the container's base, then what their scripts would do and a booting system
needs is written here: accounts (no password anywhere), fstab, an empty
machine-id (systemd makes one at first boot), enabled units as symlinks, the
kernel's modules.dep (the host's depmod reads arm64 modules fine). The
application is the container build's own: the deps step's site-packages and
the app step's tree (runtime, quantized model, smoke spec).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from edgepack.config import SdcardConfig, Target
from edgepack.debian.debfile import PathFilter, make_folders
from edgepack.debian.lock import DebianLock

# Reused as they are, so that the card's packages are unpacked and finished
# exactly like the container's base (same checks, same merged /usr).
from edgepack.debian.rootfs import DROP, KEEP, compile_bytecode, merge_usr, unpack_deb
from edgepack.errors import InputError
from edgepack.flash import disk, layout
from edgepack.runner import Runner

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "sdcard"
UNITS_DIR = "usr/lib/systemd/system"
# Enabled (a symlink in a .wants folder, as `systemctl enable` makes it) or masked (-> /dev/null).
ENABLED = {
    "sysinit.target.wants": ("edgepack-firstboot.service",),
    "multi-user.target.wants": (
        "edgepack-smoke.service",
        "edgepack.service",
        "ssh.service",
        "systemd-networkd.service",
    ),
    "ssh.service.wants": ("edgepack-sshkeys.service",),
}
# No agetty (util-linux is not installed) and no password to type: consoles get no login prompt.
MASKED = ("getty.target", "serial-getty@.service", "getty@.service")
UID = 1000
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
    f"edge:x:{UID}:{UID}:edgepack:/home/edge:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
# '*': no password can ever match (SSH keys still work; '!' would lock the account for sshd).
SHADOW = "root:*:0:0:99999:7:::\nedge:*:0:0:99999:7:::\nsshd:*:0:0:99999:7:::\ndaemon:*:0:0:99999:7:::\n"
GROUPS = {"root": 0, "daemon": 1, "adm": 4, "tty": 5, "disk": 6, "audio": 29, "video": 44, "plugdev": 46,
          "users": 100, "input": 101, "render": 102, "edge": UID, "nogroup": 65534}  # fmt: skip
MEMBERS = {"audio", "video", "plugdev", "input", "render"}
NETWORK = "[Match]\nName=eth* en* wlan*\n\n[Network]\nDHCP=yes\n"


def assemble(
    root: Path,
    *,
    lock: DebianLock,
    debs: Sequence[Path],
    site_packages: Path,
    app_root: Path,
    target: Target,
    card: SdcardConfig,
    runner: Runner,
) -> None:
    """Fill the empty folder ``root`` with the card's root filesystem."""
    paths = PathFilter(drop=(*DROP, *card.drop), keep=KEEP)
    for package, deb in zip(lock.packages, debs, strict=True):
        unpack_deb(package, deb, root=root, paths=paths)
    merge_usr(root)
    _write_system(root, target=target, card=card)
    _install_units(root, threads=target.threads)
    dist = root / f"usr/local/lib/python{target.python}/dist-packages"
    shutil.copytree(site_packages, dist, symlinks=True, dirs_exist_ok=True)
    shutil.copytree(app_root, root, symlinks=True, dirs_exist_ok=True)
    _link(root / "usr/bin/python3", f"python{target.python}")
    compile_bytecode(root, target.python, runner=runner)
    depmod(root, runner=runner)
    os.chown(root / "home/edge", UID, UID)


def kernel_version(root: Path) -> str:
    """The one kernel the lock installs (linux-image-<version>)."""
    versions = (
        sorted(p.name for p in (root / "usr/lib/modules").iterdir())
        if (root / "usr/lib/modules").is_dir()
        else []
    )
    if len(versions) != 1:
        raise InputError(
            f"building the SD-card rootfs failed because it holds {len(versions)} kernels "
            f"({', '.join(versions)}).",
            hint="List one kernel package (linux-image-arm64) in sdcard.packages, "
            "then run: edgepack lock --only sdcard",
        )
    return versions[0]


def depmod(root: Path, *, runner: Runner) -> None:
    """modules.dep and its indexes, which the package's postinst would make (kmod needs them)."""
    version = kernel_version(root)
    depmod_bin = disk.tool(runner, "depmod", package="kmod")
    runner.run([depmod_bin, "--basedir", str(root), version], what=f"depmod of kernel {version}")


def _write_system(root: Path, *, target: Target, card: SdcardConfig) -> None:
    ids = layout.Ids.of(target)
    groups = "".join(f"{g}:x:{gid}:{'edge' if g in MEMBERS else ''}\n" for g, gid in GROUPS.items())
    files = {
        "etc/passwd": (PASSWD, 0o644),
        "etc/group": (groups, 0o644),
        "etc/shadow": (SHADOW, 0o600),
        "etc/gshadow": ("".join(f"{g}:*::\n" for g in GROUPS), 0o600),
        "etc/hostname": (f"{card.hostname}\n", 0o644),
        "etc/hosts": (f"127.0.0.1\tlocalhost\n127.0.1.1\t{card.hostname}\n::1\tlocalhost\n", 0o644),
        "etc/fstab": (layout.fstab(ids), 0o644),
        # Empty: systemd writes a fresh one on the board's first boot (never two cards alike).
        "etc/machine-id": ("", 0o444),
        "etc/nsswitch.conf": ("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0o644),
        "etc/systemd/network/20-dhcp.network": (NETWORK, 0o644),
        "usr/lib/os-release": (_os_release(target), 0o644),
    }
    for rel, (text, mode) in files.items():
        _write(root / rel, text, mode)
    _sshd_config(root)
    _link(root / "etc/os-release", "../usr/lib/os-release")
    _link(root / "usr/bin/sh", "busybox")  # the only shell: dash and bash are not installed
    for rel, mode in (("tmp", 0o1777), ("root", 0o700), ("home/edge", 0o755), ("boot/firmware", 0o755),
                      ("var/log/journal", 0o755), ("etc/wpa_supplicant", 0o755)):  # fmt: skip
        make_folders(root / rel)
        (root / rel).chmod(mode)


def _sshd_config(root: Path) -> None:
    """Debian's sshd_config (installed by the package's postinst), keys only: there is no password to try."""
    template = root / "usr/share/openssh/sshd_config"
    if template.is_file():
        text = (
            template.read_text()
            + "\n# edgepack: keys only (accounts have no password)\nPasswordAuthentication no\n"
        )
        _write(root / "etc/ssh/sshd_config", text, 0o644)


def _os_release(target: Target) -> str:
    return (
        'NAME="edgepack"\nID=edgepack\nID_LIKE=debian\n'
        f'PRETTY_NAME="edgepack {target.name} (Debian {target.debian.suite})"\n'
        f"VERSION_CODENAME={target.debian.suite}\n"
    )


def _install_units(root: Path, *, threads: int) -> None:
    source = RESOURCES
    for name in ("edgepack-firstboot", "edgepack-smoke"):
        _write(root / "usr/lib/edgepack" / name, (source / name).read_text(), 0o755)
    for unit in ("edgepack.service", "edgepack-smoke.service", "edgepack-firstboot.service",
                 "edgepack-sshkeys.service"):  # fmt: skip
        _write(root / UNITS_DIR / unit, (source / unit).read_text(), 0o644)
    # What the container image sets with ENV, for the units (EnvironmentFile in edgepack*.service).
    env = f"EDGEPACK_THREADS={threads}\nPYTHONDONTWRITEBYTECODE=1\nPYTHONUNBUFFERED=1\n"
    _write(root / "etc/default/edgepack", env, 0o644)
    system = root / "etc/systemd/system"
    for wants, units in ENABLED.items():
        for unit in units:
            if not (root / UNITS_DIR / unit).is_file():
                raise InputError(
                    f"building the SD-card rootfs failed because no locked package provides {unit}."
                )
            _link(system / wants / unit, f"/{UNITS_DIR}/{unit}")
    for unit in MASKED:
        _link(system / unit, "/dev/null")
    _link(system / "default.target", f"/{UNITS_DIR}/multi-user.target")


def _write(path: Path, text: str, mode: int) -> None:
    make_folders(path.parent)
    if path.is_symlink():
        path.unlink()
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _link(path: Path, target: str) -> None:
    make_folders(path.parent)
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)
