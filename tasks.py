"""This repository's tasks: edgepack's own collection (the same tasks as the ``edgepack`` command).

The tasks live in the package (src/edgepack/tasks.py, one module per family in
src/edgepack/commands/); a project of yours can reuse them the same way.
"""

from edgepack.tasks import ns

__all__ = ["ns"]
