"""edgepack: cross-compile, package and smoke-test speech models for small boards."""

__version__ = "0.1.0"
