"""Secrets never leave the node: API keys, bearer tokens and password-like fields are masked.

Applied to everything telemetry exports (span attributes, Sentry events) and to what the CLI and
dashboard show. Two nets: known secret shapes (``sk-…``, ``Bearer …``, ``AKIA…``) and the values of
secret-named environment variables currently set, so a key of an unknown shape is caught too.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "[redacted]"

_SECRET_KEY = re.compile(
    r"(api[_-]?key|authorization|password|passwd|secret|token|dsn|cookie|credential)", re.I
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"sk-(?:ant-)?[A-Za-z0-9_\-]{16,}"), MASK),  # Anthropic / OpenAI style keys
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-~+/]{8,}=*"), "Bearer " + MASK),
    (re.compile(r"AKIA[0-9A-Z]{16}"), MASK),
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"xox[abpr]-[A-Za-z0-9-]{10,}"), MASK),
    (re.compile(r"(?i)\b(api[_-]?key|password|secret|token)(\s*[=:]\s*)([^\s&,;\"'\[]{4,})"), r"\1\2" + MASK),
    (re.compile(r"(?i)(https?://[^:/\s@]+:)([^@/\s]+)(@)"), r"\1" + MASK + r"\3"),  # credentials in URLs
]
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|DSN)$")


_SECRET_ENV_BYTES = re.compile(rb"(?i)(KEY|TOKEN|SECRET|PASSWORD|DSN)$")
_KEYWORDS = ("apikey", "api_key", "api-key", "password", "secret", "token")


_env_cache: tuple[int, list[str]] | None = None


def _env_secrets() -> list[str]:
    """Values of secret-named environment variables (long enough not to mask ordinary words).

    Recomputed only when the environment changed (its items' hash), since the journal asks on
    every write."""
    global _env_cache
    raw = getattr(os.environ, "_data", None)  # the bytes behind os.environ: no decoding of every entry
    if not isinstance(raw, dict):
        return sorted(
            (v for k, v in os.environ.items() if _SECRET_ENV.search(k.upper()) and len(v) >= 8),
            key=len,
            reverse=True,
        )
    key = hash(tuple(raw.items()))
    if _env_cache is None or _env_cache[0] != key:
        values = (os.fsdecode(v) for k, v in raw.items() if _SECRET_ENV_BYTES.search(k))
        _env_cache = (key, sorted((v for v in values if len(v) >= 8), key=len, reverse=True))
    return _env_cache[1]


def _keyword_assignment(lower: str) -> bool:
    """Whether ``lower`` has ``api_key``/``password``/``secret``/``token`` followed by ``=`` or ``:``."""
    for keyword in _KEYWORDS:
        start = lower.find(keyword)
        while start >= 0:
            rest = lower[start + len(keyword) : start + len(keyword) + 64].lstrip()
            if rest[:1] in ("=", ":"):
                return True
            start = lower.find(keyword, start + 1)
    return False


def needs_redaction(text: str) -> bool:
    """Whether :func:`redact_text` would change ``text``, decided by substring checks first (a
    journal payload is checked on every write, and almost none holds a secret)."""
    if any(value in text for value in _env_secrets()):
        return True
    lower = text.lower()
    if not (
        "sk-" in text
        or "bearer" in lower
        or "AKIA" in text
        or "xox" in text
        or "://" in text
        or any(f"gh{c}_" in text for c in "pousr")
        or _keyword_assignment(lower)
    ):
        return False
    return _redact_patterns(text) != text


def redact_text(text: str) -> str:
    """``text`` with every secret-looking part replaced by ``[redacted]``."""
    for value in _env_secrets():
        text = text.replace(value, MASK)
    return _redact_patterns(text)


def _redact_patterns(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` (str, mapping, list, scalar) with secrets masked, secret-named keys too."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_leaves(value: Any) -> Any:
    """``value`` with every string in it redacted, keys and structure kept (for stored data that
    must stay what it was — a journal payload, an event — minus the secrets in it)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_leaves(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_leaves(v) for v in value]
    return value


class _RedactedRecord(logging.LogRecord):
    """A log record whose message and traceback text are redacted when formatted."""

    def getMessage(self) -> str:
        return redact_text(super().getMessage())

    @property
    def exc_text(self) -> str | None:
        return self.__dict__.get("_exc_text")

    @exc_text.setter
    def exc_text(self, text: str | None) -> None:
        self.__dict__["_exc_text"] = None if text is None else redact_text(text)


def install_log_redaction() -> None:
    """Make every log record of this process (beamish's and every library's) redact its message
    and traceback when formatted. Idempotent; it replaces the record factory only if it is the
    standard one, so a factory someone else installed is left alone."""
    if logging.getLogRecordFactory() is logging.LogRecord:
        logging.setLogRecordFactory(_RedactedRecord)
