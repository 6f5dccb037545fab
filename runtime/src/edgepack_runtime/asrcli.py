"""The speech commands of ``python -m edgepack_runtime``: transcribe, debug-audio, listen, demo-rate.

One error boundary: a foreseeable problem (bad audio, a model without its
metadata, a missing capture device) is one line on stderr and exit code 2,
never a traceback. Log lines (resampling, mono mixing) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime.argtypes import milliseconds, seconds, whole
from edgepack_runtime.audio import Audio, AudioError, read_wav, require_signal
from edgepack_runtime.capture import CaptureError
from edgepack_runtime.modelmeta import ModelMetaError

DEFAULT_MODEL = Path("/opt/edgepack/model/model.onnx")
COMMANDS = ("transcribe", "debug-audio", "listen", "demo-rate")
NO_COMMAND = "(no command)"
log = logging.getLogger("edgepack_runtime")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser("transcribe", help="speech to text of a WAV file (whole, or streamed in chunks)")
    t.add_argument("file", type=Path)
    t.add_argument("--stream", action="store_true", help="stream it: partial text per chunk, latency")
    t.add_argument(
        "--chunk-ms", type=milliseconds, default=320.0, help="streaming chunk (ms of audio, 20..10000)"
    )
    d = sub.add_parser("debug-audio", help="rate, channels, level, and what the model would see; --png")
    d.add_argument("file", type=Path)
    d.add_argument("--png", type=Path, default=None, help="log-mel at the right and at the wrong rate")
    li = sub.add_parser("listen", help="live capture -> streaming ASR (--file: a file at real-time pace)")
    li.add_argument("--device", default=None, help="input device name or index (default: the system's)")
    li.add_argument("--block", type=whole(16, 65536), default=256, help="samples per capture callback")
    li.add_argument("--file", type=Path, default=None, help="drive the capture callback from a WAV file")
    li.add_argument(
        "--chunk-ms", type=milliseconds, default=160.0, help="streaming chunk (ms of audio, 20..10000)"
    )
    li.add_argument(
        "--ring-seconds",
        type=seconds(0.1, 600.0),
        default=2.0,
        help="capture ring buffer (s of audio, made once): a longer stall of inference drops blocks",
    )
    li.add_argument(
        "--seconds",
        type=seconds(0.0, 86_400.0),
        default=0.0,
        help="stop after this long (0: file end / Ctrl-C)",
    )
    r = sub.add_parser("demo-rate", help="WER with explicit resampling vs 44.1 kHz audio fed as 16 kHz")
    r.add_argument("manifest", type=Path, help="JSON lines of {audio, text}, audio relative to it")
    for p in (t, d, li, r):
        p.add_argument(
            "--model", type=Path, default=None, help="default: the image's, or --target's last build"
        )
        p.add_argument(
            "--target", default=None, help="on the host: the last build of this target (build/NAME/)"
        )
        p.add_argument("--threads", type=whole(1, 256), default=1)
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    for p in (t, d, li):
        p.add_argument("--no-resample", action="store_true", help="a rate other than the model's is an error")
    for p in (t, li):
        p.add_argument(
            "--free-text",
            action="store_true",
            help="greedy CTC text, not decoded into the model's command grammar",
        )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(format="edgepack-runtime: %(message)s", level=logging.INFO, stream=sys.stderr)
    try:
        result = _COMMANDS[args.command](args)
    except (AudioError, ModelMetaError, CaptureError, FileNotFoundError) as exc:
        print(f"edgepack-runtime: {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(result))
    return 0


def _recognizer(args: argparse.Namespace) -> Any:
    from edgepack_runtime.asr import Recognizer

    try:
        return Recognizer.load(args.model, threads=args.threads)
    except (ModelMetaError, FileNotFoundError):
        raise
    except Exception as exc:  # onnxruntime raises untyped errors for a file that is not a model
        raise ModelMetaError(
            f"{args.model}: onnxruntime cannot load it: {str(exc).splitlines()[0]}"
        ) from None


def _input(args: argparse.Namespace, rate: int) -> Audio:
    from edgepack_runtime.resample import conform

    audio = read_wav(args.file)
    if audio.channels > 1:
        log.info("%s: %d channels mixed to mono", args.file, audio.channels)
    lv = require_signal(audio, source=str(args.file))
    if lv.clipped:
        log.info("%s: %d samples at full scale: the recording is probably clipped", args.file, lv.clipped)
    return conform(audio, rate=rate, allow_resample=not args.no_resample, source=str(args.file))


def _transcribe(args: argparse.Namespace) -> dict[str, Any]:
    from edgepack_runtime.asr import transcribe_stream

    rec = _recognizer(args)
    audio = _input(args, rec.rate)
    if args.stream:
        window = rec.meta.frontend.win_length
        if len(audio.samples) < window:  # as the whole-file run refuses it: nothing to stream
            raise AudioError(
                f"{args.file}: audio of {len(audio.samples)} samples is shorter than one analysis "
                f"window ({window} samples at {rec.rate} Hz)."
            )
        result = transcribe_stream(rec, audio.samples, chunk_ms=args.chunk_ms)
        if not args.json:
            for partial in result.partials:
                print(f"partial: {partial}", flush=True)
    else:
        result = rec.transcribe(audio.samples)
    t0 = time.perf_counter()
    command = None if args.free_text else rec.command(result.log_probs)
    compute = result.compute_seconds + time.perf_counter() - t0
    text = result.text if command is None else command.text if command.accepted else ""
    if not args.json:
        print(text if command is None or command.accepted else NO_COMMAND)
    if command is not None:
        _log_command(command)
    out = {
        "text": text,
        "free_text": result.text,
        "command": command.as_dict() if command else None,
        "mode": "stream" if args.stream else "batch",
        "audio_seconds": result.audio_seconds,
        "compute_ms": round(compute * 1e3, 3),
        "rtf": compute / result.audio_seconds if result.audio_seconds else None,
    }
    if args.stream:
        out |= {
            "chunk_ms": args.chunk_ms,
            "partials": result.partials,
            "chunk_latency_ms": _pcts(result.chunk_ms),
        }
    log.info(
        "rtf %.4f (%.0f ms for %.2f s of audio)%s",
        out["rtf"],
        compute * 1e3,
        result.audio_seconds,
        _latency_line(result.chunk_ms) if args.stream else "",
    )
    return out


def _log_command(command: Any) -> None:
    if command.accepted:
        slots = " ".join(f"{k}={v!r}" for k, v in command.slots.items())
        log.info(
            "command %r (%s%s), confidence %.2f",
            command.text,
            command.intent,
            f"; {slots}" if slots else "",
            command.confidence,
        )
    else:
        log.info(
            "no command: the best match %r has confidence %.2f, under the threshold",
            command.text,
            command.confidence,
        )


def _debug_audio(args: argparse.Namespace) -> dict[str, Any]:
    from edgepack_runtime import debugaudio

    rec = _recognizer(args)
    audio = read_wav(args.file)
    info = debugaudio.describe(audio, rec.meta, allow_resample=not args.no_resample)
    if args.png is not None and not audio.samples.size:
        raise AudioError(
            f"{args.file}: the file has no samples: there is no picture to draw into {args.png}."
        )
    if args.png is not None:
        right, wrong, caption = debugaudio.spectrograms(audio, rec.meta)
        debugaudio.write_png(args.png, right, wrong, hop_s=rec.meta.frontend.hop_length / rec.rate)
        info |= {"png": str(args.png), "png_left": f"at {rec.rate} Hz (correct)", "png_right": caption}
    if not args.json:
        for key, value in info.items():
            print(f"{key:>16}  {value}")
    return info


def _listen(args: argparse.Namespace) -> dict[str, Any]:
    from edgepack_runtime.live import listen

    rec = _recognizer(args)
    if args.file is not None:
        audio = read_wav(args.file)
        require_signal(audio, source=str(args.file))
        if audio.rate != rec.rate:
            from edgepack_runtime.resample import QUALITY, conform

            if args.no_resample:
                conform(audio, rate=rec.rate, allow_resample=False, source=str(args.file))
            # The same line as transcribe's; listen resamples block by block as the audio arrives.
            log.info(
                "%s: %d Hz resampled to the model's %d Hz (soxr %s, streaming)",
                args.file,
                audio.rate,
                rec.rate,
                QUALITY,
            )

    def on_text(kind: str, text: str) -> None:
        if not args.json:
            print(f"{kind}: {text}", flush=True)

    result = listen(
        rec,
        file=args.file,
        device=args.device,
        block=args.block,
        chunk_ms=args.chunk_ms,
        seconds=args.seconds,
        on_text=on_text,
        free_text=args.free_text,
        ring_seconds=args.ring_seconds,
    )
    c = result["counters"]
    if "device" in result:
        device = result["device"]
        log.info("captured from %s through %s at %d Hz", device["name"], device["backend"], result["rate"])
        pace = result["delivery_x_realtime"]
        if pace and pace > 1.5:
            log.warning(
                "the device delivered %.1fx faster than real time: not a live microphone (an ALSA file or "
                "null PCM?); blocks the ring could not hold were dropped and counted",
                pace,
            )
    log.info(
        "%s; %d callbacks, %d overruns, %d dropouts (%d samples), %d chunk errors%s",
        result["scheduling"],
        c["callbacks"],
        c["overruns"],
        c["dropouts"],
        c["dropped"],
        c["chunk_errors"],
        f" (last: {c['last_error']})" if c["last_error"] else "",
    )
    return result


def _demo_rate(args: argparse.Namespace) -> dict[str, Any]:
    result = rate_demo(_recognizer(args), args.manifest)
    if not args.json:
        for name, wer in result["wer"].items():
            print(f"{wer:7.1%}  {name}   e.g. {result['examples'][name]!r}", flush=True)
        print(f"         reference: {result['reference']!r} ({result['utterances']} utterances)")
    return result


def rate_demo(rec: Any, manifest: Path, *, wrong: int = 44100) -> dict[str, Any]:
    """Corpus WER of the manifest's audio as recorded, captured at other rates and resampled, or not."""
    from edgepack_runtime.asr import transcribe_stream
    from edgepack_runtime.resample import resample

    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]

    def captured_at(rate: int, *, guard: bool) -> Any:
        """The audio as a device at ``rate`` records it, then resampled back (guard) or fed as it is."""

        def make(x: np.ndarray) -> np.ndarray:
            y = resample(x, src_rate=rec.rate, dst_rate=rate)
            return resample(y, src_rate=rate, dst_rate=rec.rate) if guard else y

        return make

    conditions = {
        f"{rec.rate} Hz as recorded": lambda x: x,
        f"{wrong} Hz, resampled to {rec.rate} Hz (the guard)": captured_at(wrong, guard=True),
        f"{wrong} Hz fed as {rec.rate} Hz (no guard)": captured_at(wrong, guard=False),
        f"8000 Hz, resampled to {rec.rate} Hz": captured_at(8000, guard=True),
    }
    refs = [str(r["text"]) for r in rows]
    audios = [read_wav(manifest.parent / r["audio"]) for r in rows]
    result: dict[str, Any] = {"utterances": len(rows), "model_rate": rec.rate, "reference": refs[0]}
    result |= {"wer": {}, "examples": {}}
    for name, make in conditions.items():
        hyps = [transcribe_stream(rec, make(a.samples)).text for a in audios]
        result["wer"][name] = round(corpus_wer(refs, hyps), 4)
        result["examples"][name] = hyps[0]
    return result


def corpus_wer(refs: list[str], hyps: list[str]) -> float:
    """Word errors over all utterances / reference words (jiwer's definition)."""
    from edgepack_runtime.metrics import wer

    words = sum(len(r.split()) for r in refs)
    return sum(wer(r, h) * len(r.split()) for r, h in zip(refs, hyps, strict=True)) / max(words, 1)


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"count": len(values), "p50": round(float(p50), 3), "p95": round(float(p95), 3)}


def _latency_line(chunk_ms: list[float]) -> str:
    p = _pcts(chunk_ms)
    return (
        f"; chunk latency p50 {p['p50']:.1f} ms p95 {p['p95']:.1f} ms ({p['count']} chunks)"
        if chunk_ms
        else ""
    )


_COMMANDS = {
    "transcribe": _transcribe,
    "debug-audio": _debug_audio,
    "listen": _listen,
    "demo-rate": _demo_rate,
}
