"""Which addresses are this machine: one answer for every server that binds or checks a host.

A server bound to loopback serves without a token and accepts only loopback ``Host`` headers; any
other bind needs a token. The dashboard, the memory server and the company that starts it must agree
on where that line is, so they all ask :func:`is_loopback`. Each binds with :func:`listen`, which says
in one line which port is taken and what to do, instead of a server library's ``[Errno 98]`` log.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from beamish._exceptions import BeamishError, SpecError


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, any of 127.0.0.0/8, ``::1`` (bracketed
    or not) and IPv4-mapped ``::ffff:127.x.y.z``. A name that needs DNS to resolve is not, and
    neither is ``0.0.0.0`` (every interface)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def url_host(host: str) -> str:
    """``host`` as it appears in a URL or a ``Host`` header (an IPv6 address in brackets)."""
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise SpecError(
            f"dashboard: binding to {host!r} (not loopback) needs a token; "
            "set BEAMISH_DASHBOARD_TOKEN or pass --token"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on ``host`` (the memory server's URL must be known before agents start)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_WHY = {
    errno.EADDRINUSE: "the port is already in use (another process listens on it)",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's",
    errno.EACCES: "permission denied (a port below 1024 needs privileges)",
}


def listen(host: str, port: int, what: str, fix: str) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` for ``what``; when it cannot be bound, a
    :class:`BeamishError` of one line naming the address, why, and ``fix`` (what the operator can do)."""
    bare = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bare, port))
        sock.listen(128)
    except (OSError, OverflowError) as exc:  # OverflowError: a port past 65535 (or below 0)
        sock.close()
        if isinstance(exc, OverflowError):
            why, fix = "the port is out of range", "choose a port from 0 to 65535"
        else:
            why = _WHY.get(exc.errno or 0, exc.strerror or str(exc))
        raise BeamishError(f"{what}: cannot listen on {url_host(host)}:{port}: {why}; {fix}") from None
    sock.setblocking(False)
    return sock
