"""Serve a built site on 127.0.0.1 at a free port (the standard library's HTTP server, in a
thread): what ``siscore map`` and the browser tests open."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

MIME = {".webp": "image/webp", ".geojson": "application/geo+json", ".js": "text/javascript"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        """Quiet: a map asks for hundreds of tiles."""


class SiteServer:
    """A running server of ``folder``; ``url`` is its address, ``close()`` stops it."""

    def __init__(self, folder: str | os.PathLike[str], port: int = 0):
        handler = functools.partial(_Handler, directory=str(Path(folder)))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SiteServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
