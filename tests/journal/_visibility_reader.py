"""A reader process for the cross-process visibility tests (run as a script; not collected by pytest).

``python _visibility_reader.py URL MODE`` opens the store at URL and reads from it, then prints
``ready``. MODE ``plain`` keeps that store; ``reopen`` closes it and opens the same URL again (and
reads) first; ``fork`` forks after opening and reading, as the zygote's children are forked from a
template process, and the child closes nothing it inherited, opens the URL afresh and serves.

Then, for each ``see RUN_ID`` line on stdin, it waits (bounded) until its reads show the run that
another process stored meanwhile — ``get_run``, ``list_runs`` and ``events`` each — and prints
``seen`` or ``missing <which reads>``. ``quit`` closes the store and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import traceback

from beamish._exceptions import RunNotFound
from beamish.journal import Store, open_store

WAIT_S = 5.0


async def touch(store: Store) -> None:
    """The reads an agent makes at start: they must not pin what later reads see."""
    with contextlib.suppress(RunNotFound):
        await store.get_run("nothing-yet")
    await store.list_runs()
    await store.events(0)


async def sees(store: Store, run_id: str) -> list[str]:
    """Which reads do not (yet) show ``run_id``."""
    missing = []
    try:
        await store.get_run(run_id)
    except RunNotFound:
        missing.append("get_run")
    if run_id not in [r.run_id for r in await store.list_runs(limit=1000)]:
        missing.append("list_runs")
    if run_id not in [e.subject for _, e in await store.events(0, limit=10_000)]:
        missing.append("events")
    return missing


async def serve(store: Store) -> None:
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        # A bounded wait: each round trip to the store yields to the loop; no fixed sleep.
        deadline = loop.time() + WAIT_S
        missing = await sees(store, line[1])
        while missing and loop.time() < deadline:
            missing = await sees(store, line[1])
        print("seen" if not missing else "missing " + " ".join(missing), flush=True)
    await store.close()


async def opened(url: str, reopen: bool) -> Store:
    store = await open_store(url)
    await touch(store)
    if reopen:
        await store.close()
        store = await open_store(url)
        await touch(store)
    return store


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    if mode != "fork":
        asyncio.run(serve_opened(url, reopen=mode == "reopen"))
        return
    # The template: a store opened and read, its worker threads running, when the fork happens.
    loop = asyncio.new_event_loop()
    template = loop.run_until_complete(opened(url, reopen=False))
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            asyncio.run(serve_opened(url, reopen=False))
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    loop.run_until_complete(template.close())
    loop.close()
    sys.exit(os.waitstatus_to_exitcode(status))


async def serve_opened(url: str, reopen: bool) -> None:
    await serve(await opened(url, reopen))


if __name__ == "__main__":
    main()
