"""Translate provider SDK errors into beamish's model errors, at the boundary.

Both official SDKs raise the same shapes (``RateLimitError``, ``APIStatusError``, ``APITimeoutError``,
``APIConnectionError``), so one function maps them, and :func:`error_for_status` classifies every
error answer (the scripted model's scripted ones too) by its HTTP status: only 429, 408, 409 and
5xx are worth another attempt; any other 4xx is the request's own fault and fails the run with the
provider's message. :func:`rate_hint` reads the rate-limit headers of a successful answer, so a used-up
allowance is waited out before the provider has to say 429.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from beamish._exceptions import ModelError, ModelRejected, ModelServerError, ModelTimeout, RateLimited
from beamish.agent._messages import RateHint

_SERVER_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "server_error", "internal_server_error"})
#: 4xx answers that say "try again", as the SDKs' own retry rules have it (429 is back-pressure).
_TRANSIENT_4XX = frozenset({408, 409})


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


#: A Go-style duration as OpenAI sends its resets: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``.
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: The longest reset believed: a later one (a garbled date) would stop a model for good.
MAX_RESET_S = 86400.0
#: (limit, remaining, reset) headers of each allowance, OpenAI's then Anthropic's.
_REQUEST_HEADERS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    (
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ),
)
_TOKEN_HEADERS = (
    ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    *(
        (
            f"anthropic-ratelimit-{kind}-limit",
            f"anthropic-ratelimit-{kind}-remaining",
            f"anthropic-ratelimit-{kind}-reset",
        )
        for kind in ("tokens", "input-tokens", "output-tokens")
    ),
)


def reset_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a rate limit resets: a duration (OpenAI's ``6m0s``), plain seconds, or an
    RFC 3339 time (Anthropic's), against wall time ``now``; ``None`` when unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        if _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(text))
        else:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RESET_S)


def _count(value: str | None) -> int | None:
    try:
        count = int(value.strip()) if value else None
    except ValueError:
        return None
    return count if count is not None and count >= 0 else None


def _tightest(
    headers: Mapping[str, str], names: tuple[tuple[str, str, str], ...], now: float | None
) -> tuple[int, float | None, int | None] | None:
    """(remaining, reset, limit) of the allowance with least left (the later reset on a tie)."""
    found = []
    for limit, remaining, reset in names:
        left = _count(headers.get(remaining))
        if left is not None:
            found.append((left, reset_seconds(headers.get(reset), now), _count(headers.get(limit))))
    return min(found, key=lambda f: (f[0], -(f[1] or 0.0))) if found else None


def rate_hint(headers: Mapping[str, str] | None, now: float | None = None) -> RateHint | None:
    """The rate-limit headers of a successful answer (OpenAI's ``x-ratelimit-*``, Anthropic's
    ``anthropic-ratelimit-*``), resets in seconds from wall time ``now``; ``None`` when there are
    none, or none readable. A header that does not parse is as if absent."""
    if not headers:
        return None
    ours = {k.lower(): v for k, v in headers.items() if "ratelimit" in k.lower()}  # one pass over them
    if not ours:
        return None
    requests = _tightest(ours, _REQUEST_HEADERS, now)
    tokens = _tightest(ours, _TOKEN_HEADERS, now)
    if requests is None and tokens is None:
        return None
    r_left, r_reset, r_limit = requests or (None, None, None)
    t_left, t_reset, t_limit = tokens or (None, None, None)
    return RateHint(r_left, r_reset, r_limit, t_left, t_reset, t_limit)


def _body_error(body: Any) -> dict[str, Any]:
    """The error object of an error body: Anthropic's ``{"type": "error", "error": {...}}``, or the
    inner object the OpenAI SDK hands over (``{"message", "type", "code"}``)."""
    if isinstance(body, dict):
        inner = body.get("error")
        return inner if isinstance(inner, dict) else body
    return {}


def _body_error_type(body: Any) -> str | None:
    kind = _body_error(body).get("type")
    return str(kind) if isinstance(kind, str) and kind != "error" else None


def _body_message(body: Any) -> str | None:
    message = _body_error(body).get("message")
    return str(message) if isinstance(message, str) and message else None


def error_for_status(
    who: str,
    status: int | None,
    *,
    kind: str | None = None,
    message: str | None = None,
    retry_after_s: float | None = None,
) -> ModelError:
    """The one classification of a provider's error answer, by HTTP status first.

    429 is back-pressure (:class:`RateLimited`); 5xx, 408 and 409 are transient
    (:class:`ModelServerError`, retried with backoff); any other 4xx is the request's own fault
    (:class:`ModelRejected`, never retried). The body's error ``kind`` decides only where there is
    no error status: an error event inside a stream that began ``200``.
    """
    named = [str(status)] if status and status >= 400 else []  # a stream's "200" says nothing
    named += [kind] if kind else []
    text = f" ({' '.join(named)})" if named else ""
    said = f": {message}" if message else ""
    if status == 429 or (kind == "rate_limit_error" and not (status and status >= 400)):
        return RateLimited(f"{who}: rate limited{text}{said}", retry_after_s=retry_after_s)
    if status and (status >= 500 or status in _TRANSIENT_4XX):
        return ModelServerError(f"{who}: transient error{text}{said}", status=status)
    if status and 400 <= status < 500:
        return ModelRejected(f"{who}: the provider refused the request{text}{said}", status=status)
    if kind in _SERVER_ERROR_TYPES:
        return ModelServerError(f"{who}: server error{text}{said}", status=status)
    return ModelError(f"{who}: error answer{text}{said}")


def translate_sdk_error(exc: Exception, sdk: Any, who: str) -> ModelError:
    """Map an exception of the ``anthropic`` or ``openai`` module ``sdk`` to a ``ModelError``."""
    if isinstance(exc, sdk.APITimeoutError):
        return ModelTimeout(f"{who}: request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return ModelServerError(f"{who}: connection failed ({exc})")
    body = getattr(exc, "body", None)
    message = _body_message(body) or getattr(exc, "message", None) or str(exc)
    if isinstance(exc, sdk.APIStatusError):
        headers = exc.response.headers if getattr(exc, "response", None) is not None else None
        wait = retry_after_seconds(headers)
        if wait is None:  # no Retry-After: the reset of an allowance the rate-limit headers say is used up
            hint = rate_hint(headers)
            wait = hint.blocked_for_s if hint is not None else None
        return error_for_status(
            who,
            int(exc.status_code),
            kind=_body_error_type(body),
            message=message,
            retry_after_s=wait,
        )
    if isinstance(exc, sdk.APIError):  # an error event inside a stream: no status of its own
        return error_for_status(who, None, kind=_body_error_type(body), message=message)
    return ModelError(f"{who}: {type(exc).__name__}: {exc}")


def translate_transport_error(exc: Exception, who: str) -> ModelError | None:
    """Map an HTTP transport error raised mid-stream (the SDKs let these through) or ``None``."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutException" in names:
        return ModelTimeout(f"{who}: stream read timed out")
    if names & {"TransportError", "NetworkError", "RemoteProtocolError", "ReadError", "StreamError"}:
        return ModelServerError(f"{who}: connection broke mid-stream ({type(exc).__name__})")
    return None
