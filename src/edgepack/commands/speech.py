"""``edgepack speech.finetune``: the bundled recogniser fine-tuned on the user's recordings (speech/)."""

from __future__ import annotations

import json
import sys

from invoke.context import Context

from edgepack.commands.boundary import command, given, integer, project
from edgepack.ui import console


@command(
    help={
        "data": "folder of WAV files (any rate) and manifest.jsonl ({audio, text} per line)",
        "name": "name of the new model spec (models/NAME.yaml)",
        "epochs": "passes over the recordings",
    },
    required=("data",),
)
def finetune(c: Context, data: str | None = None, name: str = "cmdasr-finetuned", epochs: str = "6") -> None:
    """Fine-tune the bundled recogniser on your recordings; writes models/NAME.yaml for edgepack build."""
    proj = project()
    sys.path.insert(0, str(proj.root))  # speech/ is the project's training code, not an installed package
    from speech.finetune import finetune as run

    base = proj.root / "speech" / "weights" / "cmdasr.pt"
    rounds = integer("epochs", epochs, minimum=1, maximum=200)
    result = run(proj.root / given(data), name=name, base=base, epochs=rounds, root=proj.root)
    console.print_json(json.dumps(result))
