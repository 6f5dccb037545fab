"""``edgepack init``: a new project in an empty folder (``edgepack.scaffold``)."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from edgepack.ci import workflow
from edgepack.commands.boundary import command
from edgepack.config import find_project
from edgepack.errors import ConfigError
from edgepack.scaffold import plan_project, write_project
from edgepack.ui import console


@command(
    help={
        "folder": "where to create the project (default: the current folder)",
        "name": "the target's name (default: the folder's name)",
        "board": "the built-in board the target extends (see: edgepack targets)",
        "model": "your model as an ONNX file (copied into models/)",
        "factory": "or your torch model: package.module:callable returning the nn.Module",
    },
)
def init(
    c: Context,
    folder: str | None = None,
    name: str = "",
    board: str = "rpi4",
    model: str | None = None,
    factory: str | None = None,
) -> None:
    """Create a project: edgepack.toml, a target extending a board, a model spec, samples/, tasks.py, CI."""
    folder = folder or "."
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if (root / "edgepack.toml").exists():
        raise ConfigError(
            f"{root / 'edgepack.toml'} exists: edgepack init does not overwrite a project.",
            hint="Run it in an empty folder (edgepack init DIR).",
        )
    wanted = name or root.name.lower().replace("_", "-").replace(" ", "-")
    plan = plan_project(root, name=wanted, board=board, model=Path(model) if model else None, factory=factory)
    written = write_project(plan)
    written += workflow.write_all(find_project(root))
    for path in written:
        console.print(f"wrote   {path.relative_to(root)}")
    console.print(f"next    cd {folder} && edgepack build --target {plan.name} --dry-run")
