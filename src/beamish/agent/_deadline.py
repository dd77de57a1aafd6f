"""Run deadlines: a run may have to be done by a time (a schedule's ``deadline`` after its nominal
time, ``submit(..., deadline=300)``), kept in its meta as ``deadline`` (epoch seconds).

While it runs, a near deadline makes the run leave a failing model for its fallback sooner
(:mod:`beamish.agent._fallback`). A run that ends after it — answered late, or failed with its
providers down — is parked as ``needs_attention`` with the reason, and its ``run.needs_attention``
event goes to the alert sinks: a scheduled run is never silently late.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from beamish._events import Event
from beamish._exceptions import DeadlineMissed, SpecError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_deadline(value: Any, where: str = "deadline") -> float | None:
    """A deadline after the nominal time: seconds, or ``"90s"``, ``"5m"``, ``"2h"`` (``None``: none);
    a ``SpecError`` naming ``where`` unless it is above zero."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(
            f"{where}={value!r} is invalid: expected a duration above zero such as '5m', '90s' or 300"
        )
    return seconds


def deadline_meta(nominal: float, deadline_s: float | None) -> dict[str, Any]:
    """The run meta a deadline puts there: the time itself and how it was set."""
    if deadline_s is None:
        return {}
    return {"deadline": nominal + deadline_s, "deadline_s": deadline_s}


def deadline_of(meta: dict[str, Any]) -> float | None:
    value = meta.get("deadline")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def missed(meta: dict[str, Any], now: float, what: str) -> DeadlineMissed | None:
    """The error for a run that ``what`` (``"answered"``, ``"failed: …"``) at ``now``, past its
    deadline; None when it has none or is in time."""
    deadline = deadline_of(meta)
    if deadline is None or now <= deadline:
        return None
    late = now - deadline
    allowance = meta.get("deadline_s")
    after = f" ({_span(float(allowance))} after it was due)" if isinstance(allowance, int | float) else ""
    return DeadlineMissed(
        f"the run missed its deadline of {_iso(deadline)}{after}: it {what} {_span(late)} late",
        deadline=deadline,
        late_s=late,
    )


def missed_event(run_id: str, agent: str, error: DeadlineMissed, now: float) -> Event:
    """``run.needs_attention`` for a missed deadline: critical by default in the alert routes."""
    data = {
        "run_id": run_id,
        "agent": agent,
        "why": str(error),
        "deadline": error.deadline,
        "late_s": round(error.late_s, 3),
    }
    return Event("run.needs_attention", run_id, data, at=now)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _span(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f}s"
