"""A real HTTP server on 127.0.0.1 serving a folder, counting the requests it answers.

Used as a Debian mirror (dists/ + pool/) and as a package source by the lock
tests: nothing is faked at the HTTP level.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Served:
    root: Path
    url: str
    paths: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.paths)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[Served]:
    """Serve ``root`` on a free port of 127.0.0.1 until the block ends."""
    served = Served(root, "")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            served.paths.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
