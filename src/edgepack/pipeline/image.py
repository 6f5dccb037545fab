"""The image stage: the buildx context (the base's rootfs and one tar per layer), buildx, the times pinned.

Same commit and locks, same image ID: what the image gets from the host goes
in as tars with SOURCE_DATE_EPOCH times, host paths stay out of its bytecode,
and the config's times are pinned after buildx (docker.reproducible_save).
Measurements of the run (timings, the model report) stay in build/<target>/.
Only an image whose smoke test passed is published as build/<target>/image.tar.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import edgepack
from edgepack import debian
from edgepack.debian.rootfs import Account, source_date_epoch, write_tar
from edgepack.errors import CommandError, ConfigError
from edgepack.fsutil import atomic_path, sha256_file
from edgepack.locks.drift import drift_labels
from edgepack.modelpipe.spec import is_spec_path
from edgepack.pipeline import docker
from edgepack.pipeline import model as models
from edgepack.pipeline.context import (
    Build,
    board_site,
    bytecode_stage,
    code_digest,
    git_revision,
    stamp_by_key,
)
from edgepack.pipeline.docker import ImageInfo, Push, buildx_argv, inspect_image, save_argv
from edgepack.pipeline.steps import Outputs, Step

IMAGE_SOURCE_ENV = "EDGEPACK_IMAGE_SOURCE"


SOURCE_LABEL = "org.opencontainers.image.source"


IMAGE_ACCOUNT = Account(user="edge", uid=1000)


EPOCH_ARG = "SOURCE_DATE_EPOCH"  # buildx build arg; BuildKit >= 0.11 stamps the config with it


@dataclass(frozen=True)
class ImageJob:
    """One image build, ready for buildx: by itself (``buildx build``) or with others (``buildx bake``)."""

    target: str
    tag: str
    context: Path
    dockerfile: Path
    platform: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    build_args: dict[str, str]


def image_step(b: Build, *, base: Step, deps: Step | None, app: Step) -> Step:
    dockerfile = b.project.find("docker/runtime.Dockerfile")
    labels = image_labels(b)
    build_args = {"THREADS": str(b.target.threads), "BASE": bytecode_stage(b)}
    # The config's time: SOURCE_DATE_EPOCH when set, else the commit's, which the revision label pins.
    inputs = {
        "base": base.key,
        "deps": deps.key if deps else "debian",
        "app": app.key,
        "dockerfile": sha256_file(dockerfile),
        "labels": json.dumps(labels, sort_keys=True),
        "platform": b.target.platform,
        "epoch": os.environ.get(EPOCH_ARG, "commit"),
        "code": code_digest(docker, sys.modules[__name__]),
        "build_args": json.dumps(build_args, sort_keys=True),
    }

    def action() -> Outputs:
        job = image_job(b, step)
        argv = image_argv(b, job, tags=list(job.tags), iidfile=job.context.parent / "image.iid")
        b.runner.run(argv, what=f"docker buildx build of {job.tag}")
        return finish_image(b, job, step)

    def valid(o: Outputs) -> bool:
        return Path(o["tar"]).is_file() and inspect_image(o["tag"], runner=b.runner) is not None

    needs = (base.name, *([deps.name] if deps else []), app.name)
    step = Step(
        "image",
        f"buildx {b.target.platform} image {b.target.image}",
        inputs,
        action,
        valid,
        needs=needs,
        phase="image",
    )
    return step


def image_job(b: Build, image: Step) -> ImageJob:
    """Assemble the buildx context of the planned image step (its base, deps and app steps have run)."""
    base = stamp_by_key(b, "base", image.inputs["base"])
    app = stamp_by_key(b, "app", image.inputs["app"])
    # deps: debian has no deps step (the Debian packages are in the base)
    deps = None if image.inputs["deps"] == "debian" else stamp_by_key(b, "deps", image.inputs["deps"])
    context = assemble_context(b, base=base, app=app, deps=deps)
    tag = f"{b.target.image}:{image.key[:12]}"
    labels = json.loads(image.inputs["labels"])
    # A spec's model is made by the build: its digest is known once the app step has run.
    labels["io.edgepack.model.sha256"] = app["model"]["sha256"]
    return ImageJob(
        target=b.target.name,
        tag=tag,
        context=context,
        dockerfile=b.project.find("docker/runtime.Dockerfile"),
        platform=b.target.platform,
        tags=(tag, f"{b.target.image}:latest") if b.tag_latest else (tag,),
        labels=labels,
        build_args={**json.loads(image.inputs["build_args"]), EPOCH_ARG: str(image_epoch(b))},
    )


def image_epoch(b: Build) -> int:
    """The image's creation time: the SD card's release date (SOURCE_DATE_EPOCH, else HEAD's time)."""
    from edgepack.flash.steps import source_epoch  # flash builds on this module: imported when used

    return source_epoch(b)


def finish_image(b: Build, job: ImageJob, image: Step) -> Outputs:
    """After buildx: the image with its times pinned, saved in the cache and loaded; the step's outputs.

    The engine's BuildKit (0.8 in Debian 12's docker.io) stamps the config
    with the time of the build, whatever SOURCE_DATE_EPOCH says. So the image
    is saved, rewritten with the epoch and the same layers, and loaded under
    the same tags: same inputs, same image ID (the config's sha256). The
    rewritten tar is the one published; buildx's own image is removed.
    """
    shutil.rmtree(job.context)
    built = engine_image(b, job.tag)
    tar = b.cache_dir("image", image.key) / "image.tar"
    with atomic_path(tar) as tmp, tempfile.TemporaryDirectory(dir=tar.parent) as scratch:
        saved = Path(scratch) / "saved.tar"
        b.runner.run(save_argv(image=job.tag, output=saved), what=f"docker save of {job.tag}")
        docker.reproducible_save(saved, tmp, epoch=int(job.build_args[EPOCH_ARG]), tags=job.tags)
        b.runner.run(docker.load_argv(archive=tmp), what=f"docker load of {job.tag} with its times pinned")
    info = engine_image(b, job.tag)
    if info.id != built.id:  # untagged by the load; a failure to remove it changes nothing built
        b.runner.run(docker.remove_image_argv(built.id), what="removing buildx's image", check=False)
    return {
        "tag": job.tag,
        "id": info.id,
        "bytes": info.size,
        "architecture": info.architecture,
        "tar": str(tar),
        "tar_bytes": tar.stat().st_size,
        "labels": job.labels,
    }


def engine_image(b: Build, tag: str) -> ImageInfo:
    info = inspect_image(tag, runner=b.runner)
    if info is None:
        raise CommandError(
            f"buildx reported success but the engine has no image {tag}.",
            argv=["docker", "image", "inspect", tag],
            returncode=1,
            output="",
        )
    return info


def image_argv(
    b: Build, job: ImageJob, *, tags: list[str], iidfile: Path | None, push: Push | None = None
) -> list[str]:
    return buildx_argv(
        context=job.context,
        dockerfile=job.dockerfile,
        platform=job.platform,
        tags=tags,
        labels=job.labels,
        build_args=job.build_args,
        iidfile=iidfile,
        options=b.buildx,
        push=push,
    )


def push_image(b: Build, steps: list[Step], *, ref: str, metadata_file: Path) -> None:
    """Push the image of a finished, smoke-tested build to ``ref``, with SBOM and provenance.

    buildx rebuilds it from the same cached parts and layer cache, so the
    pushed layers are the tested ones; the plan must be fully cached (the
    smoke step is stored only once it passed).
    """
    missing = [s.name for s in steps if b.cache.lookup(s) is None]
    if missing:
        raise ConfigError(
            f"cannot push {b.target.name}: {', '.join(missing)} not built (or changed since).",
            hint=f"Run first: edgepack build --target {b.target.name}",
        )
    job = image_job(b, next(s for s in steps if s.name == "image"))
    try:
        argv = image_argv(b, job, tags=[ref], iidfile=None, push=Push(metadata_file=metadata_file))
        b.runner.run(argv, what=f"docker buildx build --push of {ref}")
    finally:
        shutil.rmtree(job.context)


def publish(b: Build, image: Outputs) -> Path:
    """Hard-link the smoke-tested image tar to build/<target>/image.tar (atomically)."""
    final = b.out_dir / "image.tar"
    with atomic_path(final) as tmp:
        tmp.unlink()
        os.link(image["tar"], tmp)
    return final


def image_labels(b: Build) -> dict[str, str]:
    t = b.target
    ref = None if is_spec_path(b.model) else models.resolve(b.model, project_root=b.project.root)
    source = b.model if ref is None else ref.source if ref.bundled else Path(ref.source).name
    req_lock = b.project.lock_path(t, "requirements")
    return {
        "org.opencontainers.image.title": f"edgepack {t.name}",
        "org.opencontainers.image.description": t.description,
        "org.opencontainers.image.version": edgepack.__version__,
        "org.opencontainers.image.revision": git_revision(b.project.root),
        "io.edgepack.target": t.name,
        "io.edgepack.platform": t.platform,
        "io.edgepack.qemu-cpu": t.qemu_cpu or "",
        "io.edgepack.cpu": t.cpu_model,
        "io.edgepack.model.source": source,
        "io.edgepack.model.sha256": "" if ref is None else ref.digest,
        "io.edgepack.model.package-sha256": ref.bundled.wheel_sha256 if ref and ref.bundled else "",
        "io.edgepack.base.lock-sha256": debian.read_lock(b.project.lock_path(t, "debian")).digest(),
        "io.edgepack.deps.lock-sha256": sha256_file(req_lock) if req_lock.is_file() else "",
        **({"io.edgepack.lock-drift": drift_labels(b.drift)} if b.drift else {}),
        # The repository the image comes from (CI sets it): links a registry package to its source.
        **({SOURCE_LABEL: repo} if (repo := os.environ.get(IMAGE_SOURCE_ENV)) else {}),
    }


def assemble_context(b: Build, *, base: Outputs, app: Outputs, deps: Outputs | None) -> Path:
    """The buildx context: the base's rootfs.tar (a hard link) and one tar per layer above it.

    BuildKit 0.8 gives every folder a COPY creates or fills the time of the
    build (checked: even a folder copied from the context); ADD of a tar
    keeps the tar's times. So the deps, runtime and model layers come as
    tars like rootfs.tar: sorted, owned by root, SOURCE_DATE_EPOCH times.
    """
    context = b.out_dir / "context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    os.link(base["rootfs"], context / "rootfs.tar")
    app_root = Path(app["root"])
    site = None if deps is None else Path(deps["site_packages"])  # None: deps: debian
    layer_tar(context / "deps.tar", at=board_site(b.target.python), tree=site)
    layer_tar(context / "runtime.tar", at="usr", tree=app_root / "usr")
    layer_tar(context / "model.tar", at="opt", tree=app_root / "opt")
    return context


def layer_tar(out: Path, *, at: str, tree: Path | None) -> None:
    """A tar of ``tree`` (hard-linked, not copied) at ``at`` in the image, with the folders above it."""
    with tempfile.TemporaryDirectory(prefix=".layer-", dir=out.parent) as scratch:
        root = Path(scratch) / "root"
        made = [root / p for p in reversed(Path(at).parents)] + ([root / at] if tree is None else [])
        for folder in made:
            folder.mkdir()
            folder.chmod(0o755)  # not mkdir's mode: the umask cuts that, and the tar records it
        if tree is not None:
            shutil.copytree(tree, root / at, symlinks=True, copy_function=os.link)
        write_tar(root, out, mtime=source_date_epoch(), account=IMAGE_ACCOUNT)
