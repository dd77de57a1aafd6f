"""Where alerts go: a signed webhook, a Slack-compatible incoming webhook, email over SMTP.

Each sink's ``send`` raises on failure (the outbox retries with backoff). The webhook signs its
exact body: ``X-Beamish-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))`` with
the timestamp in ``X-Beamish-Timestamp``, so a receiver can refuse forged and replayed requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

from beamish._redact import redact, redact_text
from beamish.company._outbox import Alert

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-Beamish-Signature"
TIMESTAMP_HEADER = "X-Beamish-Timestamp"


class Sink(Protocol):
    name: str

    async def send(self, alert: Alert) -> None: ...

    async def send_digest(self, digest: Any) -> None: ...

    async def aclose(self) -> None: ...


def summary(alert: Alert) -> str:
    """One line a person reads first."""
    data = alert.event.data
    if alert.kind == "approval.requested":
        call = f"{data.get('tool')}({json.dumps(data.get('args'))})"
        text = f"{data.get('agent')} wants to call {call}: approve or deny {data.get('gate_id')}"
    elif alert.kind == "question.asked":
        question = (data.get("args") or {}).get("question")
        text = f"{data.get('agent')} asks: {question} ({data.get('gate_id')})"
    else:
        text = f"{alert.subject}: {json.dumps(data, default=str)[:300]}"
    return redact_text(f"[{alert.severity}] {alert.kind}: {text}")


def payload(alert: Alert, links: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
        "summary": summary(alert),
        "event": redact(alert.event.to_json()),
    }
    if links:
        body["links"] = links
    return body


class _Http:
    """One HTTP client per sink, made in a worker thread: building its TLS context takes a quarter
    of a second, which must not block the node's event loop (nor must importing httpx, which a
    company without HTTP alerts never does)."""

    timeout_s: float
    _client: httpx.AsyncClient | None = None

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = await asyncio.to_thread(_client, self.timeout_s)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _client(timeout_s: float) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(timeout=timeout_s)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver checks (in constant time): ``signature`` is :func:`sign` of this body."""
    return hmac.compare_digest(signature, sign(secret, timestamp, body))


@dataclass
class WebhookSink(_Http):
    """POST the alert as JSON, signed with ``secret``."""

    name: str
    url: str
    secret: str | None = None
    timeout_s: float = 10.0
    links: Any = None

    async def send(self, alert: Alert) -> None:
        await self._post(payload(alert, self.links(alert) if self.links else None))

    async def _post(self, data: dict[str, Any]) -> None:
        body = json.dumps(data, sort_keys=True, default=str).encode()
        stamp = str(int(time.time()))
        headers = {"content-type": "application/json", TIMESTAMP_HEADER: stamp}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, stamp, body)
        response = await (await self._http()).post(self.url, content=body, headers=headers)
        response.raise_for_status()

    async def send_digest(self, digest: Any) -> None:
        await self._post({"kind": "digest", "digest": digest.to_json(), "text": digest.text()})


@dataclass
class SlackSink(_Http):
    """A Slack-compatible incoming webhook: ``{"text": …}``."""

    name: str
    url: str
    timeout_s: float = 10.0
    links: Any = None

    async def send(self, alert: Alert) -> None:
        text = summary(alert)
        for label, url in (self.links(alert) if self.links else {}).items():
            text += f"\n<{url}|{label}>"
        await self._post(text)

    async def send_digest(self, digest: Any) -> None:
        await self._post(digest.text())

    async def _post(self, text: str) -> None:
        response = await (await self._http()).post(self.url, json={"text": text})
        response.raise_for_status()


@dataclass
class EmailSink:
    """Email over SMTP (STARTTLS and login when configured), sent from a worker thread."""

    name: str
    host: str
    port: int
    sender: str
    to: list[str] = field(default_factory=list)
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    timeout_s: float = 20.0
    links: Any = None

    async def aclose(self) -> None:
        return None

    async def send(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = summary(alert)[:200]
        message["From"], message["To"] = self.sender, ", ".join(self.to)
        text = summary(alert) + "\n"
        for label, url in (self.links(alert) if self.links else {}).items():
            text += f"\n{label}: {url}"
        message.set_content(text + "\n\n" + json.dumps(redact(alert.event.to_json()), indent=2, default=str))
        await asyncio.to_thread(self._send, message)

    async def send_digest(self, digest: Any) -> None:
        """The digest as plain text with an HTML alternative."""
        message = EmailMessage()
        message["Subject"] = digest.text().splitlines()[0]
        message["From"], message["To"] = self.sender, ", ".join(self.to)
        message.set_content(digest.text())
        message.add_alternative(digest.html(), subtype="html")
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)
