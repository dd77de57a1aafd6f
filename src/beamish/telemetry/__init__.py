"""Telemetry: OpenTelemetry spans and metrics (GenAI conventions) and Sentry, secrets redacted.

Both are optional extras (``otel``, ``sentry``). The agent loop wraps its work in
:meth:`Telemetry.invoke_agent`, :meth:`Telemetry.chat` and :meth:`Telemetry.execute_tool`; the node
feeds lifecycle events to :meth:`Telemetry.on_event` and :meth:`SentryReporter.on_event`.
"""

from beamish._redact import MASK, redact, redact_text
from beamish.telemetry._otel import (
    ChatRecord,
    NullTelemetry,
    Telemetry,
    ToolRecord,
    is_abnormal,
    otel_available,
)
from beamish.telemetry._sentry import SentryReporter, scrub

__all__ = [
    "MASK",
    "ChatRecord",
    "NullTelemetry",
    "SentryReporter",
    "Telemetry",
    "ToolRecord",
    "is_abnormal",
    "otel_available",
    "redact",
    "redact_text",
    "scrub",
]
