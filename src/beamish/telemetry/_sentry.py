"""Sentry: abnormal exits become issues, every lifecycle event a breadcrumb, secrets scrubbed.

Behind the ``sentry`` extra. beamish never sends personal data by default
(``send_default_pii=False``), and every event passes through :func:`scrub` before it leaves.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from beamish._events import Event
from beamish.telemetry._otel import _reason_kind, is_abnormal
from beamish.telemetry._redact import redact

try:
    import sentry_sdk
except ImportError:  # pragma: no cover - exercised only without the extra
    sentry_sdk = None  # type: ignore[assignment]


#: Event data keys that carry no content (sent even when content capture is off).
_SAFE_KEYS = ("reason", "restarts", "limit", "spent", "cap", "pattern", "agent", "run_id", "schedule")


def scrub(event: Any, hint: Any = None) -> Any:
    """Sentry ``before_send``/``before_breadcrumb`` hook: mask secrets everywhere in the payload."""
    return redact(event)


class SentryReporter:
    """An event sink that reports to Sentry.

    ``transport`` replaces Sentry's HTTP transport (tests pass one that records envelopes).
    ``capture_content`` lets event data (prompts, tool arguments) ride along; off, only kinds,
    subjects and reasons do.
    """

    def __init__(
        self,
        dsn: str,
        *,
        environment: str | None = None,
        transport: Any = None,
        capture_content: bool = False,
    ) -> None:
        if sentry_sdk is None:
            raise ImportError("sentry-sdk is not installed: pip install 'beamish[sentry]'")
        self.capture_content = capture_content
        options: dict[str, Any] = {
            "dsn": dsn,
            "environment": environment,
            "before_send": scrub,
            "before_breadcrumb": scrub,
            "default_integrations": False,  # a private client: the host application's Sentry is left alone
            "auto_enabling_integrations": False,
        }
        if transport is not None:
            options["transport"] = transport
        self.client = sentry_sdk.Client(**options)
        self._crumbs: deque[dict[str, Any]] = deque(maxlen=100)

    def _data(self, event: Event) -> dict[str, Any]:
        if self.capture_content:
            return dict(event.data)
        keep = {
            k: v for k, v in event.data.items() if k in ("reason", "restarts", "limit", "spent", "pattern")
        }
        if isinstance(keep.get("reason"), dict):
            keep["reason"] = {
                k: v for k, v in keep["reason"].items() if k != "traceback" or self.capture_content
            }
        return keep

    def on_event(self, event: Event) -> None:
        data = self._data(event)
        self._crumbs.append(
            {
                "category": event.kind,
                "message": event.subject,
                "data": data,
                "level": "info",
                "timestamp": event.at,
            }
        )
        alert = (event.kind == "child.exited" and is_abnormal(event.data)) or event.kind in (
            "supervisor.escalated",
            "budget.exceeded",
            "loop.detected",
            "watchdog.hung",
            "run.needs_attention",
        )
        if not alert:
            return
        reason = _reason_kind(event.data) if event.kind == "child.exited" else event.kind
        payload: dict[str, Any] = {
            "message": f"{event.subject}: {reason}",
            "level": "error",
            "timestamp": event.at,
            "tags": {"beamish.subject": event.subject, "beamish.reason": reason, "beamish.kind": event.kind},
            "contexts": {"beamish": {"kind": event.kind, **data}},
            "breadcrumbs": {"values": list(self._crumbs)},
        }
        self.client.capture_event(payload)  # type: ignore[arg-type]  # Event is a TypedDict of this shape

    def flush(self, timeout: float = 2.0) -> None:
        self.client.flush(timeout=timeout)

    def close(self) -> None:
        self.client.close(timeout=2.0)
