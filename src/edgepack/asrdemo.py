"""The speech demonstrations (docs/speech.md): what the numbers in the docs come from.

Each runs the runtime's own code on the host with the model the build bakes
in (the model stage's cached int8 file, and its fp32 export):

* ``rate``: WER with explicit resampling vs 44.1 kHz audio fed as 16 kHz;
* ``latency``: streaming (per-chunk and end-of-speech) vs whole-file latency;
* ``blocks``: capture latency by callback block size, a file at real-time pace.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.config import Project, load_target
from edgepack.pipeline.context import Build
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner

SPEC = "models/cmdasr.yaml"
MANIFEST = Path("assets/eval/cmdasr/manifest.jsonl")
BLOCKS = (128, 256, 512, 1024, 2048)
CHUNKS_MS = (80, 160, 320, 640)


def models(project: Project, *, target: str = "rpi4", spec: str = SPEC) -> dict[str, Path]:
    """The fp32 export and the final (int8) model of ``spec``: the model stage's, cached like a build's."""
    from edgepack.modelpipe.steps import plan_model

    b = Build(target=load_target(project, target), project=project, runner=Runner(echo=False), model=spec)
    records = {r.name: r for r in execute(plan_model(b), b.cache)}
    return {"fp32": Path(records["export"].outputs["dir"]) / "model.onnx",
            "int8": Path(records["validate"].outputs["dir"]) / "model.onnx"}  # fmt: skip


def heldout(project: Project, limit: int = 0) -> list[tuple[np.ndarray, str]]:
    from edgepack_runtime.audio import read_wav

    path = project.find(MANIFEST)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    return [(read_wav(path.parent / r["audio"]).samples, r["text"]) for r in rows]


def rate(model: Path, project: Project) -> dict[str, Any]:
    from edgepack_runtime.asr import Recognizer
    from edgepack_runtime.asrcli import rate_demo

    return rate_demo(Recognizer.load(model), project.find(MANIFEST))


def latency(model: Path, project: Project, *, chunks_ms: tuple[int, ...] = CHUNKS_MS) -> dict[str, Any]:
    """Whole-file: the text comes after all of it is processed. Streaming: after the last chunk."""
    from edgepack_runtime.asr import Recognizer, transcribe_stream

    rec = Recognizer.load(model, threads=1)
    data = heldout(project)
    rec.transcribe(data[0][0])  # warm-up
    batch = [rec.transcribe(x) for x, _ in data]
    out: dict[str, Any] = {"utterances": len(data), "threads": 1, "batch": {
        "end_of_speech_to_text_ms_p50": _ms(statistics.median(t.compute_seconds for t in batch)),
        "rtf_p50": round(statistics.median(t.rtf for t in batch), 4)}}  # fmt: skip
    for chunk in chunks_ms:
        runs = [transcribe_stream(rec, x, chunk_ms=chunk) for x, _ in data]
        chunk_ms = [ms for t in runs for ms in t.chunk_ms]
        out[f"stream_{chunk}ms"] = {
            "same_text_as_batch": all(s.text == b.text for s, b in zip(runs, batch, strict=True)),
            "chunk_latency_ms_p50": round(float(np.percentile(chunk_ms, 50)), 3),
            "chunk_latency_ms_p95": round(float(np.percentile(chunk_ms, 95)), 3),
            "end_of_speech_to_text_ms_p50": round(statistics.median(t.chunk_ms[-1] for t in runs), 3),
            "rtf_p50": round(statistics.median(t.rtf for t in runs), 4),
        }
    return out


def blocks(
    model: Path, project: Project, *, sizes: tuple[int, ...] = BLOCKS, utterances: int = 3
) -> dict[str, Any]:
    """``listen --file`` at real-time pace: the oldest sample's wait until processed, by block size."""
    import tempfile
    import wave

    from edgepack_runtime.asr import Recognizer
    from edgepack_runtime.live import listen

    rec = Recognizer.load(model, threads=1)
    gap = np.zeros(rec.rate, np.float32)  # 1 s: longer than live.END_SILENCE_S, so each is its own utterance
    audio = np.concatenate([np.concatenate([x, gap]) for x, _ in heldout(project, utterances)])
    out: dict[str, Any] = {"audio_seconds": round(len(audio) / rec.rate, 2), "rate": rec.rate, "blocks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "in.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rec.rate)
            w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
        for size in sizes:
            r = listen(
                rec, file=wav, device=None, block=size, chunk_ms=160, seconds=0, on_text=lambda k, t: None
            )
            c = r["counters"]
            out["blocks"][size] = {"block_ms": r["block_ms"], "capture_latency_ms": r["capture_latency_ms"],
                                   "callbacks": c["callbacks"], "dropouts": c["dropouts"],
                                   "overruns": c["overruns"], "texts": r["texts"]}  # fmt: skip
            out["scheduling"] = r["scheduling"]
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)
