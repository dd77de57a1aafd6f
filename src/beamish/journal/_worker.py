"""Worker threads that run blocking database calls for the event loop, with a lean hand-off.

``run_in_executor`` chains a concurrent future to an asyncio one; handing the result straight back
with ``call_soon_threadsafe`` saves about a third of the hop, which is most of what a journal
append costs beyond the driver itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is None:
        fut.set_result(result)
    else:
        fut.set_exception(error)


class WorkerPool:
    """``n`` daemon threads taking jobs from one queue; ``initializer`` runs first in each thread."""

    def __init__(self, n: int, name: str, initializer: Callable[[], None] | None = None) -> None:
        self._queue: SimpleQueue[_Job | None] = SimpleQueue()
        self._init = initializer
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def _loop(self) -> None:
        init_error: BaseException | None = None
        if self._init is not None:
            try:
                self._init()
            except BaseException as exc:  # reported to every job this thread picks up
                init_error = exc
        while True:
            job = self._queue.get()
            if job is None:
                return
            fn, args, loop, fut = job
            if init_error is not None:
                result, error = None, init_error
            else:
                try:
                    result, error = fn(*args), None
                except BaseException as exc:
                    result, error = None, exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, fut, result, error)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on a worker thread; await the returned future for its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, loop, fut))
        return fut

    def shutdown(self) -> None:
        """Stop every thread after the jobs already queued; waits for them."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
