"""``beamish.step``: the user's own functions as journal steps of the current run.

A framework calls the user's tools itself, so beamish cannot wrap the call the way its own loop
does. ``@beamish.step(effect=...)`` on the function does it instead, for whichever framework calls
it: inside a run the call is step ``n`` of the journal — ``effect="read"`` recorded once done,
``"idempotent"`` and ``"once"`` as intent (idempotency key ``run_id:seq``) → call → done, and after
a crash resolved as a native tool would be (``once`` asks ``reconcile(key)`` or parks the run).
A replayed call returns the recorded value without running the function. Outside a run the
function is simply called.

The function's arguments (those that are JSON: a framework's context object is named by its type)
are the step's request, and its return value must be JSON, since a replay returns the recorded one.
``async with beamish.step(name, effect=...) as s`` journals a block the same way: the block runs
only when ``s.replayed`` is false and stores its outcome in ``s.value``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

from beamish._exceptions import SpecError
from beamish._tasks import cancel_and_wait
from beamish.byo._context import RunContext, _step_key, active_run
from beamish.journal._payload import canonical
from beamish.journal._records import EFFECTS
from beamish.journal._replay import StepResult
from beamish.telemetry._otel import NullTelemetry

F = TypeVar("F", bound=Callable[..., Any])
Reconcile = Callable[[str], Any]


def _json_value(value: Any) -> bool:
    try:
        canonical(value)
    except (SpecError, TypeError, ValueError):
        return False
    return True


def step_args(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name; a value that is not JSON is named by its type (a framework's
    context object is the same kind of thing on replay, but never the same bytes)."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {"args": [a if _json_value(a) else f"<{type(a).__name__}>" for a in args], **kwargs}
    bound.apply_defaults()
    return {k: (v if _json_value(v) else f"<{type(v).__name__}>") for k, v in bound.arguments.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)


async def run_step(
    ctx: RunContext,
    name: str,
    effect: str,
    args: Any,
    call: Callable[[], Awaitable[Any]],
    reconcile: Reconcile | None = None,
) -> Any:
    """Step ``name`` of ``ctx``'s run: the recorded value, or ``await call()`` journaled by ``effect``."""
    seq = ctx.next_seq()
    info = ctx.info(seq)

    async def perform(key: str) -> StepResult:
        token = _step_key.set(key)
        try:
            value = await call()
        finally:
            _step_key.reset(token)
        if not _json_value(value):
            raise SpecError(
                f"step {name!r} returned {type(value).__name__}, which is not JSON: a replay must be able "
                "to return it from the journal (return a str, number, list or dict)"
            )
        return StepResult(value=value)

    async def settle(key: str) -> Any:
        assert reconcile is not None
        outcome = reconcile(key)
        return await outcome if inspect.isawaitable(outcome) else outcome

    telemetry = ctx.telemetry if ctx.telemetry is not None else NullTelemetry()
    try:
        with telemetry.execute_tool(name, f"{ctx.run_id}:{seq}", arguments=args, effect=effect) as record:
            result = await ctx.journal.effect_step(
                seq, name, args, effect, perform, settle if reconcile is not None else None
            )
            record.result, record.replayed = _text(result.value), result.replayed
    except Exception as exc:
        ctx.remember(exc)
        ctx.hooks.heartbeat("tool")
        ctx.nudge = (
            await ctx.hooks.after_step(info, "tool", name, f"{type(exc).__name__}: {exc}", True) or ctx.nudge
        )
        raise
    ctx.hooks.heartbeat("tool")
    ctx.nudge = await ctx.hooks.after_step(info, "tool", name, _text(result.value), False) or ctx.nudge
    return result.value


class step:
    """Journal a function (decorator) or a block (``async with``) as a step of the current run.

    ``effect``: ``"read"`` (default; re-run after a crash), ``"idempotent"`` (re-run with the same
    idempotency key, :attr:`RunContext.idempotency_key` inside the call) or ``"once"`` (never run
    twice: after a crash between intent and done, ``reconcile(key)`` says what happened — return
    the outcome, or None if it did not happen — else the run is parked as needs_attention).
    """

    def __init__(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        effect: str = "read",
        reconcile: Reconcile | None = None,
        args: Any = None,
    ) -> None:
        if effect not in EFFECTS:
            raise SpecError(f"beamish.step: effect={effect!r} is not one of {sorted(EFFECTS)}")
        self._fn: Callable[..., Any] | None = None
        if callable(name):  # bare @beamish.step
            self._fn, name = name, getattr(name, "__name__", None)
        self.name = name
        self.effect = effect
        self.reconcile_fn = reconcile
        self.args = args
        #: In ``async with``: True when the block's outcome came from the journal (skip the work).
        self.replayed = False
        #: In ``async with``: the outcome (set it in the block; read it after a replay).
        self.value: Any = None
        #: In ``async with``: the step's idempotency key (None when replayed or outside a run).
        self.key: str | None = None
        self._task: asyncio.Task[Any] | None = None
        self._body: asyncio.Future[Any] | None = None

    # -- decorator -------------------------------------------------------------------------------
    @overload
    def __call__(self, fn: F) -> F: ...
    @overload
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is not None:  # bare decorator: this *is* the wrapped function's call
            return self.wrap(self._fn)(*args, **kwargs)
        if len(args) != 1 or kwargs or not callable(args[0]):
            raise SpecError("beamish.step(...) decorates one function")
        return self.wrap(args[0])

    def wrap(self, fn: F) -> F:
        name = self.name or fn.__name__
        effect, reconcile = self.effect, self.reconcile_fn
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_step(*args: Any, **kwargs: Any) -> Any:
                ctx = active_run()
                if ctx is None:
                    return await fn(*args, **kwargs)
                return await run_step(
                    ctx, name, effect, step_args(fn, args, kwargs), lambda: fn(*args, **kwargs), reconcile
                )

            return cast(F, async_step)

        @functools.wraps(fn)
        def sync_step(*args: Any, **kwargs: Any) -> Any:
            ctx = active_run()
            if ctx is None:
                return fn(*args, **kwargs)
            if ctx.in_loop_thread() or ctx.loop is None:
                raise SpecError(
                    f"step {name!r} is a sync function called on the agent's event loop; make it async, "
                    "or let the framework run it in a thread (it then journals through the loop)"
                )

            async def in_thread() -> Any:  # the function blocks: it runs in a thread, not on the loop
                return await asyncio.to_thread(fn, *args, **kwargs)

            future = asyncio.run_coroutine_threadsafe(
                run_step(ctx, name, effect, step_args(fn, args, kwargs), in_thread, reconcile), ctx.loop
            )
            return future.result()

        return cast(F, sync_step)

    # -- context manager -------------------------------------------------------------------------
    async def __aenter__(self) -> step:
        ctx = active_run()
        if ctx is None:
            return self
        if not self.name:
            raise SpecError("async with beamish.step(name, ...): the step needs a name")
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[str] = loop.create_future()
        body: asyncio.Future[Any] = loop.create_future()
        self._body = body

        async def call() -> Any:
            entered.set_result(str(_step_key.get()))
            return await body

        self._task = asyncio.ensure_future(
            run_step(ctx, self.name, self.effect, self.args, call, self.reconcile_fn)
        )
        await asyncio.wait({entered, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if entered.done():
            self.key = entered.result()
        else:
            self.replayed = True
            self.value = self._task.result()
        return self

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        task, body = self._task, self._body
        if task is None or body is None or self.replayed:
            return False
        if exc is not None:
            body.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            await cancel_and_wait(task, grace_s=math.inf)  # the block's own exception is what propagates
            return False
        body.set_result(self.value)
        self.value = await task
        return False
