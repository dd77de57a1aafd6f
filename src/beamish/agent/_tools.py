"""Tools: plain Python functions an agent may call, each declaring its effect.

``@beamish.tool`` derives the JSON schema from type hints and the docstring (through pydantic), and
validates the model's arguments before the function runs, so a bad call becomes a tool error the
model can read and fix, not a crash. The ``effect`` tells the journal what a crash mid-call means:

- ``"read"`` (default): no side effect; after a crash it simply runs again.
- ``"idempotent"``: a side effect keyed by ``ctx.idempotency_key``; after a crash it runs again with
  the same key, and the tool (or the service behind it) makes the repeat harmless.
- ``"once"``: must never happen twice. After a crash between its intent and its outcome, its
  ``reconcile(key)`` is asked what happened; with no answer the run waits for a human.

``approval="required"`` makes every call of the tool wait for a person's decision first (the run
stops as ``awaiting_approval``; see ``beamish.agent._approval``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints, overload

import pydantic

from beamish._exceptions import Fenced, SpecError, ToolError
from beamish.agent._messages import ToolSchema
from beamish.journal._records import step_key

Effect = Literal["read", "idempotent", "once"]
EFFECTS: tuple[Effect, ...] = ("read", "idempotent", "once")
Approval = Literal["required"] | None
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class ToolContext:
    """What a running tool may know and do besides its arguments.

    ``idempotency_key`` is the key the journal recorded for this call (``"<run_id>:<seq>"``, or
    ``"<run_id>:<seq>:<g>"`` once the run has diverged ``g`` times): the same on every re-run of this
    call after a crash, the one ``reconcile`` is asked with, and new for a call a diverged run makes
    afresh, so a service that deduplicates by key makes an ``idempotent`` tool safe and never drops
    the new timeline's request. Built by hand (a test, a direct call) it defaults to
    ``"<run_id>:<seq>"``. ``progress()`` is a heartbeat for the watchdog; ``extend(s)`` announces a
    known-long stretch of work. Both may be called from the worker thread a synchronous tool runs in.
    ``attempt`` is 2 when an earlier incarnation of the agent started this very call (same key) and
    crashed before its outcome.
    """

    run_id: str
    agent: str
    tool: str
    seq: int
    attempt: int = 1
    idempotency_key: str = ""
    #: The agent's journal store (for tools that record what they did there, e.g. ``propose_upgrade``).
    store: Any = field(default=None, repr=False)
    _on_progress: Callable[[str | None], None] | None = field(default=None, repr=False)
    _on_extend: Callable[[float], None] | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _loop_thread: int | None = field(default=None, repr=False)
    #: On a cluster, the monotonic time before which an effect may start (the lease surely holds).
    _act_before: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.idempotency_key:
            self.idempotency_key = step_key(self.run_id, self.seq)

    def check_fence(self) -> None:
        """Raise Fenced if this node's lease on the agent may have run out: checked at the moment
        the tool's own code starts (a worker thread may start it late), not only when it was asked."""
        if self._act_before is not None and time.monotonic() >= self._act_before:
            raise Fenced(
                f"tool {self.tool!r} did not act: the lease on agent {self.agent!r} may have run out "
                "before the call could start; the lease's next holder settles it"
            )

    def progress(self, note: str | None = None) -> None:
        """Tell the watchdog this tool is alive (call it from long loops)."""
        if self._on_progress is not None:
            self._call_on_loop(self._on_progress, note)

    def extend(self, seconds: float) -> None:
        """Tell the watchdog the next ``seconds`` of silence are expected, not a hang."""
        if seconds < 0:
            raise ValueError(f"extend() needs seconds >= 0, got {seconds}")
        if self._on_extend is not None:
            self._call_on_loop(self._on_extend, seconds)

    def _call_on_loop(self, fn: Callable[[Any], None], arg: Any) -> None:
        if self._loop is None or threading.get_ident() == self._loop_thread:
            fn(arg)
        else:
            self._loop.call_soon_threadsafe(fn, arg)


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description (text before any section) and per-argument descriptions (Google or reST style)."""
    doc = inspect.getdoc(fn) or ""
    params: dict[str, str] = {}
    summary: list[str] = []
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        rest = re.match(r"^:param\s+(?:\S+\s+)?(\w+):\s*(.*)$", stripped)
        if rest:
            current, params[rest.group(1)] = rest.group(1), rest.group(2)
            section = "rest"
            continue
        if re.match(r"^(Args|Arguments|Parameters|Params):$", stripped):
            section, current = "args", None
            continue
        if re.match(r"^(Returns?|Raises|Yields|Examples?|Notes?):$", stripped) or stripped.startswith(":"):
            section, current = "other", None
            continue
        if section == "args":
            arg = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
            if arg and line.startswith(("    ", "\t")) and not line.startswith(("        ", "\t\t")):
                current, params[arg.group(1)] = arg.group(1), arg.group(2)
            elif current and stripped:
                params[current] = f"{params[current]} {stripped}".strip()
        elif section == "rest":
            if current and stripped:
                params[current] = f"{params[current]} {stripped}".strip()
        elif section is None:
            summary.append(line)
    return "\n".join(summary).strip(), params


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


class Tool:
    """A function made callable by agents. Still callable directly, as the plain function it wraps."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        effect: str,
        description: str | None,
        approval: str | None = None,
    ) -> None:
        if effect not in EFFECTS:
            raise SpecError(f"tool {fn.__name__!r}: effect must be one of {list(EFFECTS)}, got {effect!r}")
        if approval not in (None, "required"):
            raise SpecError(f"tool {fn.__name__!r}: approval must be 'required' or None, got {approval!r}")
        self.approval = approval
        self.fn = fn
        self.name = name or fn.__name__
        if not _NAME.match(self.name):
            raise SpecError(f"tool name {self.name!r} must match {_NAME.pattern} (what providers accept)")
        self.effect: Effect = effect
        summary, arg_docs = _doc_parts(fn)
        self.description = description or summary or self.name
        self.is_async = inspect.iscoroutinefunction(fn)
        self.context_param: str | None = None
        self.reconcile_fn: Callable[[str], Any] | None = None
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise SpecError(f"tool {self.name!r}: cannot resolve its type hints: {exc}") from exc
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise SpecError(
                    f"tool {self.name!r}: *args/**kwargs cannot be described to a model ({pname})"
                )
            annotation = hints.get(pname, Any)
            if annotation is ToolContext:
                self.context_param = pname
                continue
            if pname not in hints:
                raise SpecError(f"tool {self.name!r}: parameter {pname!r} needs a type hint")
            default = ... if param.default is param.empty else param.default
            fields[pname] = (annotation, pydantic.Field(default, description=arg_docs.get(pname)))
        self._args_model = pydantic.create_model(f"{self.name}_arguments", **fields)
        schema = _strip_titles(self._args_model.model_json_schema())
        schema.setdefault("properties", {})
        self.parameters: dict[str, Any] = schema

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<beamish tool {self.name!r} effect={self.effect}>"

    def reconcile(self, fn: Callable[[str], Any]) -> Callable[[str], Any]:
        """Register the function that says what became of a ``once`` call whose outcome was lost.

        It gets the idempotency key and returns the call's result if the effect happened, ``None`` if
        it did not (so running it now is its first time), or raises if it cannot tell.
        """
        self.reconcile_fn = fn
        return fn

    def schema(self) -> ToolSchema:
        return ToolSchema(name=self.name, description=self.description, parameters=self.parameters)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The model's arguments, checked and converted; a ``ToolError`` the model can act on if bad."""
        try:
            parsed = self._args_model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolError(f"invalid arguments for tool {self.name!r}: {problems}") from None
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """Validate, run (a sync function in a worker thread, so heartbeats flow) and render as text."""
        kwargs = self.validate(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        if self.is_async:
            ctx.check_fence()
            result = await self.fn(**kwargs)
        else:

            def call() -> Any:
                ctx.check_fence()
                return self.fn(**kwargs)

            result = await asyncio.to_thread(call)
        return render_result(result)

    async def run_reconcile(self, key: str) -> str | None:
        """Ask ``reconcile``; ``None`` means the effect did not happen. Raises when it cannot tell."""
        if self.reconcile_fn is None:
            raise ToolError(f"tool {self.name!r} has no reconcile()")
        fn = self.reconcile_fn
        value = await fn(key) if inspect.iscoroutinefunction(fn) else await asyncio.to_thread(fn, key)
        return None if value is None else render_result(value)


def render_result(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str, ensure_ascii=False)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    effect: Effect = "read",
    description: str | None = None,
    approval: Approval = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    effect: Effect = "read",
    description: str | None = None,
    approval: Approval = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function an agent tool: ``@beamish.tool`` or ``@beamish.tool(effect="once")``.

    The schema comes from the type hints, the description and argument help from the docstring.
    A parameter typed ``beamish.ToolContext`` receives the context and is hidden from the model.
    ``approval="required"``: each call waits for a person's approval before it runs.
    """
    if fn is not None:
        return Tool(fn, name=name, effect=effect, description=description, approval=approval)

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, effect=effect, description=description, approval=approval)

    return wrap


class ToolSet:
    """The tools one agent may call: its allowlist. Any other name is a tool error the model sees."""

    def __init__(self, agent: str, tools: Iterable[Any] = ()) -> None:
        self.agent = agent
        self._tools: dict[str, Any] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Any) -> None:
        if t.name in self._tools:
            raise SpecError(f"agent {self.agent!r}: two tools are named {t.name!r}")
        self._tools[t.name] = t

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def schemas(self) -> tuple[ToolSchema, ...]:
        return tuple(self._tools[n].schema() for n in sorted(self._tools))

    def get(self, name: str) -> Any:
        """The tool named ``name`` if this agent may call it, else a ``ToolError`` for the model."""
        found = self._tools.get(name)
        if found is None:
            allowed = ", ".join(self.names) or "none"
            raise ToolError(f"tool {name!r} is not available to agent {self.agent!r} (allowed: {allowed})")
        return found
