"""Budgets that pause instead of crash: the caps, their windows in a time zone, the company's caps.

The :class:`Budget` says how much may be spent per run, day, month and in total; the keeper
(``_keeper``) enforces it over a ledger (``_ledger``, ``_store_ledger``). A day or a month is a
window that starts at local midnight in the budget's time zone, so a pause for a spent day lifts
itself when the next day begins there. A reservation that does not fit is a :class:`Refusal`
(which cap, of which scope, the money involved); the keeper raises it as :class:`BudgetExceeded`
after pausing, and :class:`Paused` when a pause already holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from beamish._exceptions import SpecError
from beamish._exits import OverBudget
from beamish.agent._ledger import PauseRecord
from beamish.agent._pricing import Price, PriceBook, nano_to_usd, usd_to_nano

COMPANY = "*"  #: the ledger's name for the company-wide scope
LIMITS = ("per_run_usd", "per_day_usd", "per_month_usd", "total_usd")


def _check_cap(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"Budget {name} must be an amount in USD or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"Budget {name} must be > 0 (None for no cap), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """Spending caps in USD; ``None`` means no cap. ``per_day_usd`` and ``per_month_usd`` windows start
    at midnight in ``tz``; an event warns once a window passes ``warn_at`` of its cap.

    ``prices`` gives a :class:`~beamish.Price` per model name or glob (``"scripted:*"``), for models
    the offline catalogue does not know or to override it.
    """

    per_run_usd: float | None = None
    per_day_usd: float | None = None
    per_month_usd: float | None = None
    total_usd: float | None = None
    tz: str = "UTC"
    warn_at: float = 0.8
    prices: Mapping[str, Price] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in LIMITS:
            object.__setattr__(self, name, _check_cap(name, getattr(self, name)))
        if not isinstance(self.prices, Mapping):
            raise SpecError(f"Budget prices must map model names to beamish.Price, got {self.prices!r}")
        prices = {}
        for model, price in self.prices.items():
            if isinstance(price, Mapping):
                try:
                    price = Price(**price)
                except TypeError as exc:
                    raise SpecError(f"Budget prices[{model!r}]: {exc}") from exc
            prices[model] = price
        PriceBook(prices)  # validates names and values, naming the bad one
        object.__setattr__(self, "prices", prices)
        object.__setattr__(
            self, "_caps", {n: usd_to_nano(v) for n in LIMITS if (v := getattr(self, n)) is not None}
        )
        if not isinstance(self.tz, str):
            raise SpecError(f"Budget tz must be an IANA zone name such as 'Europe/Paris', got {self.tz!r}")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SpecError(f"Budget tz {self.tz!r} is not a known IANA time zone") from exc
        warn = self.warn_at
        if isinstance(warn, bool) or not isinstance(warn, int | float) or not 0 < warn <= 1:
            raise SpecError(f"Budget warn_at must be a fraction in (0, 1], got {warn!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "budget") -> Budget:
        """Build from config or from :meth:`to_json`, naming any unknown key and refusing a
        version this beamish does not read."""
        if "v" in data and data["v"] != 1:
            raise SpecError(f"{where}: version {data['v']!r} is not one this beamish reads (1)")
        known = {*LIMITS, "tz", "warn_at", "prices"}
        unknown = sorted(set(data) - known - {"v"})
        if unknown:
            raise SpecError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k != "v"})

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"v": 1, **{name: getattr(self, name) for name in LIMITS}}
        data.update(tz=self.tz, warn_at=self.warn_at)
        data["prices"] = {model: price.to_json() for model, price in self.prices.items()}
        return data

    def caps(self) -> dict[str, int]:
        """The caps that are set, in nano-dollars."""
        caps: dict[str, int] = self.__dict__["_caps"]
        return caps


def window_bounds(limit: str, tz: str, at: float) -> tuple[float | None, float | None]:
    """The ``[start, end)`` epoch seconds of the ``limit``'s window holding ``at`` (None: unbounded).

    Days and months begin at local midnight in ``tz``, so a 23- or 25-hour DST day is one window.
    """
    if limit not in ("per_day_usd", "per_month_usd"):
        return None, None
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(at, zone)
    if limit == "per_day_usd":
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
        nxt = start.date() + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    else:
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=zone)
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True)
class Refusal:
    """Why a reservation did not fit: which cap, of which scope, and the money involved (nano-USD)."""

    scope: str  # "run", "agent" or "company"
    subject: str
    limit: str
    cap: int
    spent: int
    needed: int
    window_end: float | None

    def reason(self) -> OverBudget:
        return OverBudget(
            limit=f"{self.scope}.{self.limit}",
            spent=nano_to_usd(self.spent),
            cap=nano_to_usd(self.cap),
            needed=nano_to_usd(self.needed),
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "limit": self.limit,
            "cap_usd": nano_to_usd(self.cap),
            "spent_usd": nano_to_usd(self.spent),
            "needed_usd": nano_to_usd(self.needed),
            "window_end": self.window_end,
            "why": self.reason().message,
        }


class BudgetExceeded(Exception):
    """A reservation was refused; the keeper has already paused and emitted the event."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(f"{refusal.scope} {refusal.subject!r} is over its {refusal.limit} budget")


class Paused(Exception):
    """The agent (or the company) is paused: no model call may start."""

    def __init__(self, record: PauseRecord) -> None:
        self.record = record
        super().__init__(f"{record.subject!r} is paused: {record.reason.get('kind')} ({record.limit})")


async def set_company_budget(store: Any, budget: Budget | None) -> None:
    """Store the company-wide caps where every agent, in any process or node, reads them at the
    start of each run (None removes them)."""
    if budget is None:
        await store.execute("DELETE FROM budget_config WHERE name = 'company'")
        return
    body = json.dumps(budget.to_json(), sort_keys=True)
    await store.execute(
        "INSERT INTO budget_config (name, body, at) VALUES ('company', ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET body = excluded.body, at = excluded.at",
        (body, store.clock.time()),
    )


async def load_company_budget(store: Any) -> Budget | None:
    """The company-wide caps stored by :func:`set_company_budget`, if any."""
    row = await store.fetchone("SELECT body FROM budget_config WHERE name = 'company'")
    return None if row is None else Budget.from_mapping(json.loads(row["body"]), "company budget")
