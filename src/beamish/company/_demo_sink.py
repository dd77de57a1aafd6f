"""The demo's local alert sink: an HTTP receiver on loopback that checks each webhook's signature
and counts what it was sent, by kind (the demo's summary reports it)."""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from beamish.company._sinks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


class LocalSink:
    """``with LocalSink() as sink``: ``sink.url`` takes signed alerts; ``sink.received`` counts them."""

    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.received: Counter[str] = Counter()
        self.forged = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                stamp = self.headers.get(TIMESTAMP_HEADER, "")
                if not verify(sink.secret, stamp, body, self.headers.get(SIGNATURE_HEADER, "")):
                    sink.forged += 1
                    self.send_response(401)
                else:
                    sink.received[str(json.loads(body).get("kind"))] += 1
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-alert-sink", daemon=True
        )

    def __enter__(self) -> LocalSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
