"""What travels with a model: its rate, front end and decoding rule, in the ONNX metadata_props.

The runtime reads them (edgepack_runtime.modelmeta) instead of trusting a
side file or a default: an audio model gets ``edgepack.task`` and
``edgepack.sample_rate`` from its spec; an ASR model also its front end,
charset and streaming rule from ``source.metadata`` (the training run's JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgepack.errors import ConfigError, InputError
from edgepack.fsutil import atomic_path
from edgepack.modelpipe.spec import ModelSpec
from edgepack_runtime import modelmeta


def props_for(spec: ModelSpec, metadata_file: Path | None) -> dict[str, str]:
    if spec.task == "generic":
        return {}
    props = {modelmeta.TASK: spec.task, modelmeta.SAMPLE_RATE: str(spec.sample_rate)}
    if spec.task == "asr" and metadata_file is not None:
        try:
            props.update(modelmeta.asr_props(json.loads(metadata_file.read_text())))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(
                f"model spec '{spec.name}': {spec.source.metadata} lacks what the runtime needs ({exc!r})."
            ) from None
        if props[modelmeta.SAMPLE_RATE] != str(spec.sample_rate):
            raise ConfigError(
                f"model spec '{spec.name}': sample_rate {spec.sample_rate} disagrees with "
                f"{spec.source.metadata} ({props[modelmeta.SAMPLE_RATE]} Hz)."
            )
    return props


def stamp(path: Path, props: dict[str, str]) -> None:
    """Set ``props`` in the ONNX file's metadata_props (other keys are kept), atomically."""
    if not props:
        return
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def read(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
