"""systemd's notify protocol, by hand: ``Type=notify`` units and the service watchdog.

The protocol is one datagram per message on the unix socket named by ``NOTIFY_SOCKET`` (a path, or
an abstract name written with a leading ``@``): ``READY=1`` once the node serves, ``STOPPING=1`` when
it begins to stop, ``RELOADING=1`` … ``READY=1`` around a reload, and ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` µs while the process is healthy. Twenty lines do it; no library is needed. Without
``NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import time


class SystemdNotifier:
    """Sends notify messages to ``address``; a notifier without an address sends nothing."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_usec / 1_000_000 if watchdog_usec else None
        self.sent: int = 0
        self._last_beat = 0.0
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls) -> SystemdNotifier:
        """The notifier systemd asks for: ``NOTIFY_SOCKET``; ``WATCHDOG_USEC`` when the watchdog is
        meant for this process (``WATCHDOG_PID`` unset or ours)."""
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec_text = os.environ.get("WATCHDOG_USEC", "")
        pid_text = os.environ.get("WATCHDOG_PID", "")
        usec = int(usec_text) if usec_text.isdigit() and int(usec_text) > 0 else None
        if pid_text and pid_text != str(os.getpid()):
            usec = None
        return cls(address, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=…"``) as one datagram; False if not sent. A
        service manager that went away must not take the node down, so errors are swallowed."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto("\n".join(fields).encode(), target)
            except OSError:
                return False
            self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        # systemd >= 253 checks MONOTONIC_USEC against the reload it asked for
        return self.notify(
            "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def heartbeat(self) -> None:
        """``WATCHDOG=1``, at most twice per watchdog period (systemd's advice); called by the node's
        loop watchdog each time it finds the loop responsive, so a stuck loop stops the pings."""
        if self.watchdog_s is None:
            return
        now = time.monotonic()
        if now - self._last_beat >= self.watchdog_s / 2:
            self._last_beat = now
            self.notify("WATCHDOG=1")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
