"""Smoke inference: run the baked-in model on the baked-in input, report outputs and latency.

The same code runs on the host (the reference) and in the image under QEMU or
on the board; the host compares the two.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepack_runtime.arrays import encode
from edgepack_runtime.audio import read_wav, require_rate
from edgepack_runtime.procstats import process_stats
from edgepack_runtime.session import platform_info, session

if TYPE_CHECKING:  # a LiteRT image has no onnxruntime: sessions are made where used
    import onnxruntime as ort


class SpecError(ValueError):
    """The smoke spec (spec.json) is missing, unreadable or not what edgepack writes."""


def load_spec(path: Path) -> dict[str, Any]:
    """The smoke spec, checked: a clear one-line error naming the file, never a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{path}: no smoke spec there: give --spec build/<target>/smoke/spec.json (or run in the image)."
        ) from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder; give the spec.json inside it.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}.") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}.") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: not an edgepack smoke spec (a JSON object is expected).")
    missing = [k for k in ("model", "kind", "runs", "threads") if k not in spec]
    if missing:
        raise SpecError(f"{path}: not an edgepack smoke spec (missing {', '.join(missing)}).")
    checked: dict[str, Any] = spec
    return checked


def run_smoke(
    spec_path: Path,
    *,
    runs: int | None = None,
    threads: int | None = None,
    chunk_seconds: list[float] | None = None,
) -> dict[str, Any]:
    """``chunk_seconds``, when given, receives every call's latency (metrics.bench takes p99 from it)."""
    spec = load_spec(spec_path)
    base = spec_path.parent
    runs = runs or int(spec["runs"])
    model = base / spec["model"]
    if model.suffix == ".tflite":  # a LiteRT image: generic models (the streaming ones use onnxruntime)
        return _run_engine(
            model, base / spec["input"], spec, runs=runs, threads=threads or int(spec["threads"])
        )
    t0 = time.perf_counter()
    sess = session(model, threads=threads or int(spec["threads"]), providers=spec.get("providers"))
    load_ms = (time.perf_counter() - t0) * 1e3
    extra: dict[str, Any] = {}
    if spec["kind"] == "vad":
        outputs, calls, passes, seconds = _run_vad(sess, base / spec["input"], spec, runs)
        unit = "chunk of 512 samples (32 ms)"
    elif spec["kind"] == "asr":
        outputs, calls, passes, seconds, extra = _run_asr(sess, base / spec["input"], spec, runs)
        unit = f"streaming chunk of {spec['chunk_ms']} ms"
    else:
        outputs, passes, seconds = _run_generic(sess, base / spec["input"], runs)
        calls, unit = passes, "run"
    if chunk_seconds is not None:
        chunk_seconds.extend(calls)
    return {
        "runtime": platform_info(),
        "providers": sess.get_providers(),  # what ran: the session drops providers it could not use
        "outputs": {name: encode(value) for name, value in outputs.items()},
        "load_ms": round(load_ms, 3),
        "latency_ms": {"unit": unit, **_stats(calls)},
        "pass_ms": _stats(passes),
        "audio_seconds": seconds,
        "rtf": float(np.median(passes) / seconds) if seconds else None,
        # This process's peak (VmHWM); under QEMU user mode, the emulator's own memory included.
        "peak_rss_mb": round(process_stats()["peak_rss_bytes"] / 1e6, 1),
        **extra,
    }


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1e3
    return {
        "count": len(ms),
        "min": float(ms.min()),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "mean": float(ms.mean()),
    }


def _run_engine(model: Path, npz: Path, spec: dict[str, Any], *, runs: int, threads: int) -> dict[str, Any]:
    """A model run by ``engines`` (LiteRT): the generic smoke, outputs named output_0, output_1, ..."""
    from edgepack_runtime.engines import open_model

    if spec["kind"] in ("vad", "asr"):
        raise SpecError(f"{model.name}: the {spec['kind']} runtime streams through onnxruntime sessions.")
    t0 = time.perf_counter()
    engine = open_model(model, threads=threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    with np.load(npz, allow_pickle=False) as data:
        feeds = {name: data[name] for name in data.files}
    times = []
    values: list[np.ndarray] = []
    for _ in range(runs):
        t1 = time.perf_counter()
        values = engine.run(feeds)
        times.append(time.perf_counter() - t1)
    return {
        "runtime": platform_info(),
        "providers": [f"{engine.name} {engine.version}"],
        "outputs": {_name(spec, i): encode(v) for i, v in enumerate(values)},
        "load_ms": round(load_ms, 3),
        "latency_ms": {"unit": "run", **_stats(times)},
        "pass_ms": _stats(times),
        "audio_seconds": 0.0,
        "rtf": None,
        "peak_rss_mb": round(process_stats()["peak_rss_bytes"] / 1e6, 1),
    }


def _name(spec: dict[str, Any], index: int) -> str:
    names = spec.get("outputs") or []
    return str(names[index]) if index < len(names) else f"output_{index}"


def _run_vad(
    sess: ort.InferenceSession, wav: Path, spec: dict[str, Any], runs: int
) -> tuple[dict[str, np.ndarray], list[float], list[float], float]:
    from edgepack_runtime.vad import SileroVAD

    audio = read_wav(wav)
    require_rate(audio, expected=int(spec["sample_rate"]), source=str(wav))
    vad = SileroVAD(sess)
    chunks: list[float] = []
    passes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        probs = vad.probabilities(audio.samples, chunk_seconds=chunks)
        passes.append(time.perf_counter() - t0)
    return {"speech_prob": probs}, chunks, passes, len(audio.samples) / audio.rate


def _run_asr(
    sess: ort.InferenceSession, wav: Path, spec: dict[str, Any], runs: int
) -> tuple[dict[str, np.ndarray], list[float], list[float], float, dict[str, Any]]:
    """Stream the utterance as the board would; the text is checked against the expected transcript."""
    from edgepack_runtime.asr import Recognizer, transcribe_stream
    from edgepack_runtime.resample import conform

    rec = Recognizer.from_session(sess, shown_as=spec["model"])
    audio = conform(read_wav(wav), rate=rec.rate, allow_resample=True, source=str(wav))
    chunks: list[float] = []
    passes = []
    for _ in range(runs):
        result = transcribe_stream(rec, audio.samples, chunk_ms=float(spec["chunk_ms"]))
        chunks += [ms / 1e3 for ms in result.chunk_ms]
        passes.append(result.compute_seconds)
    # The text the board answers: the grammar's best sentence when the model has a grammar.
    command = rec.command(result.log_probs)
    text = command.text if command is not None else result.text
    extra = {"text": text, "free_text": result.text, "expected_text": spec["text"],
             "partials": result.partials}  # fmt: skip
    return {"log_probs": result.log_probs}, chunks, passes, result.audio_seconds, extra


def _run_generic(
    sess: ort.InferenceSession, npz: Path, runs: int
) -> tuple[dict[str, np.ndarray], list[float], float]:
    with np.load(npz, allow_pickle=False) as data:
        feeds = {name: data[name] for name in data.files}
    names = [o.name for o in sess.get_outputs()]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        values = sess.run(names, feeds)
        times.append(time.perf_counter() - t0)
    return dict(zip(names, values, strict=True)), times, 0.0
