"""On-device runtimes as plug-ins (ONNX Runtime, LiteRT, ExecuTorch): which a board can have, how a
model converts for each, and the measured comparison that chooses between them (``model.runtimes``).

``base`` holds the plug-in Protocol and its results, ``registry`` the runtimes by name with their
locked board packages (``resources/runtimes.yaml``), ``ort``/``litert``/``executorch`` the plug-ins,
``compare`` the measurements, ``choose`` the rule ``auto`` applies, and ``toolchain``/``litert_tool``
the LiteRT converter's own venv.
"""
