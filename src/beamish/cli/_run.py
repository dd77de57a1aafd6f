"""``beamish run``: one company on this node, alone or as one node of a cluster, with the dashboard.

It composes the layers above the company (the cluster and the dashboard), which is why it lives in
the command line and not in ``beamish.company``: the company plugs a cluster in through
``Company(cluster=…)`` and knows neither.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal

from rich.console import Console

from beamish._redact import redact_text
from beamish.cluster._company import DEFAULT_LEASE_S, CompanyCluster
from beamish.cluster._membership import default_node_id
from beamish.company._company import Company
from beamish.company._config import CompanyConfig
from beamish.company._host import ServiceHost, name_process, plural
from beamish.company._services import company_parts


async def run_company(
    config: CompanyConfig,
    *,
    dashboard_port: int | None = None,
    store_url: str | None = None,
    node_id: str | None = None,
    lease_s: float | None = None,
    health_port: int | None = None,
    health_host: str = "127.0.0.1",
) -> None:
    """Start the company, serve until SIGINT/SIGTERM, stop it in order.

    With ``store_url`` or ``node_id`` the node joins a cluster on that store (see beamish.cluster).
    Under systemd it speaks ``Type=notify``; SIGHUP reloads; ``health_port`` serves the probes
    (see :mod:`beamish.company._host`).
    """
    name_process(config.file.company.name)
    console = Console(highlight=False, markup=False, soft_wrap=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cluster = None
    if store_url is not None or node_id is not None:
        config = dataclasses.replace(config, store_url=store_url or config.store_url)
        node_id = node_id or default_node_id()
        cluster = CompanyCluster(node_id, lease_s or DEFAULT_LEASE_S, on_drained=stop.set)
    company = Company(
        config,
        parts=company_parts(config),
        cluster=cluster,
        control=cluster is None,  # many nodes of one company share no control socket
        node_name=node_id or "node",
    )
    async with company:
        server = None
        if dashboard_port is not None:
            from beamish.dashboard import DashboardServer  # lazy: starlette + uvicorn, only with --dashboard

            server = DashboardServer(company, host=config.file.dashboard.host, port=dashboard_port)
            console.print(f"dashboard at {await server.start()}")
        host = ServiceHost(company, health_host=health_host, health_port=health_port, say=console.print)
        await host.start()
        console.print(
            f"company {config.file.company.name!r} running: {plural(len(config.agents), 'agent')}, "
            f"store {redact_text(config.store_url)}; Ctrl-C stops it"
        )
        try:
            await stop.wait()
        finally:
            console.print("stopping…")
            await host.stop()
            if server is not None:
                await server.stop()
