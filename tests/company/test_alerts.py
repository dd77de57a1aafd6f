"""Alerts through the outbox to real local servers: a signed webhook, a Slack-style hook, SMTP with
STARTTLS and login; retries with backoff, dedup within a window, rate limit, quiet hours."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _receivers import Receiver, smtp_server

from beamish._events import Event
from beamish.company._alerter import Alerter
from beamish.company._outbox import Route, outbox_rows
from beamish.company._sinks import EmailSink, SlackSink, WebhookSink
from beamish.journal import open_store
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(30)
SECRET = "hook-secret"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Any]:
    clock = FakeClock(wall_start=time.time())
    s = await open_store(f"sqlite:///{tmp_path}/j.db", clock=clock)
    yield s
    await s.close()


def attention(run_id: str = "r1") -> Event:
    return Event("run.needs_attention", run_id, {"run_id": run_id, "agent": "finance", "why": "unknown"})


async def _alerter(store: Any, sinks: list[Any], **route: Any) -> Alerter:
    alerter = Alerter(store, [Route(s.name, **route) for s in sinks], sinks, backoff_s=10.0)
    await alerter.route()  # the cursor starts at the newest event: alerts are about what comes next
    return alerter


async def test_a_webhook_alert_is_signed_and_verified_by_the_receiver(store: Any) -> None:
    with Receiver(SECRET) as hook:
        alerter = await _alerter(store, [WebhookSink("ops", hook.url, secret=SECRET)])
        await store.append_event(attention())
        assert await alerter.one_pass() == 1
    (body,) = hook.verified
    assert (body["kind"], body["severity"], body["subject"]) == ("run.needs_attention", "critical", "r1")
    assert hook.forged == 0


async def test_a_wrong_secret_is_refused_and_retried_with_backoff_until_given_up(store: Any) -> None:
    with Receiver(SECRET) as hook:
        alerter = await _alerter(store, [WebhookSink("ops", hook.url, secret="wrong")])
        alerter.max_attempts = 2
        await store.append_event(attention())
        assert await alerter.one_pass() == 0
        assert await alerter.one_pass() == 0, "not again before its backoff"
        store.clock.set_wall(store.clock.time() + 10)
        assert await alerter.one_pass() == 0
    assert hook.forged == 2 and hook.verified == []
    (row,) = await store.read(outbox_rows)
    assert (row["status"], row["attempts"]) == ("failed", 2) and "401" in row["last_error"]


async def test_a_failing_receiver_gets_the_alert_on_a_later_attempt(store: Any) -> None:
    with Receiver(SECRET) as hook:
        hook.fail_next = 2
        alerter = await _alerter(store, [WebhookSink("ops", hook.url, secret=SECRET)])
        await store.append_event(attention())
        delivered = 0
        for step in (0, 10, 20):  # backoff 10 s, then 20 s
            store.clock.set_wall(store.clock.time() + step)
            delivered += await alerter.one_pass()
    assert delivered == 1 and len(hook.verified) == 1
    (row,) = await store.read(outbox_rows)
    assert (row["status"], row["attempts"]) == ("sent", 3)


async def test_the_same_alert_is_sent_once_within_its_window(store: Any) -> None:
    with Receiver(None) as hook:
        alerter = await _alerter(store, [SlackSink("chat", hook.url)], dedup_window_s=600)
        await store.append_event(attention("r1"))
        await store.append_event(attention("r1"))
        assert await alerter.one_pass() == 1
        await store.append_event(attention("r1"))
        assert await alerter.one_pass() == 0
        store.clock.set_wall(store.clock.time() + 601)
        await store.append_event(attention("r1"))
        assert await alerter.one_pass() == 1, "after the window the same alert goes again"
    assert len(hook.verified) == 2
    assert "run.needs_attention" in hook.verified[0]["text"]


async def test_the_rate_limit_holds_the_rest_for_the_next_minute(store: Any) -> None:
    with Receiver(None) as hook:
        alerter = await _alerter(store, [SlackSink("chat", hook.url)], rate_per_minute=2)
        for i in range(5):
            await store.append_event(attention(f"r{i}"))
        assert await alerter.one_pass() == 2
        assert await alerter.one_pass() == 0
        store.clock.set_wall(store.clock.time() + 61)
        assert await alerter.one_pass() == 2
    assert len(hook.verified) == 4


async def test_quiet_hours_hold_all_but_critical_alerts(store: Any) -> None:
    with Receiver(None) as hook:
        alerter = await _alerter(store, [SlackSink("chat", hook.url)], quiet=(0, 24 * 60 - 1), tz="UTC")
        await store.append_event(Event("budget.exceeded", "marketing", {"agent": "marketing"}))
        await store.append_event(attention())
        assert await alerter.one_pass() == 1
    assert [b["text"].split(" ")[0] for b in hook.verified] == ["[critical]"]
    assert [r["kind"] for r in await store.read(lambda tx: outbox_rows(tx, "held"))] == ["budget.exceeded"]


async def test_routes_filter_by_kind_agent_and_severity(store: Any) -> None:
    with Receiver(None) as hook:
        sink = SlackSink("chat", hook.url)
        alerter = Alerter(
            store, [Route("chat", agents=frozenset({"finance"}), min_severity="critical")], [sink]
        )
        await alerter.route()
        await store.append_event(Event("budget.exceeded", "finance", {"agent": "finance"}))  # a warning
        await store.append_event(Event("run.needs_attention", "r9", {"agent": "marketing"}))  # other agent
        await store.append_event(Event("run.finished", "r8", {"agent": "finance"}))  # not a default kind
        await store.append_event(attention())
        assert await alerter.one_pass() == 1
    assert len(hook.verified) == 1


async def test_email_goes_over_starttls_with_login(store: Any, tmp_path: Path) -> None:
    controller, box = smtp_server(tmp_path)
    try:
        sink = EmailSink(
            "mail", "127.0.0.1", controller.port, "beamish@example.com", ["owner@example.com"],
            starttls=True, username="beamish", password="s3cret",
        )  # fmt: skip
        alerter = await _alerter(store, [sink])
        await store.append_event(
            Event("approval.requested", "r1", {"agent": "marketing", "tool": "post", "args": {"text": "hi"},
                                              "gate_id": "g1"})
        )  # fmt: skip
        assert await alerter.one_pass() == 1
    finally:
        controller.stop()
    (message,) = box.messages
    assert box.logins == ["beamish"]
    assert "Subject: [warning] approval.requested: marketing wants to call post(" in message
    assert "owner@example.com" in message
