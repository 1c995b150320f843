"""A small HTTP receiver for the tests: apprise's json:// notifications, Alertmanager's webhook."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST; the first ``fail_first`` answer 500."""

    def __init__(self, fail_first: int = 0):
        self.posts: list[dict] = []
        self.answers: list[int] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = 500 if len(outer.answers) < outer.fail_first else 200
                outer.answers.append(code)
                if code == 200:
                    outer.posts.append({"path": self.path, "at": time.monotonic(), **json.loads(body)})
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"json://127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, found, timeout: float = 60.0):
        """The first post for which ``found(post)`` is true, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in list(self.posts):
                if found(p):
                    return p
            time.sleep(0.05)
        raise AssertionError(f"no such post in {timeout} s: {self.posts}")
