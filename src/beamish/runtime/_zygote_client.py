"""The node's side of the zygote: start it once, ask it for children, hear how they ended.

One :class:`ZygoteClient` per node. It starts the zygote as a fresh interpreter once (the only
interpreter start process isolation ever pays), then each :meth:`spawn` hands the zygote one end of a
new stream socket and gets back the child's pid. The zygote also reports every child's exit status,
which is how a SIGKILLed child is told apart from one that exited by itself.

A command can :func:`prestart` the zygote before its own imports (``beamish run`` does): the first
node of the process adopts it, so the template warms up on another core while the command loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
from typing import Any

from beamish._exceptions import IsolationError
from beamish.runtime._wire import decode_body, encode, encode_body

_MAX_CONTROL = 1 << 20


class ZygoteClient:
    """Talks to one zygote process over a ``SOCK_SEQPACKET`` control socket."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        self.preload = preload
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._ready: asyncio.Future[None] | None = None
        self._spawning: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._starting: asyncio.Task[None] | None = None
        self._closed = False
        self._sent_path: list[str] = []
        self._sent_env: dict[str, str] = {}
        self._imported: set[str] = set(preload)
        self._generation = 0
        self._spare: tuple[int, socket.socket, int] | None = None
        self._refilling: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        """True once the zygote was stopped or was found dead; a closed client never restarts."""
        return self._closed

    def check_alive(self) -> None:
        """Close a zygote that died but whose end this loop has not read yet (a busy loop reads it
        late): a restart must not take a spare forked by a dead zygote, which dies with it."""
        if not self._closed and self._proc is not None and self._proc.poll() is not None:
            self._lost(f"the zygote exited (exit code {self._proc.returncode})")

    @property
    def running(self) -> bool:
        return self._ctl is not None and not self._closed

    async def ensure_started(self, timeout: float = 60.0) -> None:
        """Start the zygote if it is not running; concurrent callers share one start."""
        if self.running and self._ready is not None and self._ready.done() and not self._ready.exception():
            return
        if self._starting is None or self._starting.done():
            if self._closed:
                raise IsolationError("the zygote was closed")
            self._starting = asyncio.ensure_future(self._start(timeout))
        await asyncio.shield(self._starting)

    async def _start(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        early = _PRESTARTED.pop() if _PRESTARTED else None
        if early is not None:  # started before the node existed: adopt it, teach it what it lacks
            self._proc, ours, self._sent_path, self._sent_env, imported = early
            missing = [m for m in self.preload if m not in imported]
            changes = self._changes()
            if missing or changes:
                with contextlib.suppress(OSError):  # a dead zygote is seen as EOF below
                    ours.send(encode_body({"t": "preload", "modules": missing, **changes}))
        else:
            self._proc, ours, self._sent_path, self._sent_env = _launch(self.preload)
        self._ctl = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            self.close()
            raise IsolationError(f"the zygote did not start within {timeout}s") from None

    def _on_readable(self) -> None:
        assert self._ctl is not None
        try:
            data = self._ctl.recv(_MAX_CONTROL)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            code = None
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._proc.wait(timeout=1.0)
            self._lost(
                f"the zygote exited (exit code {code}; its traceback, if any, is on this process's stderr)"
            )
            return
        message = decode_body(data)
        kind = message["t"]
        if kind == "ready":
            self.pid = int(message["pid"])
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "failed":
            self._lost(f"the zygote could not preload its modules:\n{message['error']}")
        elif kind == "spawned":
            future = self._spawning.pop(int(message["id"]), None)
            if future is not None and not future.done():
                future.set_result(int(message["pid"]))
        elif kind == "spawn_failed":
            future = self._spawning.pop(int(message["id"]), None)
            if future is not None and not future.done():
                future.set_exception(
                    IsolationError(f"the zygote could not start the child:\n{message['error']}")
                )
        elif kind == "exited":
            exiting = self._exits.get(int(message["pid"]))
            if exiting is not None and not exiting.done():
                exiting.set_result(message)

    def _lost(self, why: str) -> None:
        error = IsolationError(why)
        self.close()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for spawning in self._spawning.values():
            if not spawning.done():
                spawning.set_exception(error)
        self._spawning.clear()
        for exiting in self._exits.values():
            if not exiting.done():
                exiting.set_result({"t": "exited", "unknown": why})

    async def spawn(self, request: dict[str, Any], timeout: float = 30.0) -> tuple[int, socket.socket]:
        """Start a child; returns its pid and the node's end of its socket.

        A restart takes the spare: a child the zygote forked ahead, already connected to us, that
        only waits for this request. A first start of an actor module goes through the zygote, which
        imports the module before it forks, so every later spare has it.
        """
        await self.ensure_started()
        assert self._loop is not None
        module = str(request["actor"]).partition(":")[0]
        spare = self._take_spare() if module in self._imported else None
        if spare is not None:
            pid, ours = spare
            try:
                ours.sendall(encode({**request, "t": "start"}))
            except OSError:
                ours.close()  # the spare died meanwhile: start one the long way
            else:
                self._exits[pid] = self._loop.create_future()
                self.refill()
                return pid, ours
        pid, ours = await self._fork({**request, "t": "spawn"}, timeout)
        self._exits[pid] = self._loop.create_future()
        if module not in self._imported:
            self._imported.add(module)
            self._generation += 1  # spares forked before this import lack the module
        self.refill()
        return pid, ours

    async def _fork(self, message: dict[str, Any], timeout: float) -> tuple[int, socket.socket]:
        """Ask the zygote to fork a child (``spawn``) or a spare (``spare``) on a new socket."""
        assert self._ctl is not None and self._loop is not None
        request_id = next(self._ids)
        message = {**message, **self._changes()}
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        future: asyncio.Future[int] = self._loop.create_future()
        self._spawning[request_id] = future
        try:
            socket.send_fds(self._ctl, [encode_body({**message, "id": request_id})], [theirs.fileno()])
        except OSError as exc:
            self._spawning.pop(request_id, None)
            ours.close()
            raise IsolationError(f"the zygote is not reachable: {exc}") from exc
        finally:
            theirs.close()
        try:
            pid = await asyncio.wait_for(future, timeout)
        except BaseException:
            ours.close()
            raise
        return pid, ours

    # -- the spare: one child forked ahead, connected, waiting for its request -------------------------
    def _take_spare(self) -> tuple[int, socket.socket] | None:
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        pid, sock, generation = spare
        if generation != self._generation:
            sock.close()  # forked before a module it may need was imported: EOF makes it exit
            return None
        return pid, sock

    def refill(self) -> None:
        """Have the next spare made (one at a time), unless a fresh one is waiting already."""
        if self._spare is not None and self._spare[2] != self._generation:
            self._spare[1].close()
            self._spare = None
        if self._spare is None and (self._refilling is None or self._refilling.done()) and not self._closed:
            assert self._loop is not None
            self._refilling = self._loop.create_task(self._make_spare())

    async def _make_spare(self) -> None:
        generation = self._generation
        try:
            pid, sock = await self._fork({"t": "spare"}, 30.0)
        except (IsolationError, TimeoutError):
            return  # no spare: the next start forks the long way
        if self._closed or self._spare is not None or generation != self._generation:
            sock.close()
            return
        self._spare = (pid, sock, generation)

    async def exit_status(self, pid: int, timeout: float = 2.0) -> dict[str, Any]:
        """How child ``pid`` ended: ``{"code": n}``, ``{"signal": n}``, or ``{"unknown": why}``."""
        future = self._exits.get(pid)
        if future is None:
            return {"unknown": f"pid {pid} is not a child of this zygote (or was asked about already)"}
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return {"unknown": f"no exit status for pid {pid} within {timeout}s"}
        finally:
            self._exits.pop(pid, None)

    def add_preload(self, modules: tuple[str, ...]) -> None:
        """Have the zygote import ``modules`` too (before its next fork, if it is running)."""
        self.preload = (*self.preload, *modules)
        self._imported.update(modules)
        self._generation += 1
        if self.running:
            with contextlib.suppress(OSError):
                assert self._ctl is not None
                # the modules may live on a path added since
                message = {"t": "preload", "modules": list(modules), **self._changes()}
                self._ctl.send(encode_body(message))

    def _changes(self) -> dict[str, Any]:
        """This process's sys.path and environment where they changed since the zygote last heard
        them: a child must see what the node set up (a path for the user's tools, the memory
        server's URL) even when the zygote started before it did."""
        changes: dict[str, Any] = {}
        if sys.path != self._sent_path:
            changes["path"] = self._sent_path = list(sys.path)
        if os.environ != self._sent_env:
            changes["env"] = self._sent_env = dict(os.environ)
        return changes

    def forget(self, pid: int) -> None:
        """Nobody will ask how ``pid`` ended (its exit frame said so): drop what waits for it."""
        future = self._exits.pop(pid, None)
        if future is not None and not future.done():
            future.cancel()

    def close(self) -> None:
        """Stop the zygote; its children die with it (they hold PR_SET_PDEATHSIG towards it)."""
        if self._closed:
            return
        self._closed = True
        if self._spare is not None:
            self._spare[1].close()
            self._spare = None
        if self._refilling is not None:
            self._refilling.cancel()
        if self._ctl is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._ctl.fileno())
            with contextlib.suppress(OSError):
                self._ctl.send(encode_body({"t": "stop"}))
            self._ctl.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _launch(
    preload: tuple[str, ...],
) -> tuple[subprocess.Popen[bytes], socket.socket, list[str], dict[str, str]]:
    """Start a zygote (a fresh interpreter) on a new control socket; it says ``ready`` when warm."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    path, env = list(sys.path), dict(os.environ)
    argv = [
        sys.executable,
        "-c",
        "import sys; from beamish.runtime._zygote import main; main(sys.argv[1:])",
        str(theirs.fileno()),
        str(os.getpid()),
        json.dumps(path),
        json.dumps(list(preload)),
    ]
    try:
        proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), start_new_session=True)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours, path, env


#: At most one zygote started ahead of any node (:func:`prestart`): its process, control socket,
#: the sys.path and environment it started with, and its preloads.
_PRESTARTED: list[
    tuple[subprocess.Popen[bytes], socket.socket, list[str], dict[str, str], tuple[str, ...]]
] = []


def prestart(preload: tuple[str, ...] = ()) -> None:
    """Start a zygote now, for the first node of this process that needs one to adopt.

    A command that will run process children calls it first thing, before its own heavy imports:
    the template's interpreter start and imports (a third of a second or more) then overlap the
    command's, on another core, instead of following them. Call it before any thread starts.
    """
    if not _PRESTARTED:
        proc, ours, path, env = _launch(preload)
        _PRESTARTED.append((proc, ours, path, env, preload))


def discard_prestarted() -> None:
    """Stop a prestarted zygote no node adopted (the company runs no process child)."""
    while _PRESTARTED:
        proc, ours, *_ = _PRESTARTED.pop()
        ours.close()  # EOF: the zygote exits
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
