"""The build of one target as a plan of cached steps.

base -> deps -> model -> app (runtime, model, smoke input, host reference)
-> image (buildx, docker save) -> smoke (under QEMU). Only an image whose
smoke test passed is published as build/<target>/image.tar, with its report.

Same commit and locks, same image ID: what the image gets from the host goes
in as tars with SOURCE_DATE_EPOCH times, host paths stay out of its bytecode,
and the config's times are pinned after buildx (docker.reproducible_save).
Measurements of the run (timings, the model report) stay in build/<target>/.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import edgepack
from edgepack import debian, docker, models, pydeps, smoke, wheels
from edgepack.config import Project, Target
from edgepack.debian.rootfs import DROP as ROOTFS_DROP
from edgepack.debian.rootfs import Account, source_date_epoch, write_tar
from edgepack.docker import BuildxOptions, ImageInfo, Push, buildx_argv, inspect_image, save_argv
from edgepack.errors import CommandError, ConfigError
from edgepack.fsutil import atomic_path, sha256_file, sha256_tree, write_json
from edgepack.locks.drift import Drift, drift_labels
from edgepack.modelpipe.spec import is_spec_path
from edgepack.plan import Outputs, Step, StepCache, digest
from edgepack.runner import Runner

# Set by the CI workflow to ${{ github.server_url }}/${{ github.repository }}.
IMAGE_SOURCE_ENV = "EDGEPACK_IMAGE_SOURCE"
SOURCE_LABEL = "org.opencontainers.image.source"
RUNTIME_SRC = Path(__file__).resolve().parents[2] / "runtime" / "src" / "edgepack_runtime"
DEBIAN_SITE = "usr/lib/python3/dist-packages"  # where Debian's python3-* packages put their modules
# The account the image runs as (debian.rootfs's default, the Dockerfile's USER): it owns only its home.
IMAGE_ACCOUNT = Account(user="edge", uid=1000)
EPOCH_ARG = "SOURCE_DATE_EPOCH"  # buildx build arg; BuildKit >= 0.11 stamps the config with it


def board_site(python: str) -> str:
    """Where the image's Python finds the wheels and edgepack_runtime (relative to /)."""
    return f"usr/local/lib/python{python}/dist-packages"


@dataclass(frozen=True)
class Build:
    target: Target
    project: Project
    runner: Runner
    model: str  # bundled name or path; the target's unless overridden
    # Where the image step runs and which layer cache it shares (CI, native nodes): not in any key.
    buildx: BuildxOptions = field(default_factory=BuildxOptions)
    # Lock entries re-resolved before this build because no source served them (edgepack.locks.drift).
    drift: tuple[Drift, ...] = ()

    @property
    def cache(self) -> StepCache:
        return StepCache(self.project.build_dir / "cache")

    @property
    def out_dir(self) -> Path:
        return self.project.build_dir / self.target.name

    def cache_dir(self, kind: str, key: str) -> Path:
        return self.project.build_dir / "cache" / kind / key[:20]


def code_digest(*modules: ModuleType) -> str:
    """Steps are re-run when the code that performs them changes.

    A package counts with every module in it: ``inspect.getsource`` of a
    package is only its ``__init__``.
    """
    parts = []
    for module in modules:
        if hasattr(module, "__path__"):
            root = Path(module.__file__ or "").parent
            parts += [f"{p.relative_to(root)}\n{p.read_text()}" for p in sorted(root.rglob("*.py"))]
        else:
            parts.append(inspect.getsource(module))
    return digest(*parts)


def plan(b: Build) -> list[Step]:
    """deps: debian has no deps step: numpy and onnxruntime are Debian packages of the base."""
    base = _base_step(b)
    deps = deps_step(b) if b.target.deps == "wheels" else None
    model_steps = model_steps_of(b)
    app = app_step(b, model_steps[-1])
    image = _image_step(b, base=base, deps=deps, app=app)
    return [base, *([deps] if deps else []), *model_steps, app, image, _smoke_step(b, image=image, app=app)]


def model_steps_of(b: Build) -> list[Step]:
    """A model file is one step; a model spec (models/NAME.yaml) is model, export, quantize, validate."""
    if is_spec_path(b.model):
        from edgepack.modelpipe.steps import plan_model

        return plan_model(b)
    return [_model_step(b)]


def _base_step(b: Build) -> Step:
    lock_path = b.project.lock_path(b.target, "debian")
    lock = debian.read_lock(lock_path, target=b.target.name)
    inputs = {"debian.lock": lock.digest(), "code": code_digest(debian), "python": b.target.python}
    drop = ROOTFS_DROP
    if b.target.deps == "debian":  # the target's prune applies to Debian's Python modules instead of wheels
        drop += tuple(f"{DEBIAN_SITE}/{pattern}" for pattern in b.target.prune)
        inputs["prune"] = " ".join(b.target.prune)
    step = Step("base", f"rootfs from {len(lock.packages)} {lock.arch} Debian packages", inputs, lambda: {})
    out = b.cache_dir("base", step.key) / "rootfs.tar"

    def action() -> Outputs:
        debs = debian.fetch_debs(lock, sources=b.target.debian.sources, runner=b.runner, target=b.target.name)
        debian.build_rootfs_tar(lock, debs, out=out, python=b.target.python, drop=drop)
        return {"rootfs": str(out), "bytes": out.stat().st_size, "sha256": sha256_file(out)}

    return with_action(step, action, lambda o: Path(o["rootfs"]).is_file())


def deps_step(b: Build) -> Step:
    lock_path = b.project.lock_path(b.target, "requirements")
    lock_digest = sha256_file(lock_path) if lock_path.is_file() else "missing"
    inputs = {"requirements.lock": lock_digest, "platform": " ".join(pydeps.platform_args(b.target)),
              "prune": " ".join(b.target.prune), "code": code_digest(pydeps)}  # fmt: skip
    if b.target.wheels:  # built for the board from wheels/*.yaml (edgepack wheels), by recipe + toolchain
        inputs["wheels"] = wheels.planned_digest(b.target, project=b.project, runner=b.runner)
    inputs["bytecode"] = _bytecode_key(b)
    step = Step("deps", f"locked wheels for {b.target.platform}", inputs, lambda: {})
    out = b.cache_dir("deps", step.key) / "site-packages"

    def action() -> Outputs:
        built = wheels.ensure_index(b.target, project=b.project, runner=b.runner) if b.target.wheels else None
        pydeps.install(b.target, project=b.project, runner=b.runner, out_dir=out, wheelhouse=built)
        _precompile(out, b, board=board_site(b.target.python))
        return {"site_packages": str(out)}

    return with_action(step, action, lambda o: Path(o["site_packages"]).is_dir())


def _model_step(b: Build) -> Step:
    ref = models.resolve(b.model, project_root=b.project.root)
    inputs = {"source": ref.source, "sha256": ref.digest, "code": code_digest(models)}
    step = Step("model", f"model {ref.source}", inputs, lambda: {})
    out = b.cache_dir("model", step.key)

    def action() -> Outputs:
        meta = models.materialize(ref, out_dir=out, runner=b.runner)
        return {"dir": str(out), "meta": meta}

    return with_action(step, action, lambda o: (Path(o["dir"]) / "model.onnx").is_file())


def app_step(b: Build, model: Step) -> Step:
    audio = b.project.root / b.target.smoke.audio
    smoke_cfg = json.dumps([b.target.smoke.runs, b.target.threads])
    inputs = {"model": model.key, "runtime": sha256_tree(RUNTIME_SRC), "audio": sha256_file(audio),
              "smoke": smoke_cfg, "code": code_digest(smoke, sys.modules[__name__]),
              "bytecode": _bytecode_key(b)}  # fmt: skip
    step = Step("app", "runtime package, model, smoke input; host reference", inputs, lambda: {})
    out = b.cache_dir("app", step.key)

    def action() -> Outputs:
        from edgepack.modelpipe.pipeline import REPORT_FILES  # published to build/<target>/model/ instead

        model_dir = Path(json.loads(b.cache.stamp(model).read_text())["dir"])
        with atomic_path(out, is_dir=True) as tmp:
            root = tmp / "root"
            opt = root / "opt" / "edgepack"
            shutil.copytree(model_dir, opt / "model", ignore=shutil.ignore_patterns(*REPORT_FILES))
            meta = json.loads((model_dir / "model.json").read_text())
            spec = smoke.prepare(meta, b.target, audio=audio, smoke_dir=opt / "smoke")
            site = root / board_site(b.target.python)
            shutil.copytree(RUNTIME_SRC, site / "edgepack_runtime",
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
            write_json(tmp / "reference.json", smoke.host_reference(spec))
            _precompile(site, b, board=board_site(b.target.python))
        return {"root": str(out / "root"), "reference": str(out / "reference.json"), "model": meta}

    return with_action(step, action, lambda o: Path(o["reference"]).is_file())


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


def _image_step(b: Build, *, base: Step, deps: Step | None, app: Step) -> Step:
    dockerfile = b.project.root / "docker" / "runtime.Dockerfile"
    labels = _labels(b)
    build_args = {"THREADS": str(b.target.threads), "BASE": _bytecode_stage(b)}
    # The config's time: SOURCE_DATE_EPOCH when set, else the commit's, which the revision label pins.
    inputs = {"base": base.key, "deps": deps.key if deps else "debian", "app": app.key,
              "dockerfile": sha256_file(dockerfile), "labels": json.dumps(labels, sort_keys=True),
              "platform": b.target.platform, "epoch": os.environ.get(EPOCH_ARG, "commit"),
              "code": code_digest(docker, sys.modules[__name__]),
              "build_args": json.dumps(build_args, sort_keys=True)}  # fmt: skip
    step = Step("image", f"buildx {b.target.platform} image {b.target.image}", inputs, lambda: {})

    def action() -> Outputs:
        job = image_job(b, step)
        argv = _image_argv(b, job, tags=list(job.tags), iidfile=job.context.parent / "image.iid")
        b.runner.run(argv, what=f"docker buildx build of {job.tag}")
        return finish_image(b, job, step)

    def valid(o: Outputs) -> bool:
        return Path(o["tar"]).is_file() and inspect_image(o["tag"], runner=b.runner) is not None

    return with_action(step, action, valid)


def image_job(b: Build, image: Step) -> ImageJob:
    """Assemble the buildx context of the planned image step (its base, deps and app steps have run)."""
    stamps: dict[str, Outputs | None] = {
        name: _stamp_by_key(b, name, image.inputs[name]) for name in ("base", "app")
    }
    # deps: debian has no deps step (the Debian packages are in the base)
    stamps["deps"] = (
        None if image.inputs["deps"] == "debian" else _stamp_by_key(b, "deps", image.inputs["deps"])
    )
    context = _assemble_context(b, stamps)
    tag = f"{b.target.image}:{image.key[:12]}"
    labels = json.loads(image.inputs["labels"])
    # A spec's model is made by the build: its digest is known once the app step has run.
    labels["io.edgepack.model.sha256"] = stamps["app"]["model"]["sha256"]
    return ImageJob(
        target=b.target.name,
        tag=tag,
        context=context,
        dockerfile=b.project.root / "docker" / "runtime.Dockerfile",
        platform=b.target.platform,
        tags=(tag, f"{b.target.image}:latest"),
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
    built = _engine_image(b, job.tag)
    tar = b.cache_dir("image", image.key) / "image.tar"
    with atomic_path(tar) as tmp, tempfile.TemporaryDirectory(dir=tar.parent) as scratch:
        saved = Path(scratch) / "saved.tar"
        b.runner.run(save_argv(image=job.tag, output=saved), what=f"docker save of {job.tag}")
        docker.reproducible_save(saved, tmp, epoch=int(job.build_args[EPOCH_ARG]), tags=job.tags)
        b.runner.run(docker.load_argv(archive=tmp), what=f"docker load of {job.tag} with its times pinned")
    info = _engine_image(b, job.tag)
    if info.id != built.id:  # untagged by the load; a failure to remove it changes nothing built
        b.runner.run(docker.remove_image_argv(built.id), what="removing buildx's image", check=False)
    return {"tag": job.tag, "id": info.id, "bytes": info.size, "architecture": info.architecture,
            "tar": str(tar), "tar_bytes": tar.stat().st_size, "labels": job.labels}  # fmt: skip


def _engine_image(b: Build, tag: str) -> ImageInfo:
    info = inspect_image(tag, runner=b.runner)
    if info is None:
        raise CommandError(f"buildx reported success but the engine has no image {tag}.",
                           argv=["docker", "image", "inspect", tag], returncode=1, output="")  # fmt: skip
    return info


def _smoke_step(b: Build, *, image: Step, app: Step) -> Step:
    t = b.target
    inputs = {"image": image.key, "reference": app.key, "runs_on": t.runs_on, "memory_mb": str(t.memory_mb),
              "tolerance": f"atol={t.smoke.atol} rtol={t.smoke.rtol}"}  # fmt: skip
    step = Step("smoke", f"smoke inference, {t.runs_on}", inputs, lambda: {})

    def action() -> Outputs:
        tag = f"{t.image}:{image.key[:12]}"
        reference = json.loads(Path(stamp_of(b, app)["reference"]).read_text())
        emulated = smoke.run_in_image(tag, t, runner=b.runner)
        checks = smoke.compare(reference, emulated, atol=t.smoke.atol, rtol=t.smoke.rtol)
        smoke.require_match(checks, image=tag)
        return {"ok": True, "checks": smoke.checks_as_dicts(checks), "emulated": _summary(emulated),
                "host": _summary(reference), "qemu_cpu": t.qemu_cpu, "runs_on": t.runs_on,
                "providers": emulated.get("providers", []), "memory_mb": t.memory_mb}  # fmt: skip

    return with_action(step, action)


def _image_argv(b: Build, job: ImageJob, *, tags: list[str], iidfile: Path | None,
                push: Push | None = None) -> list[str]:  # fmt: skip
    return buildx_argv(context=job.context, dockerfile=job.dockerfile, platform=job.platform, tags=tags,
                       labels=job.labels, build_args=job.build_args, iidfile=iidfile, options=b.buildx,
                       push=push)  # fmt: skip


def push_image(b: Build, steps: list[Step], *, ref: str, metadata_file: Path) -> None:
    """Push the image of a finished, smoke-tested build to ``ref``, with SBOM and provenance.

    buildx rebuilds it from the same cached parts and layer cache, so the
    pushed layers are the tested ones; the plan must be fully cached (the
    smoke step is stored only once it passed).
    """
    missing = [s.name for s in steps if b.cache.lookup(s) is None]
    if missing:
        raise ConfigError(f"cannot push {b.target.name}: {', '.join(missing)} not built (or changed since).",
                          hint=f"Run first: edgepack build --target {b.target.name}")  # fmt: skip
    job = image_job(b, next(s for s in steps if s.name == "image"))
    try:
        argv = _image_argv(b, job, tags=[ref], iidfile=None, push=Push(metadata_file=metadata_file))
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


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("runtime", "providers", "load_ms", "latency_ms", "audio_seconds", "rtf", "peak_rss_mb")
    return {k: result[k] for k in keys if k in result}


def with_action(step: Step, action: Any, valid: Any = None) -> Step:
    return Step(step.name, step.summary, step.inputs, action, valid or (lambda _: True), step.cacheable)


def stamp_of(b: Build, step: Step) -> Outputs:
    return json.loads(b.cache.stamp(step).read_text())


def _stamp_by_key(b: Build, name: str, key: str) -> Outputs:
    return json.loads(b.cache.stamp_at(name, key).read_text())


def _labels(b: Build) -> dict[str, str]:
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
        **({SOURCE_LABEL: source} if (source := os.environ.get(IMAGE_SOURCE_ENV)) else {}),
    }


def git_revision(root: Path) -> str:
    """HEAD's commit without running git: read .git/HEAD and the ref it names."""
    head = root / ".git" / "HEAD"
    try:
        text = head.read_text().strip()
        if text.startswith("ref: "):
            ref = text[5:]
            loose = root / ".git" / ref
            if loose.is_file():
                return loose.read_text().strip()
            for line in (root / ".git" / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
            return "unknown"
        return text
    except OSError:
        return "unknown"


def _assemble_context(b: Build, stamps: dict[str, Outputs | None]) -> Path:
    """The buildx context: the base's rootfs.tar (a hard link) and one tar per layer above it.

    BuildKit 0.8 gives every folder a COPY creates or fills the time of the
    build (checked: even a folder copied from the context); ADD of a tar
    keeps the tar's times. So the deps, runtime and model layers come as
    tars like rootfs.tar: sorted, owned by root, SOURCE_DATE_EPOCH times.
    """
    context = b.out_dir / "context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    os.link(stamps["base"]["rootfs"], context / "rootfs.tar")
    app = Path(stamps["app"]["root"])
    deps = None if stamps["deps"] is None else Path(stamps["deps"]["site_packages"])  # None: deps: debian
    layer_tar(context / "deps.tar", at=board_site(b.target.python), tree=deps)
    layer_tar(context / "runtime.tar", at="usr", tree=app / "usr")
    layer_tar(context / "model.tar", at="opt", tree=app / "opt")
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


def _host_compiles(b: Build) -> bool:
    return f"{sys.version_info.major}.{sys.version_info.minor}" == b.target.python


def _bytecode_stage(b: Build) -> str:
    """The Dockerfile's stage under the app: bytecode made on the host, or by the image's own Python."""
    return "base" if _host_compiles(b) else "base-compiled"


def _bytecode_key(b: Build) -> str:
    """Who makes the bytecode, and how: part of the key of each step whose tree holds it."""
    return digest(_bytecode_stage(b), inspect.getsource(_precompile))


def _precompile(tree: Path, b: Build, *, board: str) -> None:
    """Bytecode for the board, made by the host when its Python is the target's.

    Under QEMU, compiling numpy's and onnxruntime's modules at each start would
    cost seconds; .pyc files are architecture-independent. unchecked-hash keeps
    them valid whatever the files' mtimes become. Each .pyc names its source:
    -s/-p make that ``board`` (where ``tree`` is in the image), not this
    checkout's folder; a fixed hash seed keeps frozenset constants in one
    order. With another Python than the target's, the image build compiles
    instead (stage base-compiled).
    """
    if not _host_compiles(b):
        return
    argv = [sys.executable, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash"]
    b.runner.run([*argv, "-s", str(tree), "-p", f"/{board}", str(tree)], env={"PYTHONHASHSEED": "0"},
                 what=f"precompiling {tree.name}")  # fmt: skip
