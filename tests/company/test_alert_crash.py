"""An alert survives a SIGKILL of its node between the event and its delivery: the outbox row
outlives the process, and another deliverer takes it over once the dead one's lease lapses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _receivers import Receiver

from beamish.company._alerter import Alerter
from beamish.company._outbox import Route, outbox_rows
from beamish.company._sinks import WebhookSink
from beamish.journal import open_store
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(60)
SECRET = "hook-secret"
ROOT = Path(__file__).resolve().parents[2]


async def test_an_alert_survives_a_sigkill_mid_delivery(store_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with Receiver(SECRET) as hook:
        hook.hold = True
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_alert_node.py")), store_url, hook.url, SECRET],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"routed"
            assert hook.arrived.wait(20), "the node never started delivering"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert hook.verified == []
        hook.hold = False
        clock = FakeClock(wall_start=time.time())
        store = await open_store(store_url, clock=clock)
        try:
            alerter = Alerter(store, [Route("ops")], [WebhookSink("ops", hook.url, secret=SECRET)])
            assert await alerter.one_pass() == 0, "the dead node's lease still holds the row"
            clock.set_wall(clock.time() + 3)
            assert await alerter.one_pass() == 1
            assert await alerter.one_pass() == 0, "delivered rows are not sent again"
            rows = await store.read(outbox_rows)
        finally:
            await store.close()
    assert [(b["kind"], b["subject"]) for b in hook.verified] == [("run.needs_attention", "r1")]
    assert [(r["status"], r["kind"]) for r in rows] == [("sent", "run.needs_attention")]
