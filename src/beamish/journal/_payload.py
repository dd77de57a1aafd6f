"""Payloads as versioned JSON (never pickle); large ones stored once, by content hash.

A column holds an envelope: ``{"v": 1, "data": …}`` inline, or ``{"v": 1, "ref": "<sha256>",
"size": n}`` when the canonical JSON passes the store's threshold. The body then lives once in
``payloads`` (shared by every step and run that carries the same bytes, e.g. a long system prompt),
and ``payload_refs`` records which runs use it so pruning can drop orphans.

:func:`envelope` and :func:`open_envelope` are the inline form alone, for the other tables that keep
a value as versioned JSON (mailbox messages and replies, schedule inputs, a run's input and output):
one codec, so every stored value reads back the same way and a future version is refused alike.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from beamish._exceptions import CorruptStore, SpecError, StoreError
from beamish._redact import needs_redaction, redact_leaves
from beamish.journal._sql import SyncTx

VERSION = 1
DEFAULT_THRESHOLD = 16 * 1024
_INLINE = f'{{"v":{VERSION},"data":'
_REF = f'{{"v":{VERSION},"ref":'


def _reject(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def canonical(obj: Any, what: str = "payload", error: type[Exception] = SpecError) -> str:
    """Deterministic JSON: sorted keys, no spaces, no NaN. Raises ``error`` naming the bad value."""
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_reject
        )
    except (TypeError, ValueError) as exc:
        raise error(f"{what} must be JSON-safe (dict, list, str, int, float, bool, None): {exc}") from exc


def masked(obj: Any, what: str = "payload", error: type[Exception] = SpecError) -> str:
    """:func:`canonical`, with secrets (API keys, secret-named variables' values) masked: a task, an
    output or an error may quote a key, and what is stored outlives the process and gets copied."""
    body = canonical(obj, what, error)
    return canonical(redact_leaves(obj), what, error) if needs_redaction(body) else body


def envelope(value: Any, what: str, *, error: type[Exception] = SpecError, mask: bool = False) -> str:
    """``{"v":1,"data":…}`` in canonical JSON; ``error`` names a value that is not JSON-safe, in the
    caller's own error type (a mailbox says SpecError, a scheduler ScheduleError)."""
    body = masked(value, what, error) if mask else canonical(value, what, error)
    return f"{_INLINE}{body}}}"


_NOT_INLINE: Any = object()


def _inline(text: str) -> Any:
    """The common case read without a wrapper dict; ``_NOT_INLINE`` sends the caller to the full
    parse, which names what is wrong with the whole envelope."""
    if text.startswith(_INLINE) and text.endswith("}"):
        try:
            return json.loads(text[len(_INLINE) : -1])
        except ValueError:
            pass
    return _NOT_INLINE


def open_envelope(text: str, what: str, *, error: type[Exception] = StoreError) -> Any:
    """The value :func:`envelope` wrapped. Rows written before the codec was shared (JSON with
    spaces) read the same; anything else is ``error`` naming ``what``."""
    value = _inline(text)
    if value is not _NOT_INLINE:
        return value
    data = _parse(text, what, error)
    if "data" not in data:
        raise error(f"a stored {what} holds no value: {text[:60]!r}")
    return data["data"]


def _parse(text: str, what: str, error: type[Exception]) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise error(f"a stored {what} is not valid JSON: {text[:60]!r}") from exc
    if not isinstance(data, dict) or data.get("v") != VERSION:
        got = data.get("v") if isinstance(data, dict) else type(data).__name__
        raise error(f"unsupported {what} version {got!r} (this beamish reads {VERSION})")
    return data


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_hash(obj: Any) -> str:
    """The hash of a request's canonical JSON: two requests match iff their hashes do."""
    return digest(canonical(obj, "request"))


def encode(tx: SyncTx, run_id: str, obj: Any, threshold: int, now: float, what: str = "payload") -> str:
    """Envelope for ``obj``; a large body is written to ``payloads`` once (in the caller's tx)."""
    prepared = prepare(obj, threshold, what)
    if prepared.body is not None:
        store_body(tx, run_id, prepared, now)
    return prepared.envelope


@dataclass(frozen=True)
class Prepared:
    """A value ready to store: its column ``envelope``, and the ``body`` to keep by hash if large."""

    envelope: str
    body: str | None = None
    hash: str | None = None


def prepare(obj: Any, threshold: int, what: str = "payload") -> Prepared:
    """Encode ``obj`` outside any transaction; :func:`store_body` writes a large body inside one.

    Secrets (API keys, secret-named environment variables' values) are masked before anything is
    stored: the journal is a file that outlives the process and gets copied around."""
    body = masked(obj, what)
    if len(body) <= threshold:
        return Prepared(f'{{"v":{VERSION},"data":{body}}}')
    h = digest(body)
    return Prepared(f'{{"v":{VERSION},"ref":"{h}","size":{len(body)}}}', body, h)


def store_body(tx: SyncTx, run_id: str, prepared: Prepared, now: float) -> None:
    """Keep a large body once (shared by every run that carries it) and note that ``run_id`` uses it."""
    assert prepared.body is not None and prepared.hash is not None
    tx.execute(
        "INSERT INTO payloads (hash, body, size, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (hash) DO NOTHING",
        (prepared.hash, prepared.body, len(prepared.body), now),
    )
    tx.execute(
        "INSERT INTO payload_refs (run_id, hash) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (run_id, prepared.hash),
    )


def envelope_ref(text: str | None) -> str | None:
    """The content hash an envelope points to, if it is stored by reference."""
    if text is None or not text.startswith(_REF):
        return None
    ref = json.loads(text).get("ref")
    return str(ref) if ref is not None else None


def decode(text: str | None, bodies: dict[str, str] | None = None, tx: SyncTx | None = None) -> Any:
    """The value of an envelope; a reference is resolved from ``bodies`` or looked up with ``tx``."""
    if text is None:
        return None
    value = _inline(text)
    if value is not _NOT_INLINE:
        return value
    env = _parse(text, "payload", CorruptStore)
    if "data" in env:
        return env["data"]
    ref = str(env["ref"])
    body = bodies.get(ref) if bodies is not None else None
    if body is None and tx is not None:
        row = tx.fetchone("SELECT body FROM payloads WHERE hash = ?", (ref,))
        body = None if row is None else str(row["body"])
    if body is None:
        raise CorruptStore(f"payload {ref[:12]}… is referenced but missing from the payloads table")
    if digest(body) != ref:
        raise CorruptStore(f"payload {ref[:12]}… does not match its content hash")
    return json.loads(body)


def load_bodies(tx: SyncTx, refs: set[str]) -> dict[str, str]:
    """Fetch several referenced bodies in one query per 500 hashes."""
    out: dict[str, str] = {}
    items = sorted(refs)
    for i in range(0, len(items), 500):
        chunk = items[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for row in tx.fetchall(f"SELECT hash, body FROM payloads WHERE hash IN ({marks})", chunk):
            out[str(row["hash"])] = str(row["body"])
    return out


def finite(value: float, what: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise SpecError(f"{what} must be a finite number ≥ 0, got {value!r}")
    return float(value)
