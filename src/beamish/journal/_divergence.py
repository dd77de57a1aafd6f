"""What a divergence reports: bounded summaries of requests, and the differences between two of them.

Replay (``_replay``) and the request hasher (``_reqhash``) both need these; they live here so that
neither has to import the other.
"""

from __future__ import annotations

from typing import Any

from beamish.journal._payload import canonical, digest


def summarize(request: Any) -> Any:
    """A bounded digest of a request: small scalars kept, big values and list items as short hashes.

    Stored instead of a model request (which repeats the whole conversation each turn) and used to
    say *what* differs on a divergence.
    """
    if isinstance(request, dict):
        return {str(k): _summary_value(v) for k, v in request.items()}
    return _summary_value(request)


def _short(value: Any) -> str:
    return digest(canonical(value))[:16]


def _summary_value(value: Any) -> Any:
    if isinstance(value, list):
        return {"len": len(value), "items": [_short(v) for v in value]}
    if isinstance(value, (dict, str)) and len(canonical(value)) > 200:
        return {"len": len(canonical(value)), "sha": _short(value)}
    return value


def differences(recorded: Any, live: Any) -> list[str]:
    """Human-readable differences between two summaries (which keys, which list items)."""
    if not (isinstance(recorded, dict) and isinstance(live, dict)):
        return [] if recorded == live else [f"request: {clip(recorded)} → {clip(live)}"]
    out: list[str] = []
    for key in sorted(set(recorded) | set(live)):
        a, b = recorded.get(key, "<absent>"), live.get(key, "<absent>")
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and "items" in a and "items" in b:
            first = next(
                (i for i, (x, y) in enumerate(zip(a["items"], b["items"], strict=False)) if x != y),
                min(len(a["items"]), len(b["items"])),
            )
            out.append(f"{key}: {a['len']} → {b['len']} items, first difference at index {first}")
        else:
            out.append(f"{key}: {clip(a)} → {clip(b)}")
    return out


def clip(value: Any, width: int = 120) -> str:
    text = canonical(value)
    return text if len(text) <= width else text[: width - 1] + "…"
