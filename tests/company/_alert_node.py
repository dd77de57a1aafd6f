"""A node's alerter for the SIGKILL test (run as a script; not collected by pytest).

``python _alert_node.py STORE_URL HOOK_URL SECRET``: records a ``run.needs_attention`` event, routes
it into the outbox, prints ``routed`` and delivers it (the test's receiver holds the request, and
the test kills this process mid-delivery).
"""

from __future__ import annotations

import asyncio
import sys

from beamish._events import Event
from beamish.company._alerter import Alerter
from beamish.company._outbox import Route
from beamish.company._sinks import WebhookSink
from beamish.journal import open_store


async def main(url: str, hook: str, secret: str) -> None:
    store = await open_store(url)
    alerter = Alerter(
        store, [Route("ops")], [WebhookSink("ops", hook, secret=secret, timeout_s=60)], lease_s=2.0
    )
    await alerter.route()
    await store.append_event(Event("run.needs_attention", "r1", {"run_id": "r1", "agent": "finance"}))
    await alerter.route()
    print("routed", flush=True)
    await alerter.one_pass()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
