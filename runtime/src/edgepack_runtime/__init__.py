"""edgepack's on-device runtime (numpy + onnxruntime only)."""

__version__ = "0.1.0"
