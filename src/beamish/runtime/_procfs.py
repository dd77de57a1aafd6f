"""Memory figures of a process from ``/proc``: cheap enough for a proxy to poll its child's size.

Its own module so the node side (the proxy) need not import the child side (the child host).
"""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of ``pid`` in MiB, from ``/proc/PID/statm`` (cheap enough to poll)."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE / (1024 * 1024)


def _vm_size_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * _PAGE
