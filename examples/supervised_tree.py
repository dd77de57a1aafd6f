"""A small supervision tree surviving crashes: run ``python examples/supervised_tree.py``.

    root (one_for_one)
    ├── counter      permanent: counts ticks, keeps answering throughout
    ├── flaky        permanent, Backoff: crashes on every 3rd job, restarted after a short delay
    └── storage      a nested rest_for_one supervisor
        ├── db       crashes once: the cache after it is restarted too (rest_for_one)
        └── cache

Every lifecycle event is printed as it happens; the tree is printed at the end with restart counts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from beamish import Actor, Backoff, ChildSpec, Crashed, Node, Shutdown, SupervisorRef, SupervisorSpec
from beamish._events import Event


class Counter(Actor):
    async def init(self) -> None:
        self.count = 0

    async def handle_call(self, request: Any) -> Any:
        self.count += 1
        return self.count


class Flaky(Actor):
    async def init(self) -> None:
        self.jobs = 0

    async def handle_call(self, request: Any) -> Any:
        self.jobs += 1
        if self.jobs % 3 == 0:
            raise RuntimeError(f"job {request} hit a bad day")
        return f"job {request} done"


class Db(Actor):
    crashed = False

    async def handle_call(self, request: Any) -> Any:
        if not Db.crashed:
            Db.crashed = True
            raise ConnectionError("db connection lost")
        return "rows"


class Cache(Actor):
    async def handle_call(self, request: Any) -> Any:
        return "hit"


def tree() -> SupervisorSpec:
    storage = SupervisorSpec(
        [ChildSpec("db", Db), ChildSpec("cache", Cache)], strategy="rest_for_one", intensity=3, period=5.0
    )
    return SupervisorSpec(
        [
            ChildSpec("counter", Counter),
            ChildSpec("flaky", Flaky, backoff=Backoff(min_s=0.01, max_s=0.1, jitter=0.1, reset_after_s=1.0)),
            ChildSpec("storage", storage),
        ],
        strategy="one_for_one",
        intensity=10,
        period=5.0,
    )


def show(event: Event) -> None:
    data = dict(event.data)
    reason = data.pop("reason", None)
    detail = f" reason={reason['kind']}" if reason else ""
    if reason and reason.get("error"):
        detail += f" ({reason['error']})"
    print(f"  event {event.kind:24} {event.subject:22}{detail}")


async def child(sup: SupervisorRef, child_id: str) -> Any:
    """The running child ``child_id``, waiting (up to 2 s) while a delayed restart is pending."""
    for _ in range(200):
        for info in await sup.which_children():
            if info.id == child_id and info.ref is not None:
                return info.ref
        await asyncio.sleep(0.01)
    raise LookupError(f"{child_id} is not running")


async def main() -> None:
    async with Node() as node:
        node.add_event_sink(show)
        root = await node.start_supervisor(tree())
        print("tree started")
        for job in range(1, 10):
            flaky = await child(root, "flaky")
            try:
                print(f"flaky: {await flaky.call(job)}")
            except Exception as exc:
                print(f"flaky: call failed: {type(exc).__name__}: {getattr(exc, 'reason', exc)!r}")
            print(f"counter: {await (await child(root, 'counter')).call('tick')}")
        storage = await child(root, "storage")
        try:
            await (await child(storage, "db")).call("select")
        except Exception as exc:
            reason = getattr(exc, "reason", None)
            print(f"db: call failed: {reason.message if isinstance(reason, Crashed) else exc}")
        print("db:", await (await child(storage, "db")).call("select"))
        await child(root, "flaky")  # its last restart may still be waiting on the backoff
        print("\nthe tree after the storm:")
        for info in await root.which_children():
            print(f"  {info.id:8} {info.type:10} restarts={info.restarts} running={info.ref is not None}")
            if info.id == "storage" and info.ref is not None:
                for sub in await storage.which_children():
                    print(
                        f"    {sub.id:6} {sub.type:10} restarts={sub.restarts} running={sub.ref is not None}"
                    )
        await root.stop(Shutdown())
        print("stopped cleanly:", root.reason)


if __name__ == "__main__":
    asyncio.run(main())
