"""Secrets never leave the node: API keys, bearer tokens and password-like fields are masked.

The one redaction module: the journal (run records and step payloads), stored events, every log
record of a company process, telemetry (spans, Sentry), the store's URL in messages and what the CLI
and dashboard show all go through it. Three nets: known secret shapes (``sk-…``, ``Bearer …``,
``AKIA…``, ``user:pw@`` in a URL of any scheme, ``NAME_TOKEN=…``), secret-named keys in structured
data, and the values of secret-named environment variables currently set, so a key of an unknown
shape is caught too. Token *counts* (``input_tokens``, ``max_tokens``) are numbers, not secrets.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "[redacted]"

#: A secret word inside a key name; ``token`` only in the singular (``input_tokens`` is a count),
#: and not ``tokenizer``.
_SECRET_KEY = re.compile(
    r"(api[_-]?key|access[_-]?key|private[_-]?key|authorization|passw(?:or)?d|secret|token(?!s|i[sz])"
    r"|dsn|cookie|credential)",
    re.I,
)
#: Last words that make a secret-looking name a quantity or a label (``token_count``, ``token_type``).
_NOT_SECRET_LAST = frozenset(
    ("count", "counts", "limit", "total", "usage", "used", "budget", "length", "size", "ttl", "type")
)
_VALUE = r"([\"']?)([^\s&,;\"'\[\]{}()<>]{4,})"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"sk-(?:ant-)?[A-Za-z0-9_\-]{16,}"), MASK),  # Anthropic / OpenAI style keys
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-~+/]{8,}=*"), "Bearer " + MASK),
    (re.compile(r"AKIA[0-9A-Z]{16}"), MASK),
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"xox[abpr]-[A-Za-z0-9-]{10,}"), MASK),
    # api_key: …, password=…, "password": "…", MY_SERVICE_TOKEN=…, client_secret=… (either case)
    (
        re.compile(
            r"(?i)\b((?:[a-z0-9]+[_-]){0,6}(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key"
            r"|password|passwd|secret|token|credentials?))(['\"]?\s*[=:]\s*)" + _VALUE
        ),
        r"\1\2\3" + MASK,
    ),
    # NAME_KEY=… and NAME_DSN=… written as environment variables are (``idempotency_key=`` is not one)
    (re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+){0,6}_(?:KEY|DSN))(\s*[=:]\s*)" + _VALUE), r"\1\2\3" + MASK),
    # user:password@ in a URL of any scheme (postgresql, redis://:pw@, amqp, https…)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://[^:/?#@\s]*:)([^@/?#\s]+)(@)"), r"\1" + MASK + r"\3"),
]
#: Endings of secret-named environment variables: their values are masked wherever they appear.
_SECRET_ENV = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "DSN", "CREDENTIALS")
_KEYWORDS = (
    *("apikey", "api_key", "api-key", "password", "passwd", "secret", "token", "credential"),
    *("_key", "_dsn"),  # NAME_KEY=, NAME_DSN=
)
#: Calls between full scans of the environment (between them, a cheap check: the variable count
#: and the values of the secret-named variables found last time).
_RESCAN_EVERY = 32


class _EnvSecrets:
    """The values of secret-named environment variables, kept current without decoding the whole
    environment on every journal write: a full scan when the number of variables or a known secret
    variable's value changed, and every :data:`_RESCAN_EVERY` calls in any case."""

    def __init__(self) -> None:
        self._count = -1
        self._named: dict[str, str] = {}
        self._values: list[str] = []
        self._calls = 0

    def values(self) -> list[str]:
        self._calls += 1
        environ = os.environ
        if (
            self._calls >= _RESCAN_EVERY
            or len(environ) != self._count
            or any(environ.get(k) != v for k, v in self._named.items())
        ):
            self._scan()
        return self._values

    def _scan(self) -> None:
        environ = os.environ
        self._calls = 0
        self._count = len(environ)
        named = (k for k in environ if k.upper().endswith(_SECRET_ENV))
        self._named = {k: v for k in named if (v := environ.get(k)) is not None}  # gone since: skipped
        self._values = sorted((v for v in self._named.values() if len(v) >= 8), key=len, reverse=True)


_env = _EnvSecrets()


def _env_secrets() -> list[str]:
    """Values of secret-named environment variables (long enough not to mask ordinary words),
    longest first so a value that contains another is masked whole."""
    return _env.values()


def secret_name(name: str) -> bool:
    """Whether a key named ``name`` holds a secret: ``api_key``, ``Authorization``, ``db_password``,
    ``refresh_token``; not ``input_tokens``, ``max_tokens``, ``token_count`` or ``token_type``."""
    if not _SECRET_KEY.search(name):
        return False
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return words[-1] not in _NOT_SECRET_LAST


def _keyword_assignment(lower: str) -> bool:
    """Whether ``lower`` has a secret keyword (``api_key``, ``password``, ``token``, ``_key``…)
    followed by ``=`` or ``:``."""
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
            k: (MASK if isinstance(k, str) and secret_name(k) and v not in (None, "") else redact(v))
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
