"""Translate provider SDK errors into beamish's model errors, at the boundary.

Both official SDKs raise the same shapes (``RateLimitError``, ``APIStatusError``, ``APITimeoutError``,
``APIConnectionError``), so one function per SDK maps them by status code and error type.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from beamish._exceptions import ModelError, ModelServerError, ModelTimeout, RateLimited

_SERVER_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "server_error", "internal_server_error"})


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """The wait a 429 asks for: ``retry-after-ms``, else ``retry-after`` in seconds or as an HTTP date."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _body_error_type(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
        if isinstance(body.get("type"), str) and body["type"] != "error":
            return str(body["type"])
    return None


def translate_sdk_error(exc: Exception, sdk: Any, who: str) -> ModelError:
    """Map an exception of the ``anthropic`` or ``openai`` module ``sdk`` to a ``ModelError``."""
    if isinstance(exc, sdk.APITimeoutError):
        return ModelTimeout(f"{who}: request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return ModelServerError(f"{who}: connection failed ({exc})")
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        kind = _body_error_type(getattr(exc, "body", None))
        headers = exc.response.headers if getattr(exc, "response", None) is not None else None
        if status == 429 or kind == "rate_limit_error":
            return RateLimited(f"{who}: rate limited (429)", retry_after_s=retry_after_seconds(headers))
        if status >= 500 or kind in _SERVER_ERROR_TYPES:
            return ModelServerError(f"{who}: server error {status} ({kind or 'no type'})", status=status)
        return ModelError(f"{who}: request refused with {status}: {exc}")
    return ModelError(f"{who}: {type(exc).__name__}: {exc}")


def translate_transport_error(exc: Exception, who: str) -> ModelError | None:
    """Map an HTTP transport error raised mid-stream (the SDKs let these through) or ``None``."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutException" in names:
        return ModelTimeout(f"{who}: stream read timed out")
    if names & {"TransportError", "NetworkError", "RemoteProtocolError", "ReadError", "StreamError"}:
        return ModelServerError(f"{who}: connection broke mid-stream ({type(exc).__name__})")
    return None
