"""Real local servers for the alert tests: an HTTP receiver that checks the webhook signature, and
an SMTP server (aiosmtpd) with STARTTLS and login."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Receiver:
    """Accepts POSTs on 127.0.0.1; keeps each body whose signature verifies with ``secret``.

    ``fail_next`` answers that many requests with a 500; with ``hold`` set, a request waits for
    ``release`` before it is answered (``arrived`` is set when one is waiting)."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.verified: list[dict[str, Any]] = []
        self.forged = 0
        self.fail_next = 0
        self.hold = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.hold:
                    receiver.arrived.set()
                    receiver.release.wait(30)
                    return  # the sender is gone by now
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                if receiver.secret is not None:
                    stamp = self.headers.get("X-Beamish-Timestamp", "")
                    signature = self.headers.get("X-Beamish-Signature", "")
                    if not _signed(receiver.secret, stamp, body, signature):
                        receiver.forged += 1
                        self.send_response(401)
                        self.end_headers()
                        return
                receiver.verified.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _signed(secret: str, stamp: str, body: bytes, signature: str) -> bool:
    """The receiver's own check, written from the documented scheme (not beamish's code)."""
    want = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, "sha256=" + want)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """aiosmtpd handler: keeps each message; logins are checked against one user."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"beamish", b"s3cret")
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


def smtp_server(tmp_path: Path) -> tuple[Controller, Mailbox]:
    """A started SMTP server on loopback that requires STARTTLS (a self-signed cert) and login."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    box = Mailbox()
    controller = Controller(
        box, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
        authenticator=box.authenticate, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    return controller, box
