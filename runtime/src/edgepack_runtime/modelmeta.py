"""What an ASR model needs besides its weights, read from its ONNX ``metadata_props``.

The model stage writes these keys (see :func:`asr_props`); the runtime reads
them, so the rate, front end, charset and streaming rule can never drift
from the weights they belong to:

* ``edgepack.task``: ``asr`` (or ``vad``);
* ``edgepack.sample_rate``: the rate the model was trained at, in Hz;
* ``edgepack.frontend``: JSON of :class:`FrontEndConfig`'s fields plus the
  global ``mean`` and ``std`` of the normalisation;
* ``edgepack.asr``: JSON of ``charset``, ``blank``, ``subsampling``,
  ``left_context_frames``, ``state_shape`` ([layers, batch, hidden]) and the
  ``streaming_rule`` in words;
* ``edgepack.grammar`` (optional): JSON of the command grammar and its
  confidence calibration (:mod:`edgepack_runtime.grammar`).

A model without ``edgepack.sample_rate`` is refused: guessing a rate is how
audio gets silently fed at the wrong one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from edgepack_runtime.features import FrontEndConfig, Normalizer

TASK, SAMPLE_RATE, FRONTEND, ASR = (
    "edgepack.task",
    "edgepack.sample_rate",
    "edgepack.frontend",
    "edgepack.asr",
)
GRAMMAR = "edgepack.grammar"
_ASR_KEYS = ("charset", "blank", "subsampling", "left_context_frames", "state_shape", "streaming_rule")


class ModelMetaError(ValueError):
    """The model file lacks what the runtime needs to feed it correctly."""


@dataclass(frozen=True)
class AsrMeta:
    sample_rate: int
    frontend: FrontEndConfig
    normalizer: Normalizer
    charset: str
    blank: int
    subsampling: int
    left_context: int  # input frames each chunk is prefixed with
    layers: int
    hidden: int


def custom_props(session: Any) -> dict[str, str]:
    """An onnxruntime session's ``metadata_props``."""
    return dict(session.get_modelmeta().custom_metadata_map)


def sample_rate(props: dict[str, str], *, shown_as: str) -> int:
    if SAMPLE_RATE not in props:
        raise ModelMetaError(
            f"{shown_as}: the model's metadata has no {SAMPLE_RATE}, so the rate it expects is unknown; "
            "build it with the model stage (models/NAME.yaml) or add that metadata_prop."
        )
    try:
        rate = int(props[SAMPLE_RATE])
    except ValueError:
        rate = 0
    if rate <= 0:
        raise ModelMetaError(f"{shown_as}: {SAMPLE_RATE} is {props[SAMPLE_RATE]!r}, not a rate in Hz.")
    return rate


def asr_meta(props: dict[str, str], *, shown_as: str) -> AsrMeta:
    rate = sample_rate(props, shown_as=shown_as)
    for key in (FRONTEND, ASR):
        if key not in props:
            raise ModelMetaError(
                f"{shown_as}: the model's metadata has no {key}; is it an edgepack ASR model?"
            )
    try:
        fe, asr = json.loads(props[FRONTEND]), json.loads(props[ASR])
        config = FrontEndConfig(**{f.name: fe[f.name] for f in fields(FrontEndConfig)})
        normalizer = Normalizer(np.asarray(fe["mean"], np.float32), np.asarray(fe["std"], np.float32))
        layers, _, hidden = asr["state_shape"]
        meta = AsrMeta(rate, config, normalizer, str(asr["charset"]), int(asr["blank"]),
                       int(asr["subsampling"]), int(asr["left_context_frames"]), int(layers),
                       int(hidden))  # fmt: skip
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelMetaError(f"{shown_as}: malformed {FRONTEND}/{ASR} metadata ({exc}).") from None
    if config.sample_rate != rate:
        raise ModelMetaError(
            f"{shown_as}: {SAMPLE_RATE} {rate} disagrees with the front end's {config.sample_rate}."
        )
    return meta


def asr_props(meta: dict[str, Any]) -> dict[str, str]:
    """The metadata_props of an ASR model from its training metadata (e.g. speech/weights/cmdasr.json)."""
    fe = meta["front_end"]
    frontend = {f.name: fe[f.name] for f in fields(FrontEndConfig)} | {"mean": fe["mean"], "std": fe["std"]}
    props = {
        TASK: "asr",
        SAMPLE_RATE: str(int(fe["sample_rate"])),
        FRONTEND: json.dumps(frontend, sort_keys=True),
        ASR: json.dumps({k: meta[k] for k in _ASR_KEYS}, sort_keys=True),
    }
    if "grammar" in meta:  # the command grammar and its calibration (edgepack_runtime.grammar)
        props[GRAMMAR] = json.dumps(meta["grammar"], sort_keys=True)
    return props
