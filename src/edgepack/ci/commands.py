"""What the ``ci.*`` and ``builders.*`` tasks call."""

from __future__ import annotations

import json
import os
import sys

from rich.console import Console
from rich.table import Table

from edgepack.ci import matrix, release, workflow
from edgepack.commands.boundary import project
from edgepack.config import Project, load_target
from edgepack.errors import ConfigError, ToolchainError
from edgepack.fsutil import write_text
from edgepack.host import builders
from edgepack.host.binfmt import BinfmtMisc
from edgepack.pipeline.context import Build
from edgepack.pipeline.docker import BuildxOptions
from edgepack.pipeline.image import IMAGE_SOURCE_ENV, push_image
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import Step
from edgepack.runner import Runner

console = Console(highlight=False)


def _project() -> Project:
    return project()


def print_matrix(*, only: str) -> None:
    """One line of JSON on stdout, nothing else: the workflow writes it to $GITHUB_OUTPUT."""
    rows = matrix.entries(_project(), only=only)
    sys.stdout.write(json.dumps(matrix.as_json_matrix(rows), separators=(",", ":")) + "\n")


def write_workflow(*, check: bool) -> None:
    proj = _project()
    files = f"{workflow.WORKFLOW}, {workflow.LOCKS_WORKFLOW}"
    if check:
        workflow.check(proj)
        console.print(f"{files}: up to date")
        return
    workflow.write(proj)
    console.print(f"wrote {files}")


def push(
    target_name: str,
    *,
    image: str,
    builder: str,
    model: str | None,
    cache_from: tuple[str, ...],
    verbose: bool,
) -> None:
    """Push a smoke-tested build; write ``build/<target>/pushed.txt`` (image@digest) for signing."""
    proj = _project()
    target = load_target(proj, target_name)
    run = Runner(echo=verbose)
    found = builders.inspect(builder, runner=run)
    if found is None or found.driver == "docker":
        raise ToolchainError(
            f"pushing with SBOM and provenance attestations needs a docker-container builder; "
            f"'{builder}' is {'missing' if found is None else 'the docker driver'}.",
            hint="Use setup-buildx-action's builder, or: docker buildx create --driver docker-container",
        )
    b = Build(
        target=target,
        project=proj,
        runner=run,
        model=model or target.model,
        buildx=BuildxOptions(builder, cache_from, ()),
    )
    steps = plan(b)
    _require_smoke_run_here(b, steps)
    metadata = b.out_dir / "push-metadata.json"
    push_image(b, steps, ref=image, metadata_file=metadata)
    digest = json.loads(metadata.read_text()).get("containerimage.digest", "")
    if not digest.startswith("sha256:"):
        raise ToolchainError(f"buildx pushed {image} but wrote no digest to {metadata}.")
    pushed = f"{_repository(image)}@{digest}"
    write_text(b.out_dir / "pushed.txt", pushed + "\n")
    console.print(f"pushed  {pushed}")


def _require_smoke_run_here(b: Build, steps: list[Step]) -> None:
    """A restored smoke stamp is no smoke test: the build in this job must have run it (ci.release)."""
    by_name = {s.name: s for s in steps}
    image = b.cache.lookup(by_name["image"])
    if image is None:  # push_image names every step that is not built
        return
    planned = release.Planned(
        target=b.target.name,
        image_key=by_name["image"].key,
        smoke_key=by_name["smoke"].key,
        image_id=image["id"],
    )
    release.require_smoke_run(release.read_report(b.out_dir / "report.json"), planned)
    release.require_source_label(
        image.get("labels", {}), source=os.environ.get(IMAGE_SOURCE_ENV), target=b.target.name
    )


def _repository(image: str) -> str:
    """``registry/name:tag`` without its tag (a registry's ``host:port`` keeps its colon)."""
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def add_builder(
    node: str, *, endpoint: str, platforms: tuple[str, ...], bootstrap: bool, verbose: bool
) -> None:
    if not platforms:
        raise ConfigError("builders.add needs --platform (what the node builds natively, e.g. linux/arm64).")
    builder = builders.add(
        node, endpoint=endpoint, platforms=platforms, runner=Runner(echo=verbose), bootstrap=bootstrap
    )
    console.print(f"builder {builder.name}: {', '.join(n.name for n in builder.nodes)}")


def list_builders(*, as_json: bool = False) -> None:
    """Every buildx node and what it builds natively; then where each target would build."""
    run = Runner(echo=False)
    found = builders.list_builders(runner=run)
    if as_json:
        proj = _project()
        pool = [b for b in found if b.name in (builders.BUILDER, builders.LOCAL)]
        targets = {}
        for name in proj.target_names():
            try:
                targets[name] = builders.choose(
                    load_target(proj, name), builders=pool, binfmt=BinfmtMisc()
                ).describe()
            except ToolchainError as exc:
                targets[name] = f"none: {exc.message}"
        nodes = [
            {
                "builder": b.name,
                "driver": b.driver,
                "node": n.name,
                "endpoint": n.endpoint,
                "status": n.status,
                "native": list(n.native),
                "platforms": list(n.platforms),
            }
            for b in found
            for n in b.nodes
        ]
        print(json.dumps({"nodes": nodes, "targets": targets}, indent=2))
        return
    table = Table(title="buildx nodes", title_justify="left")
    for col in ("builder", "driver", "node", "endpoint", "status", "native", "other (QEMU or compatible)"):
        table.add_column(col)
    for b in found:
        for n in b.nodes:
            emulated = [p for p in n.platforms if p not in n.native]
            table.add_row(
                b.name, b.driver, n.name, n.endpoint, n.status, ", ".join(n.native), ", ".join(emulated)
            )
    console.print(table)
    proj = _project()
    preferred = sorted(found, key=lambda b: (b.name != builders.BUILDER, b.name != builders.LOCAL))
    pool = [b for b in preferred if b.name in (builders.BUILDER, builders.LOCAL)]
    for name in proj.target_names():
        target = load_target(proj, name)
        try:
            where = builders.choose(target, builders=pool, binfmt=BinfmtMisc()).describe()
        except ToolchainError as exc:
            where = f"[red]none[/]: {exc.message}"
        console.print(f"{name:>12}  {where}")
