"""The running node as a good service of its host: titles, systemd's notify protocol, probes, SIGHUP.

``beamish run`` is meant to run under systemd (``Type=notify``, ``WatchdogSec=``) or in a Kubernetes
pod. :class:`ServiceHost` does the host-facing part around a started :class:`Company`: names the
process (``beamish: node (solo)``), says ``READY=1`` once the tree serves and ``STOPPING=1`` when it
begins to stop, pings systemd's watchdog from the node's loop watchdog (so a stalled loop stops the
pings), serves ``/healthz`` and ``/readyz`` when asked, and reloads the config on SIGHUP as
``beamish reload`` would (author ``person``).

Two kinds of "ready": ``READY=1`` says the node takes work — the store is open, every agent of the
tree has started, the control channel answers — so ``systemctl start`` returns as soon as runs are
served, without waiting for the memory server's slow first import (an agent's memory call made
meanwhile waits on the server's bound port). ``/readyz`` says everything the config declares serves:
the tree is up, the store answers, and the memory server (when there is one) serves — it answers
503 with the reason (``the memory server is starting``) until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from beamish._health import HealthServer
from beamish._proctitle import set_scope, set_title
from beamish._sdnotify import SystemdNotifier

log = logging.getLogger("beamish.company")


class ServiceHost:
    """Host-facing duties of one running company; ``start`` after the company started, ``stop``
    before it stops. ``say`` prints one line for the operator (the CLI's console)."""

    def __init__(
        self,
        company: Any,
        *,
        notifier: SystemdNotifier | None = None,
        health_host: str = "127.0.0.1",
        health_port: int | None = None,
        say: Any = print,
    ) -> None:
        self.company = company
        self.notifier = notifier or SystemdNotifier.from_env()
        self.say = say
        self.health = (
            HealthServer(self._live, self._ready, host=health_host, port=health_port)
            if health_port is not None
            else None
        )
        self.reloads = 0
        self._reloading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        watchdog = self.company.node.loop_watchdog
        if watchdog is not None and self.notifier.watchdog_s is not None:
            watchdog.heartbeats.append(self.notifier.heartbeat)
        if self.health is not None:
            self.say(f"health probes at {await self.health.start()}/healthz and /readyz")
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no SIGHUP off POSIX
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        name = self.company.config.file.company.name
        self.notifier.ready(f"company {name!r} running: {plural(len(self.company.config.agents), 'agent')}")

    async def stop(self) -> None:
        self.notifier.stopping()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        watchdog = self.company.node.loop_watchdog
        if watchdog is not None and self.notifier.heartbeat in watchdog.heartbeats:
            watchdog.heartbeats.remove(self.notifier.heartbeat)
        if self._reloading is not None:
            with contextlib.suppress(BaseException):
                await self._reloading
        if self.health is not None:
            await self.health.stop()
        self.notifier.close()

    # -- SIGHUP ------------------------------------------------------------------------------------
    def _on_sighup(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            self.say("SIGHUP: a reload is already under way; this one is skipped")
            return
        self._reloading = asyncio.get_running_loop().create_task(self.reload(), name="beamish-sighup")

    async def reload(self) -> None:
        """Reload the config file, as ``beamish reload`` does; a refusal is one line, not a crash."""
        self.notifier.reloading()
        try:
            report = await self.company.reload(None, author="person", reason="SIGHUP")
        except Exception as exc:
            self.say(f"SIGHUP: reload refused, nothing was reloaded: {exc}")
        else:
            changed = sum(len(report.get(k, [])) for k in ("added", "removed", "upgraded"))
            self.say(f"SIGHUP: config reloaded ({plural(changed, 'change')})")
        finally:
            self.reloads += 1
            self.notifier.ready()

    # -- probes ------------------------------------------------------------------------------------
    def _live(self) -> bool:
        watchdog = self.company.node.loop_watchdog
        return watchdog is None or watchdog.responsive()

    async def _ready(self) -> str | None:
        root = self.company.root
        if root is None or not root.alive:
            return "the supervision tree is not started"
        try:
            await asyncio.wait_for(self.company.store.execute("SELECT 1"), 2.0)
        except Exception as exc:
            return f"the store does not answer: {type(exc).__name__}: {exc}"
        return await _memory_unready(root)


async def _memory_unready(root: Any) -> str | None:
    """Why the company's memory server does not serve yet, or None (also when there is none)."""
    for info in await root.which_children():
        if str(info.id) != "memory":
            continue
        if info.ref is None or getattr(info, "restarting", False):
            return "the memory server is restarting"
        try:
            serving = await info.ref.call(("serving",), timeout=2.0)
        except Exception as exc:
            return f"the memory server does not answer: {type(exc).__name__}: {exc}"
        if not serving:
            return "the memory server is starting"
    return None


def plural(n: int, word: str) -> str:
    """``1 agent``, ``2 agents``: a count with its noun (regular plurals only)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def name_process(company_name: str) -> None:
    """``beamish: node (NAME)`` for this process and the company's scope for the ones it starts."""
    set_scope(company_name)
    set_title("node")
