"""A folder served over HTTP on 127.0.0.1: the stand-in for the real servers in the tests of what
rdbench downloads (datasets, archives, weights), so no test reaches the internet."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path


class LocalServer:
    """Serves `root` on 127.0.0.1 at a free port, on a thread; `url` is its base URL (no trailing
    slash), `requests` the paths asked for, in order, `hits` their counts. A context manager."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def hits(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for path in self.requests:
            counts[path] = counts.get(path, 0) + 1
        return counts

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
