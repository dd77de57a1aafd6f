"""One cluster node as its own process, for the tests and the failover benchmark.

``python _node_main.py CONFIG_JSON``: a beamish Node with N task-isolated agents ``a0…`` on the
scripted model (each run: a delay, one ``post`` effect, a final answer), a ClusterNode holding its
share of them, and a scheduler submitting through the cluster. Prints one JSON line per change of
what it holds (``{"node": …, "held": [...]}``) so the test can follow it; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _effects
from _effects import post

from beamish import AgentSpec
from beamish.cluster import ClusterNode, Unit
from beamish.journal import open_store
from beamish.runtime import Node
from beamish.schedule import Scheduler


def say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(cfg: dict[str, object]) -> None:
    url, node_id = str(cfg["url"]), str(cfg["node_id"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    store = await open_store(url)
    async with Node(store=url, name=node_id) as node:
        units = []
        for i in range(int(str(cfg["agents"]))):
            spec = AgentSpec(
                f"a{i}",
                "Post what you are told.",
                f"scripted:{dict(cfg.get('scripts', {})).get(f'a{i}', cfg['script'])}",  # type: ignore[call-overload]
                [post, "consult"],
                isolation=str(cfg.get("isolation", "task")),  # type: ignore[arg-type]
            )
            units.append(Unit(spec.name, spec.child_spec(), (spec.name,)))
        cluster = ClusterNode(node, store, units, node_id=node_id, lease_s=float(str(cfg["lease_s"])))
        os.environ["BEAMISH_TEST_NODE"] = node_id
        acquired = cluster._event

        async def note(kind: str, subject: str, data: dict[str, object]) -> None:
            if kind == "lease.acquired":  # before the unit's copy starts here, after any old one stopped
                _effects.LEASES[subject] = int(str(data["epoch"]))
            await acquired(kind, subject, data)

        cluster._event = note  # type: ignore[method-assign]
        await cluster.start()
        scheduler = Scheduler(store, cluster.submit, owner=node_id, poll_s=0.2)
        ticking = asyncio.create_task(scheduler.run_forever())
        say({"node": node_id, "held": sorted(cluster.held), "ready": True, "t": time.time()})
        while not stop.is_set():
            changed = asyncio.ensure_future(cluster.changed.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({changed, stopping}, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
            stopping.cancel()
            say({"node": node_id, "held": sorted(cluster.held), "state": cluster.state, "t": time.time()})
        ticking.cancel()
        await cluster.stop()
    await store.close()


if __name__ == "__main__":
    logging.basicConfig(format="%(created).3f %(name)s %(levelname)s %(message)s", level=logging.WARNING)
    asyncio.run(main(json.loads(sys.argv[1])))
