"""The alerter: a side service of the company that routes stored events into the outbox and
delivers it, at least once, whichever node runs it and however often it is killed.

Every pass: ``pump`` (events → outbox rows, with the cursor, in one transaction), then ``claim`` due
rows under a lease and send them; a failure is retried with exponential backoff up to
``max_attempts``. Everything lives in the store, so a restarted alerter (or one on another node)
takes over where the last one stopped; a row leased by a dead deliverer is taken over once its
lease lapses.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._tasks import cancel_and_wait
from beamish.agent._links import sign_link
from beamish.company._digest import DEFAULT_CRON
from beamish.company._outbox import Alert, Route, claim, delivered, failed, pump
from beamish.company._sinks import EmailSink, SlackSink, WebhookSink
from beamish.journal import open_store
from beamish.runtime import Actor
from beamish.schedule._cron import Schedule

logger = logging.getLogger("beamish.alerts")
LINK_SECRET_ENV = "BEAMISH_LINK_SECRET"


class Alerter:
    """One deliverer over an open store: :meth:`one_pass` routes and delivers what is due."""

    def __init__(
        self,
        store: Any,
        routes: Sequence[Route],
        sinks: Sequence[Any],
        *,
        lease_s: float = 60.0,
        max_attempts: int = 8,
        backoff_s: float = 5.0,
        digests: Sequence[tuple[str, Schedule]] = (),
        build: Any = None,
    ) -> None:
        self.store, self.clock = store, store.clock
        self.routes, self.sinks = list(routes), {s.name: s for s in sinks}
        self.lease_s, self.max_attempts, self.backoff_s = lease_s, max_attempts, backoff_s
        #: ``(sink, cron)`` pairs, and ``build(store, since, until)`` → a ``Digest``.
        self.digests, self.build = list(digests), build

    async def route(self) -> int:
        """Events stored since the cursor → outbox rows; how many rows."""
        total, batch = 0, 500

        def work(tx: Any) -> tuple[int, int]:
            return pump(tx, self.routes, self.clock.time(), batch)

        while True:
            read, inserted = await self.store.run(work)
            total += int(inserted)
            if read < batch:
                return total

    async def one_pass(self) -> int:
        """Route new events, deliver what is due; returns how many alerts were delivered."""
        await self.route()
        now = self.clock.time()
        due: list[Alert] = await self.store.run(lambda tx: claim(tx, self.routes, now, self.lease_s))
        results = await asyncio.gather(*(self._deliver(a) for a in due))
        for sink, schedule in self.digests:
            await self.send_digest_if_due(sink, schedule)
        return sum(results)

    async def send_digest_if_due(self, sink: str, schedule: Schedule) -> bool:
        """Send ``sink`` its digest when its cron has fired since the last one (one node sends it:
        the fire time is claimed with a conditional update, and given back if sending fails)."""
        now = self.clock.time()
        name = f"digest:{sink}"
        row = await self.store.fetchone("SELECT event_id FROM alert_cursor WHERE name = ?", (name,))
        if row is None:
            await self.store.execute(
                "INSERT INTO alert_cursor (name, event_id) VALUES (?, ?)", (name, int(now))
            )
            return False
        last = int(row["event_id"])
        fire = schedule.next_fire(datetime.fromtimestamp(last, UTC)).timestamp()
        if fire > now:
            return False
        claimed = await self.store.execute(
            "UPDATE alert_cursor SET event_id = ? WHERE name = ? AND event_id = ?", (int(now), name, last)
        )
        if claimed != 1:
            return False
        try:
            digest = await self.build(self.store, float(last), now)
            await self.sinks[sink].send_digest(digest)
        except Exception as exc:
            logger.warning("the digest to %s failed: %s", sink, exc)
            await self.store.execute("UPDATE alert_cursor SET event_id = ? WHERE name = ?", (last, name))
            return False
        return True

    async def _deliver(self, alert: Alert) -> bool:
        try:
            await self.sinks[alert.sink].send(alert)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            logger.warning("alert %d to %s failed: %s", alert.id, alert.sink, why)
            now = self.clock.time()
            await self.store.run(lambda tx: failed(tx, alert, why, now, self.max_attempts, self.backoff_s))
            return False
        now = self.clock.time()
        await self.store.run(lambda tx: delivered(tx, alert.id, now))
        return True


class AlerterActor(Actor):
    """``ChildSpec("alerts", AlerterActor, kwargs={"store": url, "routes": …, "sinks": …})``: an
    :class:`Alerter` on its own store connection, one pass every ``poll_s``."""

    async def init(
        self,
        store: str,
        routes: Sequence[Route],
        sinks: Sequence[Any],
        *,
        clock: Clock | None = None,
        poll_s: float = 1.0,
        **options: Any,
    ) -> None:
        self.store = await open_store(store, clock=clock or SYSTEM_CLOCK, pool_size=2)
        self.alerter = Alerter(self.store, routes, sinks, **options)
        self.poll_s = poll_s
        self._task = asyncio.ensure_future(self._run())

    async def handle_call(self, request: Any) -> Any:
        if list(request) == ["pass"]:
            return await self.alerter.one_pass()
        raise ValueError(f"the alerter does not answer {request!r}")

    async def _run(self) -> None:
        while True:
            try:
                await self.alerter.one_pass()
            except Exception as exc:  # the store is briefly unreachable: the rows wait for the next pass
                logger.warning("alert pass failed: %s", exc)
            await self.store.clock.sleep(self.poll_s)

    async def terminate(self, reason: Any) -> None:
        await cancel_and_wait(self._task)
        for sink in self.alerter.sinks.values():
            await sink.aclose()
        await self.store.close()


def decision_links(base_url: str, secret: str | None) -> Any:
    """For an ``approval.requested`` alert: signed approve and deny links to the dashboard."""

    def links(alert: Alert) -> dict[str, str]:
        data = alert.event.data
        if alert.kind != "approval.requested" or not secret or not data.get("gate_id"):
            return {}
        by = (data.get("approvers") or ["link"])[0]
        expires = float(data.get("expires_at") or 0)
        base = base_url.rstrip("/")
        return {
            d: f"{base}/links/{sign_link(secret, str(data['gate_id']), d, by=by, expires_at=expires)}"
            for d in ("approve", "deny")
        }

    return links


def build_sinks(sections: Sequence[Any]) -> list[Any]:
    """Sinks from the config's ``[[alerts]]`` (secrets read from the environment variables named)."""
    sinks: list[Any] = []
    secret = os.environ.get(LINK_SECRET_ENV)
    for s in sections:
        links = decision_links(s.links_url, secret) if s.links_url else None
        if s.type == "webhook":
            key = os.environ.get(s.secret_env) if s.secret_env else None
            sinks.append(WebhookSink(s.name, s.url, secret=key, links=links))
        elif s.type == "slack":
            sinks.append(SlackSink(s.name, s.url, links=links))
        else:
            password = os.environ.get(s.password_env) if s.password_env else None
            sinks.append(
                EmailSink(
                    s.name,
                    s.host,
                    s.port,
                    s.sender,
                    list(s.to),
                    s.starttls,
                    s.username,
                    password,
                    links=links,
                )
            )
    return sinks


def build_digests(sections: Sequence[Any], tz: str) -> list[tuple[str, Schedule]]:
    """Each sink's digest cron: ``digest_cron``, by default ``0 8 * * *`` for email sinks."""
    out = []
    for s in sections:
        cron = s.digest_cron if s.digest_cron is not None else (DEFAULT_CRON if s.type == "email" else None)
        if cron:
            out.append((s.name, Schedule(cron, tz=tz)))
    return out


def build_routes(sections: Sequence[Any], tz: str) -> list[Route]:
    routes = []
    for s in sections:
        quiet = None
        if s.quiet_hours:
            start, end = (int(h) * 60 + int(m) for h, m in (p.split(":") for p in s.quiet_hours.split("-")))
            quiet = (start, end)
        routes.append(
            Route(
                s.name,
                kinds=None if s.events is None else frozenset(s.events),
                agents=None if s.agents is None else frozenset(s.agents),
                min_severity=s.min_severity,
                dedup_window_s=s.dedup_window_s,
                rate_per_minute=s.rate_per_minute,
                quiet=quiet,
                tz=tz,
            )
        )
    return routes
