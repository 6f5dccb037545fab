"""``edgepack builders.*``: native buildx nodes (an arm64 box over SSH) instead of QEMU."""

from __future__ import annotations

from invoke.context import Context

from edgepack.ci import commands as ci_actions
from edgepack.commands.boundary import command, given


@command(
    iterable=["platform"],
    help={
        "node": "node name",
        "endpoint": "ssh://user@host (Docker) or a context",
        "platform": "what the node builds natively, e.g. linux/arm64 (repeatable)",
        "no_bootstrap": "do not start BuildKit on the node now",
        "verbose": "echo every command",
    },
    required=("node", "endpoint"),
)
def add(
    c: Context,
    node: str | None = None,
    endpoint: str | None = None,
    platform: list[str] | None = None,
    no_bootstrap: bool = False,
    verbose: bool = False,
) -> None:
    """Add a native builder node (docker buildx create --append) to the edgepack builder."""
    ci_actions.add_builder(
        given(node),
        endpoint=given(endpoint),
        platforms=tuple(platform or ()),
        bootstrap=not no_bootstrap,
        verbose=verbose,
    )


@command(help={"json": "print the nodes and the targets' choices as JSON"})
def ls(c: Context, json: bool = False) -> None:
    """buildx nodes and what each builds natively; where each target would build (native or QEMU)."""
    ci_actions.list_builders(as_json=json)
