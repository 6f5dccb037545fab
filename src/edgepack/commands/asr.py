"""``edgepack asr.*``: the speech demonstrations (docs/speech.md)."""

from __future__ import annotations

import json

from invoke.context import Context
from rich.table import Table

from edgepack.commands.boundary import command, given, project
from edgepack.ui import console

JSON_HELP = {"target": "target name", "json": "one JSON object instead of the table"}


@command(name="demo-rate", help=JSON_HELP, required=("target",))
def demo_rate(c: Context, target: str | None = None, json: bool = False) -> None:
    """WER of the held-out set: explicit resampling vs the same audio at 44.1 kHz fed as 16 kHz."""
    asr_demo("rate", target_name=given(target), as_json=json)


@command(name="demo-latency", help=JSON_HELP, required=("target",))
def demo_latency(c: Context, target: str | None = None, json: bool = False) -> None:
    """Streaming (per chunk, end of speech to text) vs whole-file latency, host, 1 thread."""
    asr_demo("latency", target_name=given(target), as_json=json)


@command(name="demo-blocks", help=JSON_HELP, required=("target",))
def demo_blocks(c: Context, target: str | None = None, json: bool = False) -> None:
    """Capture latency by callback block size (128..2048), a file driven at real-time pace."""
    asr_demo("blocks", target_name=given(target), as_json=json)


def asr_demo(which: str, *, target_name: str, as_json: bool) -> None:
    """One of edgepack.asrdemo's demonstrations with the target's model, as a table or JSON."""
    from edgepack import asrdemo

    proj = project()
    models = asrdemo.models(proj, target=target_name)
    result = getattr(asrdemo, which)(models["int8"], proj)
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(title=f"asr.demo-{which} ({models['int8'].name}, int8)", title_justify="left")
    table.add_column("case")
    table.add_column("result")
    for key, value in (result.get("wer") or result.get("blocks") or result).items():
        table.add_row(str(key), json.dumps(value) if isinstance(value, dict | list) else str(value))
    console.print(table)
