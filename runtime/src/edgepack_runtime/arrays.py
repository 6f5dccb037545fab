"""Arrays in JSON: dtype, shape and base64 bytes, exact to the last bit."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def encode(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "b64": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def decode(obj: dict[str, Any]) -> np.ndarray:
    data = base64.b64decode(obj["b64"])
    return np.frombuffer(data, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
