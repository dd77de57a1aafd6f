"""Cron with time zones, with Debian cron's daylight-saving semantics.

croniter answers one question well: which *wall-clock* times match an expression. It answers the
daylight-saving question wrongly for our purpose (croniter 7 fires a daily 01:30 America/New_York job
twice on the autumn change). So croniter enumerates wall-clock times on a clock that has no
daylight saving (an aware datetime in ``ZoneInfo("UTC")`` standing for the zone's local wall clock),
and this module maps each wall-clock time to real instants as Debian cron does:

* a *fixed-time* job (minute and hour fields both without a leading ``*``) runs once in a repeated
  hour (at the first occurrence) and as soon as possible after a skipped time (at the instant the
  clock jumps), never twice in one local minute;
* a *wildcard* job (``*/15 * * * *``, ``0 * * * *``) follows real time: it fires at every real instant
  whose local time matches, so twice in a repeated hour and not at all in a skipped one.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter  # type: ignore[import-untyped]

from beamish._exceptions import ScheduleError

Misfire = Literal["once", "skip", "all"]
MISFIRE_POLICIES: tuple[Misfire, ...] = ("once", "skip", "all")
_POLICIES = ", ".join(MISFIRE_POLICIES)

_WALL = ZoneInfo("UTC")  # a clock without daylight saving: holds the zone's local wall time
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MINUTE = timedelta(minutes=1)
_LOOKAHEAD = timedelta(hours=3)


@dataclass(frozen=True)
class Schedule:
    """A cron expression in an IANA time zone, with its missed-run policy.

    ``misfire`` says what happens to ticks that could not fire within ``grace_s`` of their due time
    (the scheduler was down): ``"once"`` runs the latest of them once, ``"skip"`` runs none, ``"all"``
    runs each. ``jitter_s`` spreads the due time of each tick by a deterministic offset in
    ``[0, jitter_s)`` (the same on every node), so many schedules at 14:00 do not stampede.
    ``deadline_s``: each tick's run must be done this long after its nominal time; it leaves a
    failing model for its fallback sooner as the deadline nears, and a run that misses it waits for
    a person (``needs_attention``) and is alerted.
    """

    cron: str
    tz: str = "UTC"
    misfire: Misfire = "once"
    grace_s: float = 3600.0
    jitter_s: float = 0.0
    deadline_s: float | None = None
    _expr: str = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _fixed: bool = field(init=False, repr=False, compare=False)
    _template: croniter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expr = _ALIASES.get(self.cron.strip().lower(), self.cron.strip())
        fields = expr.split()
        if len(fields) != 5:
            raise ScheduleError(f"cron: expected 5 fields (minute hour day month weekday), got {self.cron!r}")
        try:
            template = croniter(expr, datetime(2000, 1, 1, tzinfo=_WALL))
        except (CroniterError, ValueError, KeyError) as exc:
            raise ScheduleError(f"cron: invalid expression {self.cron!r}: {exc}") from exc
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(
                f"tz: expected an IANA time zone such as 'Europe/Lisbon', got {self.tz!r}"
            ) from exc
        if self.misfire not in MISFIRE_POLICIES:
            raise ScheduleError(
                f"misfire: expected one of {', '.join(MISFIRE_POLICIES)}, got {self.misfire!r}"
            )
        if not (isinstance(self.grace_s, int | float) and self.grace_s >= 0):
            raise ScheduleError(f"grace_s: expected a number of seconds >= 0, got {self.grace_s!r}")
        if not (isinstance(self.jitter_s, int | float) and self.jitter_s >= 0):
            raise ScheduleError(f"jitter_s: expected a number of seconds >= 0, got {self.jitter_s!r}")
        if self.deadline_s is not None and not (
            isinstance(self.deadline_s, int | float)
            and not isinstance(self.deadline_s, bool)
            and self.deadline_s > 0
        ):
            raise ScheduleError(f"deadline_s: expected a number of seconds > 0, got {self.deadline_s!r}")
        object.__setattr__(self, "_expr", expr)
        object.__setattr__(self, "_template", template)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_fixed", not (fields[0].startswith("*") or fields[1].startswith("*")))
        if next(self._wall_times(datetime(2000, 1, 1)), None) is None:
            raise ScheduleError(f"cron: {self.cron!r} never matches a date")

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def fixed_time(self) -> bool:
        """True for a fixed-time job (Debian cron's sense): it runs once per matching wall-clock time."""
        return self._fixed

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """The nominal fire times ``t`` with ``start < t <= end``, as aware datetimes in the zone.

        Pure: the answer depends on the arguments only. Adjacent windows compose without gaps or
        repeats: ``fires_between(a, b) + fires_between(b, c) == fires_between(a, c)``.
        """
        _require_aware("start", start)
        _require_aware("end", end)
        out: list[datetime] = []
        for fire in self.iter_fires(start):
            if fire > end:
                break
            out.append(fire)
        return out

    def next_fire(self, after: datetime) -> datetime:
        """The first nominal fire time strictly after ``after``."""
        _require_aware("after", after)
        return next(self.iter_fires(after))

    def iter_fires(self, after: datetime) -> Iterator[datetime]:
        """Every nominal fire time strictly after ``after``, in increasing order (endless)."""
        _require_aware("after", after)
        after_utc = after.astimezone(UTC)
        local = after_utc.astimezone(self._zone)
        # A fire after `after` can carry an earlier wall time only inside a repeated hour: look back
        # by how much the offset drops in the next hours (zero almost always).
        later = (after_utc + _LOOKAHEAD).astimezone(self._zone)
        drop = (local.utcoffset() or timedelta()) - (later.utcoffset() or timedelta())
        wall_start = local.replace(tzinfo=None) - max(drop, timedelta()) - _MINUTE
        pending: list[datetime] = []  # later occurrences of repeated wall times, in UTC
        last: datetime | None = None
        for wall in self._wall_times(wall_start):
            instants = self._instants(wall)
            # Everything buffered that precedes this wall time's first instant can go out.
            head = instants[0] if instants else None
            while pending and (head is None or pending[0] <= head):
                last = yield from _emit(heapq.heappop(pending), after_utc, last, self._zone)
            if not instants:
                continue
            last = yield from _emit(instants[0], after_utc, last, self._zone)
            for extra in instants[1:]:
                heapq.heappush(pending, extra)
        while pending:
            last = yield from _emit(heapq.heappop(pending), after_utc, last, self._zone)

    def due_time(self, schedule_id: str, nominal: datetime) -> datetime:
        """When the tick is due: nominal plus this schedule's deterministic jitter for it."""
        if self.jitter_s <= 0:
            return nominal
        digest = hashlib.sha256(f"{schedule_id}|{nominal.astimezone(UTC).isoformat()}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return nominal + timedelta(seconds=fraction * self.jitter_s)

    def next_due(self, schedule_id: str, after: datetime) -> datetime:
        """When the scheduler next fires ``schedule_id`` after ``after``: the earliest due time
        (nominal plus jitter, daylight saving as :meth:`iter_fires` has it) later than ``after``.

        The one next-fire answer for everything that shows or checks one (status, the dashboard),
        so none of them can disagree with the scheduler. A tick whose nominal time has passed but
        whose jittered due time has not is still the next one."""
        _require_aware("after", after)
        best: datetime | None = None
        for nominal in self.iter_fires(after - timedelta(seconds=self.jitter_s)):
            if best is not None and nominal >= best:  # due >= nominal: no later tick comes sooner
                return best
            due = self.due_time(schedule_id, nominal)
            if due > after and (best is None or due < best):
                best = due
        if best is None:
            raise ScheduleError(f"cron: {self.cron!r} never fires after {after.isoformat()}")
        return best

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "v": 1,
            "cron": self.cron,
            "tz": self.tz,
            "misfire": self.misfire,
            "grace_s": self.grace_s,
            "jitter_s": self.jitter_s,
        }
        if self.deadline_s is not None:  # absent otherwise: records written before deadlines read the same
            data["deadline_s"] = self.deadline_s
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Schedule:
        if data.get("v") != 1:
            raise ScheduleError(f"unsupported schedule record version {data.get('v')!r}")
        misfire = next((m for m in MISFIRE_POLICIES if m == data.get("misfire")), None)
        if misfire is None:
            raise ScheduleError(
                f"misfire: expected one of {', '.join(MISFIRE_POLICIES)}, got {data.get('misfire')!r}"
            )
        grace, jitter = data.get("grace_s"), data.get("jitter_s")
        if not isinstance(grace, int | float) or not isinstance(jitter, int | float):
            raise ScheduleError(
                f"schedule record: grace_s and jitter_s must be numbers, got {grace!r}, {jitter!r}"
            )
        deadline = data.get("deadline_s")
        if deadline is not None and not isinstance(deadline, int | float):
            raise ScheduleError(f"schedule record: deadline_s must be a number, got {deadline!r}")
        return cls(
            cron=str(data["cron"]),
            tz=str(data["tz"]),
            misfire=misfire,
            grace_s=grace,
            jitter_s=jitter,
            deadline_s=deadline,
        )

    def _wall_times(self, wall_start: datetime) -> Iterator[datetime]:
        """Naive local wall-clock times matching the expression, strictly after ``wall_start``."""
        # A copy of the parsed template: parsing an expression costs more than iterating it.
        it = copy.copy(self._template)
        it.set_current(wall_start.replace(tzinfo=_WALL), force=True)
        while True:
            try:
                wall = it.get_next(datetime)
            except CroniterError:
                return
            yield wall.replace(tzinfo=None)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The real UTC instants at which this wall-clock time fires, in order (Debian cron rules)."""
        early = wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
        late = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        exists_early = early.astimezone(self._zone).replace(tzinfo=None) == wall
        exists_late = late.astimezone(self._zone).replace(tzinfo=None) == wall
        if exists_early and exists_late and early != late:  # a repeated wall time
            return [early] if self._fixed else [early, late]
        if exists_early or exists_late:
            return [early if exists_early else late]
        # A skipped wall time: fixed-time jobs run as soon as the clock has jumped, wildcards not.
        return [self._gap_end(late, early)] if self._fixed else []

    def _gap_end(self, before: datetime, after: datetime) -> datetime:
        """The first instant after a skipped interval, found between two UTC bounds by bisection."""
        low, high = min(before, after), max(before, after)
        target = high.astimezone(self._zone).utcoffset()
        while high - low > _MINUTE:
            mid = low + (high - low) / 2
            mid = mid.replace(second=0, microsecond=0)
            if mid <= low:
                mid = low + _MINUTE
            if mid.astimezone(self._zone).utcoffset() == target:
                high = mid
            else:
                low = mid
        return high


def _emit(
    instant: datetime, after_utc: datetime, last: datetime | None, zone: ZoneInfo
) -> Generator[datetime, None, datetime | None]:
    """Yield ``instant`` (in the zone) unless it is not after ``after_utc`` or repeats the last one."""
    if instant > after_utc and (last is None or instant > last):
        yield instant.astimezone(zone)
        return instant
    return last


def _require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{name}: expected an aware datetime (with a time zone), got {value!r}")
