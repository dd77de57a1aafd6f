"""The zygote: a pre-warmed template process that forks process children on request.

Why not a fresh interpreter per child: starting Python and importing beamish costs ~100 ms, and
``multiprocessing``'s forkserver still pays ~30 ms per child for its own bootstrap. The zygote is
started once per node (a fresh ``python`` calling :func:`main`), imports beamish, the child host and
the user's preload modules, rehearses one whole child session (so lazily built caches exist before
any fork), freezes the heap (``gc.freeze``, so a child's collector never writes to — and so never
copies — the template's pages), and then forks a child in about a millisecond. Each actor module is
imported in the zygote the first time a child needs it, so every *restart* forks from a template
that already has it. The node also keeps one *spare* ahead: a child forked on a socket the node
already holds, its loop made, waiting for its start frame — a restart then skips the zygote.

It runs single-threaded (forking a threaded process is unsafe) and speaks the control protocol with
the node over a ``SOCK_SEQPACKET`` socket, one JSON object per datagram:

* node → zygote: ``{"t": "spawn", "id", "actor": "module:qualname", ...}`` with one file descriptor
  attached (``SCM_RIGHTS``): the child's end of its own stream socket to the node;
  ``{"t": "spare", "id"}`` likewise, for a spare that reads its request as the first frame on that
  socket; ``{"t": "preload", "modules"}``; ``{"t": "stop"}``. A spawn, spare or preload also
  carries ``path`` and ``env`` when the node's sys.path or environment changed since it last said.
* zygote → node: ``{"t": "ready", "pid"}``, ``{"t": "spawned", "id", "pid"}``,
  ``{"t": "failed", "error"}`` (a preload module could not be imported),
  ``{"t": "spawn_failed", "id", "error"}`` (the module could not be imported; traceback text), and
  ``{"t": "exited", "pid", "code" | "signal"}`` for every child it reaps — the node learns from it that
  a child died of SIGKILL rather than by itself.

No orphans: the zygote asks the kernel for SIGKILL when the node dies (``PR_SET_PDEATHSIG``) and exits
when its control socket reaches EOF; each child does the same towards the zygote and watches its own
socket to the node. Children therefore die with the node by any route, SIGKILL included.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import importlib.util
import json
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any

from beamish._proctitle import set_title
from beamish.runtime import _process_child
from beamish.runtime._paths import resolve
from beamish.runtime._wire import decode_body, encode_body

PR_SET_PDEATHSIG = 1
_MAX_CONTROL = 1 << 20


_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(expected_parent: int) -> None:
    """Ask for SIGKILL when our parent dies; exit now if it already did (the race prctl cannot close)."""
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != expected_parent:
        os._exit(0)


class _Zygote:
    def __init__(self, ctl: socket.socket) -> None:
        self.ctl = ctl
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.children: set[int] = set()
        self.imported: set[str] = set()

    def send(self, message: dict[str, Any]) -> None:
        self.ctl.send(encode_body(message))

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.send({"t": "ready", "pid": os.getpid()})
        while True:
            readable, _, _ = select.select([self.ctl.fileno(), self.wake_r], [], [])
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
                self.reap()
            if self.ctl.fileno() in readable:
                data, fds, _, _ = socket.recv_fds(self.ctl, _MAX_CONTROL, 4)
                if not data:
                    return  # the node is gone: exiting takes the children with us (PDEATHSIG)
                message = decode_body(data)
                if message["t"] == "stop":
                    return
                if message["t"] in ("spawn", "spare"):
                    self.spawn(message, fds)
                elif message["t"] == "preload":
                    _follow(message)
                    self.preload(message["modules"])
                else:
                    for fd in fds:
                        os.close(fd)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            if os.WIFSIGNALED(status):
                self.send({"t": "exited", "pid": pid, "signal": os.WTERMSIG(status)})
            else:
                self.send({"t": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def spawn(self, message: dict[str, Any], fds: list[int]) -> None:
        """Fork a child on the socket passed along: one that starts at once (``spawn``), or a spare
        that makes its loop and then waits on that socket for its start frame (``spare``)."""
        request_id = message["id"]
        _follow(message)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self.send({"t": "spawn_failed", "id": request_id, "error": "spawn needs exactly one socket"})
            return
        if message["t"] == "spawn":
            module = str(message["actor"]).partition(":")[0]
            if module not in self.imported:
                try:
                    resolve(message["actor"], message.get("main"))
                except BaseException:
                    os.close(fds[0])
                    self.send({"t": "spawn_failed", "id": request_id, "error": traceback.format_exc()})
                    return
                self.imported.add(module)
                gc.collect()
                gc.freeze()
        pid = os.fork()
        if pid == 0:
            self.become_child(fds[0], message)
        os.close(fds[0])
        self.children.add(pid)
        self.send({"t": "spawned", "id": request_id, "pid": pid})

    def preload(self, modules: list[str]) -> None:
        """Import more modules into the template (a failure is printed to the node's stderr)."""
        for module in modules:
            if module in self.imported:
                continue
            try:
                importlib.import_module(module)
            except BaseException:
                traceback.print_exc()
                continue
            self.imported.add(module)
        gc.collect()
        gc.freeze()

    def become_child(self, fd: int, message: dict[str, Any]) -> None:
        """In the forked process: drop the zygote's state, tie our life to it, run; never returns."""
        code = 70
        try:
            zygote_pid = os.getppid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.ctl.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            die_with_parent(zygote_pid)
            spare = message["t"] == "spare"
            code = _process_child.run_spare(fd) if spare else _process_child.run_child(fd, message)
        except SystemExit as exc:  # sys.exit() in the child's code: its exit code, as an interpreter's
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            _exit(code)


def _follow(message: dict[str, Any]) -> None:
    """Take on the node's sys.path and environment where they changed since we started."""
    if "path" in message:
        sys.path[:] = message["path"]
    if "env" in message:
        os.environ.clear()
        os.environ.update(message["env"])
        set_title("template")  # the company's name (the title's scope) may have come with it


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str]) -> None:
    """Entry point, with ``argv`` = ``FD NODE_PID SYS_PATH_JSON PRELOAD_JSON``."""
    fd, node_pid = int(argv[0]), int(argv[1])
    die_with_parent(node_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node decides when children stop
    sys.path[:] = json.loads(argv[2])
    ctl = socket.socket(fileno=fd)
    ctl.setblocking(True)
    zygote = _Zygote(ctl)
    try:
        _process_child.warm_up()
        for module in json.loads(argv[3]):
            importlib.import_module(module)
            zygote.imported.add(module)
    except BaseException:
        zygote.send({"t": "failed", "error": traceback.format_exc()})
        return
    set_title("template")  # after the warm-up, which rehearses a child (and names itself as one)
    gc.collect()
    gc.freeze()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        zygote.serve()
    _exit(0)  # no interpreter teardown: the node may be waiting for us to go
