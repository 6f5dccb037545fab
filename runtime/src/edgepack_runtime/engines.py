"""The on-device inference engines behind one interface: onnxruntime for ``.onnx``, LiteRT for ``.tflite``.

Each is imported only when a model of its kind is opened, so an image carries
the runtime it runs and no other. LiteRT comes from ``ai-edge-litert`` (its
interpreter needs numpy only) or the older ``tflite-runtime``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Engine(Protocol):
    name: str
    version: str

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class OnnxRuntime:
    name = "onnxruntime"

    def __init__(self, model: Path, *, threads: int) -> None:
        from edgepack_runtime.session import import_onnxruntime, session

        self.version = import_onnxruntime().__version__
        self._session = session(model, threads=threads)
        self._inputs = [i.name for i in self._session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(None, {k: feeds[k] for k in self._inputs if k in feeds}))


class LiteRT:
    name = "litert"

    def __init__(self, model: Path, *, threads: int) -> None:
        try:
            import ai_edge_litert as package
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # the older package of the same interpreter
            try:
                import tflite_runtime as package
                from tflite_runtime.interpreter import Interpreter
            except ImportError:
                raise ImportError(
                    f"{model.name} is a LiteRT model, and neither ai-edge-litert nor tflite-runtime is "
                    "installed here (this image carries onnxruntime)"
                ) from None
        self.version = str(getattr(package, "__version__", "?"))
        self._runner: Any = Interpreter(model_path=str(model), num_threads=threads).get_signature_runner()
        details = self._runner.get_input_details()
        self._inputs = list(details)
        self._dtypes = {k: np.dtype(v["dtype"]) for k, v in details.items()}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """By name where the signature has the feeds' names, else in the feeds' order (litert-torch
        names a torch program's inputs args_0, args_1, ...)."""
        if all(k in feeds for k in self._inputs):
            named = {k: feeds[k] for k in self._inputs}
        else:
            named = dict(zip(self._inputs, feeds.values(), strict=False))
        # TFLite has no int64 ids: litert-torch makes them int32; a same-kind cast keeps the values
        named = {k: _as(v, self._dtypes[k]) for k, v in named.items()}
        got = self._runner(**named)
        return [got[k] for k in sorted(got, key=_position)]


def _as(value: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    if value.dtype == dtype or value.dtype.kind != dtype.kind:
        return value
    return value.astype(dtype)


def _position(name: str) -> tuple[int, str]:
    digits = "".join(c for c in name.rsplit("_", 1)[-1] if c.isdigit())
    return (int(digits) if digits else 0, name)


def open_model(model: Path, *, threads: int) -> Engine:
    if model.suffix == ".tflite":
        return LiteRT(model, threads=threads)
    return OnnxRuntime(model, threads=threads)
