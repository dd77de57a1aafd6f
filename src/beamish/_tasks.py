"""Stopping a background task without swallowing the caller's own cancellation.

``task.cancel()`` then ``await task`` under ``suppress(BaseException)`` (or ``CancelledError``)
cannot tell the task's CancelledError from the caller's: when whoever is stopping is itself
cancelled meanwhile (a shutdown timeout, Ctrl-C, a supervisor killing it), the cancellation is
eaten and the caller carries on as if nothing happened. :func:`cancel_and_wait` waits with
``asyncio.wait``, which never raises the task's outcome and always raises the caller's own
cancellation.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any


async def cancel_and_wait(
    task: asyncio.Future[Any] | None, *, grace_s: float = 0.0, timeout_s: float | None = None
) -> BaseException | None:
    """Stop ``task``: let it end by itself for up to ``grace_s`` seconds (``math.inf``: never cancel
    it, wait for its end), then cancel it and wait for it to end (at most ``timeout_s`` more).

    Returns the exception the task ended with (None if it returned, was cancelled, or is still
    running after ``timeout_s``), so a caller may log it; never raises it. The caller's own
    cancellation, at any point, propagates as CancelledError (the task is cancelled then too).
    """
    if task is None:
        return None
    try:
        if grace_s > 0 and not task.done():
            await asyncio.wait({task}, timeout=None if math.isinf(grace_s) else grace_s)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()  # it was being stopped: a cancelled stopper does not leave it running
        raise
    if not task.done() or task.cancelled():
        return None
    return task.exception()
