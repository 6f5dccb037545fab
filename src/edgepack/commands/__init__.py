"""The command layer: one module per task family; each task parses its flags, calls the library, renders.

``boundary`` holds the one error boundary (``@command``: every task runs inside
it), typed flag parsing and the ``edgepack`` program; ``edgepack.tasks.ns`` is
the collection (the ``edgepack`` command, and ``from edgepack.tasks import ns``
in a project's own tasks.py).
"""
