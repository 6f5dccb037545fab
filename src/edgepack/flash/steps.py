"""The SD-card image as a plan of cached steps, on top of the container build's own.

deps, model..., app (build.py: the very site-packages, runtime, quantized
model and smoke spec the container's smoke test ran) -> sdrootfs (the card's
Debian packages + the app, configured; cached tree) -> sdimage (initramfs,
FAT, ext4, MBR, .img, .img.xz, sha256, manifest).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgepack import debian, flash
from edgepack.config import SdcardConfig
from edgepack.debian.rootfs import source_date_epoch
from edgepack.errors import ToolchainError
from edgepack.flash import disk, initramfs, layout, publish, rootfs
from edgepack.fsutil import atomic_path, sha256_tree

# The container build's own step factories: the card must hold the very deps and app
# (runtime, model, smoke spec) whose smoke test passed, under the same cache keys.
from edgepack.pipeline.app import app_step
from edgepack.pipeline.context import Build, code_digest, stamp_of
from edgepack.pipeline.deps import deps_step
from edgepack.pipeline.plan import model_steps_of
from edgepack.pipeline.steps import Outputs, Step, key_of

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "sdcard"
SETTINGS = "edgepack.conf"


def plan(b: Build) -> list[Step]:
    card = layout.require_sdcard(b.target, b.project)
    deps = deps_step(b)
    model_steps = model_steps_of(b)
    app = app_step(b, model_steps[-1])
    tree = _rootfs_step(b, card, deps=deps, app=app)
    return [deps, *model_steps, app, tree, _image_step(b, card, tree=tree)]


def _card_json(card: SdcardConfig) -> str:
    return json.dumps(card.__dict__, sort_keys=True, default=list)


def _rootfs_step(b: Build, card: SdcardConfig, *, deps: Step, app: Step) -> Step:
    lock = debian.read_lock(b.project.lock_path(b.target, "sdcard"), target=b.target.name)
    # Of the sdcard section, only these shape the tree (the rest is the image step's).
    tree_card = json.dumps({"drop": card.drop, "hostname": card.hostname}, sort_keys=True)
    inputs = {
        "sdcard.lock": lock.digest(),
        "deps": deps.key,
        "app": app.key,
        "card": tree_card,
        "code": code_digest(debian, rootfs, layout),
        "resources": sha256_tree(RESOURCES),
    }
    out = b.cache_dir("sdrootfs", key_of("sdrootfs", inputs))

    def action() -> Outputs:
        debs = debian.fetch_debs(lock, sources=card.sources, runner=b.runner, target=b.target.name)
        with atomic_path(out, is_dir=True) as tmp:
            tree = tmp / "tree"
            tree.mkdir(mode=0o755)
            site, app_root = Path(stamp_of(b, deps)["site_packages"]), Path(stamp_of(b, app)["root"])
            rootfs.assemble(
                tree,
                lock=lock,
                debs=debs,
                site_packages=site,
                app_root=app_root,
                target=b.target,
                card=card,
                runner=b.runner,
            )
        return {"tree": str(out / "tree"), "kernel": rootfs.kernel_version(out / "tree")}

    summary = f"card rootfs from {len(lock.packages)} Debian packages + the app"
    return Step(
        "sdrootfs", summary, inputs, action, lambda o: Path(o["tree"]).is_dir(), needs=(deps.name, app.name)
    )


def source_epoch(b: Build) -> int:
    """SOURCE_DATE_EPOCH when set; else the time of the checkout's HEAD commit (the image's
    release date in the rpi-imager entry); else debian.rootfs's fixed default (no git).
    """
    if "SOURCE_DATE_EPOCH" in os.environ:
        return source_date_epoch()
    try:
        result = b.runner.run(
            ["git", "log", "-1", "--format=%ct"],
            cwd=b.project.root,
            check=False,
            mutates=False,
            what="reading the commit time",
        )
    except ToolchainError:  # no git on this host
        return source_date_epoch()
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else source_date_epoch()


def _image_step(b: Build, card: SdcardConfig, *, tree: Step) -> Step:
    sde = source_epoch(b)
    inputs = {
        "sdrootfs": tree.key,
        "card": _card_json(card),
        "epoch": str(sde),
        "code": code_digest(flash),
        "resources": sha256_tree(RESOURCES),
    }
    out = b.cache_dir("sdimage", key_of("sdimage", inputs))

    def action() -> Outputs:
        stamp = stamp_of(b, tree)
        return make_image(Path(stamp["tree"]), out, b=b, card=card, kernel=stamp["kernel"], epoch=sde)

    summary = f"{card.image_name}.img: MBR, FAT boot, ext4 root; .xz, sha256, manifest"
    return Step(
        "sdimage",
        summary,
        inputs,
        action,
        lambda o: Path(o["image"]).is_file() and Path(o["xz"]).is_file(),
        needs=(tree.name,),
    )


def make_image(tree: Path, out: Path, *, b: Build, card: SdcardConfig, kernel: str, epoch: int) -> Outputs:
    """Everything of the card from the assembled tree, into the folder ``out`` (atomically).

    The cached tree is read in place: mkfs.ext4 -d copies it, and the only
    change made to it, its files' times set to ``epoch``, is the same at
    every build (the host's ctime is never taken: see disk.make_ext4).
    """
    ids = layout.Ids.of(b.target)
    with atomic_path(out, is_dir=True) as tmp, tempfile.TemporaryDirectory(dir=out.parent) as work:
        boot_files = _boot_files(tree, Path(work) / "boot", card=card, ids=ids, kernel=kernel, epoch=epoch)
        geo = layout.geometry(card, root_content_bytes=_tree_bytes(tree), target=b.target.name)
        boot_img, root_img = Path(work) / "boot.vfat", Path(work) / "root.ext4"
        disk.make_fat(
            boot_img,
            boot_files,
            size=geo.boot_bytes,
            volume_id=ids.fat_volume_id,
            label="BOOT",
            runner=b.runner,
        )
        disk.make_ext4(root_img, tree, size=geo.root_bytes, ids=ids, mtime=epoch, runner=b.runner)
        image = tmp / f"{card.image_name}.img"
        disk.assemble_disk(image, geo=geo, ids=ids, boot=boot_img, root=root_img)
        entry = publish.publish_all(
            image,
            name=f"edgepack {b.target.name}",
            description=b.target.description,
            epoch=epoch,
            preset=card.xz_preset,
        )
    name = f"{card.image_name}.img"
    return {
        "image": str(out / name),
        "xz": str(out / f"{name}.xz"),
        "manifest": entry,
        "root_uuid": ids.root_uuid,
        "bytes": entry["extract_size"],
        "xz_bytes": entry["image_download_size"],
    }


def _tree_bytes(root: Path) -> int:
    return sum((Path(d) / f).lstat().st_size for d, _, files in os.walk(root) for f in files)


def _boot_files(
    tree: Path, folder: Path, *, card: SdcardConfig, ids: layout.Ids, kernel: str, epoch: int
) -> list[Path]:
    """What the Pi's firmware reads: its blobs, kernel, initramfs, device trees, config.txt, cmdline.txt."""
    folder.mkdir()
    firmware = sorted((tree / "usr/lib/raspi-firmware").iterdir())
    dtb_dir = tree / f"usr/lib/linux-image-{kernel}"
    files = [*firmware, tree / f"boot/vmlinuz-{kernel}", *(dtb_dir / d for d in card.device_trees)]
    for src in files:
        shutil.copyfile(src, folder / ("vmlinuz" if src.name.startswith("vmlinuz-") else src.name))
    initramfs.build(tree, folder / "initrd.img", kernel=kernel, modules=card.initramfs_modules, mtime=epoch)
    settings = (RESOURCES / SETTINGS).read_text().replace("@HOSTNAME@", card.hostname)
    texts = {
        "config.txt": layout.config_txt(card),
        "cmdline.txt": layout.cmdline_txt(card, ids),
        SETTINGS: settings,
    }
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    disk.clamp_mtimes(folder, mtime=epoch)
    return sorted(folder.iterdir())


def reference(b: Build) -> dict[str, Any] | None:
    """The host's smoke reference of the app step the card holds; None while it is not built."""
    app = plan(b)[-3]
    stamp = b.cache.lookup(app)
    return None if stamp is None else json.loads(Path(stamp["reference"]).read_text())


def publish_outputs(b: Build, image: Outputs) -> Path:
    """Hard-link the image step's files into build/<target>/sdcard/ (a folder swapped in atomically)."""
    final = b.out_dir / "sdcard"
    with atomic_path(final, is_dir=True) as tmp:
        for path in sorted(Path(image["image"]).parent.iterdir()):
            os.link(path, tmp / path.name)
    return final
