"""Task metrics that gate a converted model: VAD frame agreement, ASR word error rate.

The VAD task uses the streaming interface of Silero VAD (edgepack_runtime.vad):
512-sample chunks at 16 kHz with 64 samples of context and a carried state.
An ASR spec names its decoder (``evaluate.decoder``: a callable
``(session, samples float32, rate) -> text``), so the project's CTC model and
any other plug in without edgepack knowing their front end.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.errors import ConfigError, InputError
from edgepack.modelpipe.export import run_onnx, session
from edgepack.modelpipe.inputs import Feeds
from edgepack.modelpipe.spec import ModelSpec
from edgepack_runtime.audio import Audio, AudioError, read_wav
from edgepack_runtime.vad import SileroVAD


class _Recording:
    """An onnxruntime session that keeps every feed it is given (calibration from real streams)."""

    def __init__(self, sess: Any, keep: list[Feeds] | None = None) -> None:
        self.sess, self.keep = sess, keep

    def get_inputs(self) -> Any:
        return self.sess.get_inputs()

    def run(self, names: Any, feeds: Feeds) -> list[np.ndarray]:
        if self.keep is not None:
            self.keep.append({k: v.copy() for k, v in feeds.items()})
        return run_onnx(self.sess, feeds)


def read_audio(path: Path, spec: ModelSpec, *, what: str) -> Audio:
    try:
        audio = read_wav(path)
    except (AudioError, FileNotFoundError) as exc:
        raise InputError(f"{what}: {exc}") from None
    if audio.rate != spec.sample_rate:
        raise InputError(
            f"{what}: {path.name} is {audio.rate} Hz, the model expects {spec.sample_rate} Hz.",
            hint="Resample it (e.g. sox in.wav -r 16000 out.wav); a wrong rate shifts every frequency.",
        )
    return audio


def vad_probs(model: Path, audio: Audio, *, keep: list[Feeds] | None = None) -> np.ndarray:
    return SileroVAD(_Recording(session(model), keep)).probabilities(audio.samples)  # type: ignore[arg-type]


def calibration_feeds(spec: ModelSpec, fp32: Path, root: Path, *, limit: int) -> list[Feeds]:
    """Model inputs as the task produces them from real audio, spread evenly over the files."""
    files = spec.quantize.calibration.files
    if not files:
        raise InputError(
            f"model spec '{spec.name}': the calibration set is empty (quantize.calibration.files)."
        )
    if spec.task != "vad":
        raise ConfigError(
            f"model spec '{spec.name}': audio calibration is implemented for task vad; "
            "use calibration.source: synthetic."
        )
    feeds: list[Feeds] = []
    for name in files:
        vad_probs(fp32, read_audio(root / name, spec, what="calibration set"), keep=feeds)
    if not feeds:
        raise InputError(f"model spec '{spec.name}': the calibration audio is empty.")
    step = max(1, len(feeds) // max(limit, 1))
    return feeds[::step][:limit] if limit else feeds


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    limit: float
    ok: bool
    detail: str


def vad_agreement(spec: ModelSpec, fp32: Path, quant: Path, root: Path) -> list[Metric]:
    ev = spec.evaluate
    ref, got = [], []
    for name in ev.audio:
        audio = read_audio(root / name, spec, what="evaluation audio")
        ref.append(vad_probs(fp32, audio))
        got.append(vad_probs(quant, audio))
    r, g = np.concatenate(ref), np.concatenate(got)
    agree = float(np.mean((r > ev.threshold) == (g > ev.threshold)))
    diff = float(np.abs(r - g).max(initial=0.0))
    frames = f"{len(r)} frames of {len(ev.audio)} file(s)"
    return [
        Metric("frame agreement", agree, ev.min_frame_agreement, agree >= ev.min_frame_agreement, frames),
        Metric("max speech-prob diff", diff, ev.max_prob_diff, diff <= ev.max_prob_diff, frames),
    ]


def read_manifest(path: Path) -> list[tuple[Path, str]]:
    """JSON lines {"audio": "x.wav", "text": "..."}; audio relative to the manifest."""
    if not path.is_file():
        raise InputError(f"evaluation manifest {path} does not exist.")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            rows.append((path.parent / obj["audio"], str(obj["text"])))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{path}:{n}: expected a JSON object with 'audio' and 'text'.") from None
    if not rows:
        raise InputError(f"evaluation manifest {path} is empty.")
    return rows


def _decoder(spec: ModelSpec) -> Callable[[Any, np.ndarray, int], str]:
    module, _, attr = spec.evaluate.decoder.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(
            f"model spec '{spec.name}': evaluate.decoder '{spec.evaluate.decoder}' cannot be "
            "imported; it must be 'package.module:callable'."
        ) from None


def wer(spec: ModelSpec, fp32: Path, quant: Path, root: Path) -> list[Metric]:
    import jiwer

    decode = _decoder(spec)
    rows = read_manifest(root / spec.evaluate.manifest)
    refs = [text for _, text in rows]
    audios = [read_audio(p, spec, what="evaluation manifest") for p, _ in rows]
    scores = {}
    for label, model in (("fp32", fp32), ("quantized", quant)):
        sess = session(model)
        scores[label] = float(jiwer.wer(refs, [decode(sess, a.samples, a.rate) for a in audios]))
    increase = scores["quantized"] - scores["fp32"]
    limit = spec.evaluate.max_wer_increase
    detail = (
        f"WER fp32 {scores['fp32']:.3f} -> quantized {scores['quantized']:.3f} over {len(rows)} utterances"
    )
    return [
        Metric("WER increase", increase, limit, increase <= limit, detail),
        Metric("WER fp32", scores["fp32"], 1.0, True, "reference"),
        Metric("WER quantized", scores["quantized"], 1.0, True, ""),
    ]


def task_metrics(spec: ModelSpec, fp32: Path, quant: Path, root: Path) -> list[Metric]:
    if spec.task == "vad" and spec.evaluate.audio:
        return vad_agreement(spec, fp32, quant, root)
    if spec.task == "asr" and spec.evaluate.manifest:
        return wer(spec, fp32, quant, root)
    return []
