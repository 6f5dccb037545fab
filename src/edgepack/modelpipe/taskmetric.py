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
    return SileroVAD(_Recording(session(model), keep)).probabilities(audio.samples)


def calibration_feeds(spec: ModelSpec, fp32: Path, root: Path, *, limit: int) -> list[Feeds]:
    """Model inputs as the task produces them from real audio, spread evenly over the files."""
    files = spec.quantize.calibration.files
    if not files:
        raise InputError(
            f"model spec '{spec.name}': the calibration set is empty (quantize.calibration.files)."
        )
    if spec.task not in ("vad", "asr"):
        raise ConfigError(
            f"model spec '{spec.name}': audio calibration is implemented for tasks vad and asr; "
            "use calibration.source: synthetic or samples."
        )
    feeds: list[Feeds] = []
    for name in files:
        audio = read_audio(root / name, spec, what="calibration set")
        if spec.task == "vad":
            vad_probs(fp32, audio, keep=feeds)
        else:
            asr_chunks(fp32, audio, keep=feeds)
    if not feeds:
        raise InputError(f"model spec '{spec.name}': the calibration audio is empty.")
    step = max(1, len(feeds) // max(limit, 1))
    return feeds[::step][:limit] if limit else feeds


def asr_chunks(model: Path, audio: Audio, *, keep: list[Feeds]) -> None:
    """The streaming step's inputs as the runtime makes them from ``audio`` (features with their left
    context, the GRU state carried from chunk to chunk), every full chunk of the default size."""
    from edgepack_runtime.asr import DEFAULT_CHUNK_MS, Recognizer
    from edgepack_runtime.features import log_mel

    rec = Recognizer.from_session(session(model), shown_as=str(model))
    m = rec.meta
    feats = log_mel(audio.samples, m.frontend, normalizer=m.normalizer)
    history, h = rec.initial_state()
    size = rec.chunk_frames(DEFAULT_CHUNK_MS)
    for start in range(0, len(feats) - size + 1, size):
        x = np.concatenate([history, feats[None, start : start + size]], axis=1).astype(np.float32)
        keep.append({"feats": x, "h0": h.copy()})
        _, h = rec.run(x, h)
        history = x[:, -m.left_context :]


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
        decoder: Callable[[Any, np.ndarray, int], str] = getattr(importlib.import_module(module), attr)
        return decoder
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


Outputs = list[tuple[str, list[np.ndarray], list[np.ndarray]]]  # (input set, fp32 outputs, quantized)


def task_metrics(
    spec: ModelSpec, fp32: Path, quant: Path, root: Path, outputs: Outputs | None = None
) -> list[Metric]:
    """The spec's task metric, plus the user's (evaluate.metric); ``outputs``: both models', judged sets."""
    if spec.task == "vad" and spec.evaluate.audio:
        found = vad_agreement(spec, fp32, quant, root)
    elif spec.task == "asr" and spec.evaluate.manifest:
        found = wer(spec, fp32, quant, root)
    elif spec.task in ("embedding", "classifier", "mask") and outputs:
        ref, got = _rows(spec, outputs)
        found = {"embedding": embedding, "classifier": classifier, "mask": mask_iou}[spec.task](
            spec, ref, got, len(outputs)
        )
    else:
        found = []
    if spec.evaluate.metric and outputs:
        found.append(user_metric(spec, outputs))
    return found


def _judged(spec: ModelSpec) -> int:
    name = spec.evaluate.output
    if not name:
        return 0
    if name not in spec.outputs:
        raise ConfigError(
            f"model spec '{spec.name}': evaluate.output '{name}' is not an output "
            f"(outputs: {', '.join(spec.outputs)})."
        )
    return spec.outputs.index(name)


def _rows(spec: ModelSpec, outputs: Outputs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    i = _judged(spec)
    return [r[i] for _, r, _ in outputs], [g[i] for _, _, g in outputs]


def _matrix(arrays: list[np.ndarray]) -> np.ndarray:
    """One row per item: [batch, dim] stays, [batch, ..., dim] is flattened to rows of the last axis."""
    return np.concatenate([a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1) for a in arrays]).astype(
        np.float64
    )


def _unit(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1.0, norms)


def embedding(spec: ModelSpec, ref: list[np.ndarray], got: list[np.ndarray], sets: int) -> list[Metric]:
    """Cosine of each embedding to its fp32 self, and whether each keeps its nearest neighbour."""
    ev = spec.evaluate
    r, g = _unit(_matrix(ref)), _unit(_matrix(got))
    cos = np.sum(r * g, axis=1)
    detail = f"{len(r)} embeddings from {sets} input sets"
    found = [Metric("embedding cosine (least)", float(cos.min()), ev.min_output_cosine,
                    bool(cos.min() >= ev.min_output_cosine), detail)]  # fmt: skip
    if len(r) >= 3:
        sim_r, sim_g = r @ r.T, g @ g.T
        np.fill_diagonal(sim_r, -np.inf)
        np.fill_diagonal(sim_g, -np.inf)
        agree = float(np.mean(sim_r.argmax(axis=1) == sim_g.argmax(axis=1)))
        found.append(Metric("nearest-neighbour agreement", agree, ev.min_nn_agreement,
                            agree >= ev.min_nn_agreement, detail))  # fmt: skip
    return found


def classifier(spec: ModelSpec, ref: list[np.ndarray], got: list[np.ndarray], sets: int) -> list[Metric]:
    """Top-1 agreement, and the share of items whose fp32 top-1 class is in the quantized top-k."""
    ev = spec.evaluate
    r, g = _matrix(ref), _matrix(got)
    top1 = r.argmax(axis=1)
    agree1 = float(np.mean(top1 == g.argmax(axis=1)))
    k = min(ev.top_k, g.shape[1])
    topk = np.argsort(-g, axis=1)[:, :k]
    agreek = float(np.mean([t in row for t, row in zip(top1, topk, strict=True)]))
    detail = f"{len(r)} items from {sets} input sets, {r.shape[1]} classes"
    return [
        Metric("top-1 agreement", agree1, ev.min_top1_agreement, agree1 >= ev.min_top1_agreement, detail),
        Metric(f"top-{k} agreement", agreek, ev.min_topk_agreement, agreek >= ev.min_topk_agreement, detail),
    ]


def mask_iou(spec: ModelSpec, ref: list[np.ndarray], got: list[np.ndarray], sets: int) -> list[Metric]:
    """Intersection over union of the pixels above evaluate.mask_threshold, over every judged set."""
    ev = spec.evaluate
    on_r = np.concatenate([a.ravel() > ev.mask_threshold for a in ref])
    on_g = np.concatenate([a.ravel() > ev.mask_threshold for a in got])
    union = int(np.sum(on_r | on_g))
    iou = float(np.sum(on_r & on_g) / union) if union else 1.0
    detail = f"{int(on_r.sum())} fp32 on-pixels of {on_r.size} in {sets} input sets"
    if not on_r.any():
        detail += ": the inputs show nothing above the threshold; give samples that do"
    return [Metric("mask IoU", iou, ev.min_iou, iou >= ev.min_iou and bool(on_r.any()), detail)]


def user_metric(spec: ModelSpec, outputs: Outputs) -> Metric:
    """evaluate.metric: ``fn(reference, output) -> float``, each a list of {output name: array}."""
    from edgepack.modelpipe.samples import import_callable

    ref_name = spec.evaluate.metric
    fn = import_callable(ref_name, what=f"model spec '{spec.name}': evaluate.metric")
    names = list(spec.outputs)

    def named(arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {names[i] if i < len(names) else f"output{i}": a for i, a in enumerate(arrays)}

    try:
        value = fn([named(r) for _, r, _ in outputs], [named(g) for _, _, g in outputs])
    except Exception as exc:  # the user's code
        raise InputError(
            f"evaluate.metric {ref_name} raised {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise InputError(
            f"evaluate.metric {ref_name} returned {type(value).__name__}; it must return a float."
        )
    v, limit = float(value), spec.evaluate.min_metric
    return Metric(ref_name, v, limit, v >= limit, f"yours, over {len(outputs)} input sets; higher is better")
