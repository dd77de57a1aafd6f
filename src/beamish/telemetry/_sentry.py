"""Sentry: abnormal exits become issues, every lifecycle event a breadcrumb, secrets scrubbed.

Behind the ``sentry`` extra. beamish builds each event itself, so the client is told to collect
nothing on its own: no stack of the reporting thread (whose frames hold the event's content in
their local variables), no source lines, no personal data, no request bodies. Those defaults
differ between sentry-sdk majors (3.x attaches the current stack with its local variables to every
message), so the options are chosen from what the installed client accepts, and :func:`scrub` drops
whatever a client still adds before masking secrets in what is left.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from beamish._events import Event
from beamish._redact import redact
from beamish.telemetry._otel import _reason_kind, is_abnormal


def _sdk() -> Any:
    """The ``sentry_sdk`` module, or None without the extra: imported when a reporter is made, so
    ``import beamish`` does not pay for it (~0.13 s) in every process that never reports."""
    try:
        import sentry_sdk
    except ImportError:  # pragma: no cover - exercised only without the extra
        return None
    return sentry_sdk


#: Event data keys that carry no content (sent even when content capture is off).
_SAFE_KEYS = ("reason", "restarts", "limit", "spent", "pattern", "count")

#: The top-level event keys that leave: what :meth:`SentryReporter.on_event` builds, plus the
#: client's own labels. Anything else a client attaches (``threads``, ``exception``,
#: ``stacktrace``, ``request``, ``user``, ``extra``, ``modules``…) is dropped.
_EVENT_KEYS = frozenset(
    ("event_id", "timestamp", "level", "message", "tags", "contexts", "breadcrumbs", "environment")
) | frozenset(("release", "dist", "server_name", "platform", "sdk"))
_CONTEXTS = frozenset(("beamish", "trace"))

#: Options that switch off everything a client collects by itself, for every major that has them:
#: 2.x knows the first five, 3.x replaced PII and frame variables with ``data_collection``.
_PRIVATE_OPTIONS: dict[str, Any] = {
    "send_default_pii": False,
    "include_local_variables": False,
    "include_source_context": False,
    "attach_stacktrace": False,
    "max_request_body_size": "never",
    "data_collection": {
        "user_info": False,
        "cookies": {"mode": "off"},
        "http_headers": {"request": {"mode": "off"}},
        "http_bodies": [],
        "url_query_params": {"mode": "off"},
        "graphql": {"document": False, "variables": False},
        "gen_ai": {"inputs": False, "outputs": False},
        "mcp": {"inputs": False, "outputs": False},
        "database_query_data": False,
        "queues": False,
        "stack_frame_variables": False,
        "frame_context_lines": 0,
    },
}


def private_options(known: Any) -> dict[str, Any]:
    """The privacy options the installed client accepts (``known``: its option names). Where it has
    ``data_collection`` (which supersedes, and deprecates, ``send_default_pii``) that one is used."""
    options = {k: v for k, v in _PRIVATE_OPTIONS.items() if k in known}
    if "data_collection" in options:
        options.pop("send_default_pii", None)
    return options


def scrub(event: Any, hint: Any = None) -> Any:
    """Sentry ``before_send``/``before_breadcrumb`` hook: mask secrets everywhere in the payload."""
    return redact(event)


def _beamish_only(event: Any, hint: Any = None) -> Any:
    """The reporter's ``before_send``: keep only what beamish put in the event (a client's own
    stacks, frame variables, request and user data never leave), then :func:`scrub` it."""
    kept = {k: v for k, v in event.items() if k in _EVENT_KEYS}
    if isinstance(kept.get("contexts"), dict):
        kept["contexts"] = {k: v for k, v in kept["contexts"].items() if k in _CONTEXTS}
    return scrub(kept, hint)


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
        sentry_sdk = _sdk()
        if sentry_sdk is None:
            raise ImportError("sentry-sdk is not installed: pip install 'beamish[sentry]'")
        self.capture_content = capture_content
        options: dict[str, Any] = {
            "dsn": dsn,
            "environment": environment,
            "before_send": _beamish_only,
            "before_breadcrumb": scrub,
            "default_integrations": False,  # a private client: the host application's Sentry is left alone
            "auto_enabling_integrations": False,
            **private_options(sentry_sdk.consts.DEFAULT_OPTIONS),
        }
        if transport is not None:
            options["transport"] = transport
        self.client = sentry_sdk.Client(**options)
        self._crumbs: deque[dict[str, Any]] = deque(maxlen=100)

    def _data(self, event: Event) -> dict[str, Any]:
        if self.capture_content:
            return dict(event.data)
        keep = {k: v for k, v in event.data.items() if k in _SAFE_KEYS}
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
            "events.unstored",
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
        self.client.capture_event(payload)  # sentry_sdk.Event is a TypedDict of this shape

    def flush(self, timeout: float = 2.0) -> None:
        self.client.flush(timeout=timeout)

    def close(self) -> None:
        self.client.close(timeout=2.0)
