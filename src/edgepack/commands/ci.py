"""``edgepack ci.*``: the CI matrix and workflow generated from targets/, and the release push."""

from __future__ import annotations

from invoke.context import Context

from edgepack.ci import commands as ci_actions
from edgepack.commands.boundary import command, given


@command(help={"target": "one target's entry (default: every target)", "only": "the old name of --target"})
def matrix(c: Context, target: str = "all", only: str = "") -> None:
    """Print the CI matrix (JSON) from targets/ and .github/matrix.yaml: the workflow's first job runs it."""
    ci_actions.print_matrix(only=only or target)


@command(help={"check": "fail (exit 2) when .github/workflows/ is not what targets/ generate"})
def workflow(c: Context, check: bool = False) -> None:
    """Regenerate .github/workflows/*.yml from targets/, .github/matrix.yaml and the pinned actions."""
    ci_actions.write_workflow(check=check)


@command(
    iterable=["cache_from"],
    help={
        "target": "target name",
        "image": "registry/name:tag to push to",
        "builder": "a docker-container buildx builder (attestations need one)",
        "model": "the model the build used, when not the target's",
        "cache_from": "buildx layer cache to read (repeatable)",
        "verbose": "echo every command",
    },
    required=("target", "image", "builder"),
)
def push(
    c: Context,
    target: str | None = None,
    image: str | None = None,
    builder: str | None = None,
    model: str | None = None,
    cache_from: list[str] | None = None,
    verbose: bool = False,
) -> None:
    """Push a smoke-tested build with SBOM and provenance; writes build/<target>/pushed.txt (image@digest)."""
    ci_actions.push(
        given(target),
        image=given(image),
        builder=given(builder),
        model=model,
        cache_from=tuple(cache_from or ()),
        verbose=verbose,
    )
