"""``edgepack builders.*``: native buildx nodes (an arm64 box over SSH) instead of QEMU."""

from __future__ import annotations

from edgepack.ci import commands as ci_actions
from edgepack.commands.boundary import command


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
def add(c, node=None, endpoint=None, platform=None, no_bootstrap=False, verbose=False):
    """Add a native builder node (docker buildx create --append) to the edgepack builder."""
    ci_actions.add_builder(
        node, endpoint=endpoint, platforms=tuple(platform), bootstrap=not no_bootstrap, verbose=verbose
    )


@command()
def ls(c):
    """buildx nodes and what each builds natively; where each target would build (native or QEMU)."""
    ci_actions.list_builders()
