"""``isolation="process"``: the starter the node calls for a process child, and its zygote per node.

Built into every node (``Node._class_isolation``; ``Node.register_isolation("process", …)`` can
replace it). For a ``ChildSpec(start=SomeActor, isolation="process")`` the
starter names the actor class by import path (``module:qualname``), checks that ``args``/``kwargs``
can cross the wire (JSON), makes sure the node's zygote runs, and starts a :class:`ProcessProxy` in
the node whose ``init`` forks the child and waits until the child's own ``init`` returned. The
supervisor then holds the proxy's ref like any other child's.

``ChildSpec.start`` may also be any object with ``process_start() -> (actor_class_or_path, args,
kwargs)``, which is how a higher layer (an agent spec) names the actor that should run in the child.

One zygote per node, started on the first process child and stopped when the node closes (when its
last process child has exited during ``Node.close``). Restarts never start it again.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from beamish._exceptions import IsolationError, SpecError
from beamish.runtime._paths import actor_path
from beamish.runtime._process_proxy import ProcessProxy
from beamish.runtime._ref import ActorRef
from beamish.runtime._specs import ChildSpec
from beamish.runtime._wire import encode
from beamish.runtime._zygote_client import ZygoteClient

if TYPE_CHECKING:
    from beamish.runtime._node import Node


class _NodeProcesses:
    """The zygote of one node and how many proxies are alive, so the zygote can go with the node."""

    def __init__(self, node: Node) -> None:
        self.node = weakref.ref(node)
        self.client = ZygoteClient(preload=tuple(_PRELOAD.get(node, ())))
        self.live = 0
        # A node closed while no process child was alive never reaches proxy_exited's check: the
        # zygote then goes when the node object does (it would also go when this process exits).
        weakref.finalize(node, _close_quietly, self)

    def proxy_exited(self) -> None:
        self.live -= 1
        node = self.node()
        if self.live <= 0 and (node is None or node._closing):
            self.client.close()
            if node is not None:
                _ZYGOTES.pop(node, None)


def _close_quietly(entry: _NodeProcesses) -> None:
    entry.client.close()


_ZYGOTES: weakref.WeakKeyDictionary[Node, _NodeProcesses] = weakref.WeakKeyDictionary()
_PRELOAD: weakref.WeakKeyDictionary[Node, tuple[str, ...]] = weakref.WeakKeyDictionary()


def preload(node: Node, *modules: str) -> None:
    """Import ``modules`` in ``node``'s zygote, so even first starts fork warm.

    Before the zygote runs they are imported as it starts (a failing import fails the first process
    start with its traceback); once it runs, it imports them before the next fork.
    """
    _PRELOAD[node] = (*_PRELOAD.get(node, ()), *modules)
    entry = _ZYGOTES.get(node)
    if entry is not None:
        entry.client.add_preload(modules)


async def warm(node: Node) -> None:
    """Start ``node``'s zygote now (with its preloads), so no process start waits for it."""
    await _entry(node).client.ensure_started()


def node_closed(node: Node) -> None:
    """The node closed: stop a zygote no process child uses (one warmed but never forked from)."""
    entry = _ZYGOTES.get(node)
    if entry is not None and entry.live <= 0:
        entry.client.close()
        _ZYGOTES.pop(node, None)


def _entry(node: Node) -> _NodeProcesses:
    entry = _ZYGOTES.get(node)
    if entry is None:
        entry = _ZYGOTES[node] = _NodeProcesses(node)
        return entry
    entry.client.check_alive()
    if entry.client.closed:  # the zygote died (it was killed): start a new one
        entry.client = ZygoteClient(preload=entry.client.preload)
    return entry


def zygote_of(node: Node) -> ZygoteClient | None:
    """The node's zygote client, if it has started one (benchmarks and tests read its pid)."""
    entry = _ZYGOTES.get(node)
    return entry.client if entry is not None else None


def _request(spec: ChildSpec) -> dict[str, Any]:
    owner = f"ChildSpec {spec.id!r}"
    start: Any = spec.start
    args: tuple[Any, ...] = spec.args
    kwargs: dict[str, Any] = dict(spec.kwargs)
    if not isinstance(start, type):
        process_start = getattr(start, "process_start", None)
        if process_start is None:
            raise SpecError(
                f"{owner}: start={start!r} is invalid: isolation='process' needs an Actor subclass "
                "or an object with process_start()"
            )
        start, args, kwargs = process_start()
    if isinstance(start, str):
        path, main_file = start, None
    else:
        path, main_file = actor_path(start, owner)
    request: dict[str, Any] = {"actor": path, "args": list(args), "kwargs": kwargs, "name": str(spec.id)}
    if main_file is not None:
        request["main"] = main_file
    if spec.hang_after_s is not None:
        request["hb_s"] = spec.hang_after_s / 4
    if spec.max_memory_mb is not None:
        request["max_memory_mb"] = spec.max_memory_mb
    try:
        encode(request)
    except IsolationError as exc:
        raise SpecError(f"{owner}: args/kwargs must be JSON-safe for isolation='process': {exc}") from exc
    return request


async def start_process_child(node: Node, spec: ChildSpec) -> ActorRef:
    """The node's starter for ``isolation="process"``: returns the started proxy's ref."""
    request = _request(spec)
    entry = _entry(node)
    entry.live += 1
    try:
        ref = await node._start_actor(
            ProcessProxy,
            (entry.client, request, spec.hang_after_s, spec.max_memory_mb, entry.proxy_exited),
            {},
            str(spec.id),
            None,
            False,
        )
    except BaseException:
        entry.proxy_exited()
        raise
    return ref
