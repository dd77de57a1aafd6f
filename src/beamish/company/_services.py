"""The company's side services as supervised children: the scheduler and the shared memory server.

They start before any agent and stop after them all. Both are built from the config; what they
need of the running node (``submit``) is bound when the company starts.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from beamish._clock import Clock
from beamish._net import free_port, is_loopback, url_host
from beamish.company._alerter import AlerterActor, build_digests, build_routes, build_sinks
from beamish.company._config import CompanyConfig, schedule_entries
from beamish.company._digest import digest_builder
from beamish.company._memory_service import MemoryService, ServeGate
from beamish.company._memory_tools import MEMORY_TOOLS, TOKEN_ENV, URL_ENV
from beamish.company._tree import CompanyParts
from beamish.company._upgrades import attach_upgrades
from beamish.runtime import ChildSpec
from beamish.schedule import SchedulerActor


class LateSubmit:
    """``node.submit`` for a node that does not exist yet when the tree is specified."""

    def __init__(self) -> None:
        self.company: Any = None

    def bind(self, company: Any) -> None:
        self.company = company

    async def __call__(self, agent: str, input: Any, *, run_id: str) -> object:
        if self.company is None or self.company.node is None:
            raise RuntimeError("the company is not running")
        return await self.company.submit(agent, input, run_id=run_id)


def company_parts(
    config: CompanyConfig, *, schedule_clock: Clock | None = None, poll_s: float = 30.0
) -> CompanyParts:
    """The services ``beamish run`` and the demo start around the agents."""
    parts = CompanyParts()
    if config.file.memory.enabled:
        memory = config.file.memory
        port = memory.port or free_port(memory.host)
        gate = ServeGate()  # the MCP SDK's import waits until the agents have started
        parts.on_started.append(lambda _company: gate.open())
        parts.services.append(
            ChildSpec(
                "memory",
                MemoryService,
                kwargs={"file": str(config.memory_file), "host": memory.host, "port": port, "gate": gate},
            )
        )
        # agents (and their processes, forked later) find the shared server here
        os.environ[URL_ENV] = f"http://{url_host(memory.host)}:{port}/mcp"
        if not is_loopback(memory.host):  # the memory server decides the same way
            # beyond loopback the server requires a bearer token: the operator's, or one made for
            # this run. Server and agents read it from the environment (agent processes inherit
            # it); a secret-named variable, it is masked in the journal, events and logs.
            os.environ.setdefault(TOKEN_ENV, secrets.token_urlsafe(32))
        parts.builtin_tools["memory"] = lambda _agent: MEMORY_TOOLS

    attach_upgrades(parts)  # versions, proposals, the rollback guard, reload
    submit = LateSubmit()
    parts.on_start.append(submit.bind)
    if config.file.alerts:
        sections, tz = config.file.alerts, config.file.company.timezone
        kwargs = {
            "store": config.store_url,
            "routes": build_routes(sections, tz),
            "sinks": build_sinks(sections),
            "digests": build_digests(sections, tz),
            "build": digest_builder(config),
        }
        parts.services.append(ChildSpec("alerts", AlerterActor, kwargs=kwargs))
    entries = schedule_entries(config)
    parts.schedule_clock = schedule_clock
    if entries:
        parts.last.append(
            ChildSpec(
                "scheduler",
                SchedulerActor,
                kwargs={
                    "store": config.store_url,
                    "submit": submit,
                    "schedules": entries,
                    "clock": schedule_clock,
                    "poll_s": poll_s,
                },
            )
        )
    return parts
