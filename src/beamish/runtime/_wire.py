"""The wire between a node and its process children: length-prefixed JSON frames.

A frame is a 4-byte big-endian unsigned length ``N`` followed by ``N`` bytes of UTF-8 JSON, and the
JSON is always an object whose ``"t"`` key names the message (``"call"``, ``"reply"``, ``"hb"`` …;
the full list is in :mod:`beamish.runtime._process_child`). Frames above :data:`MAX_FRAME` are
refused, so a confused peer cannot make the other side allocate without bound.

Why JSON and not msgpack or pickle:

* **No pickle of user data.** Unpickling runs code chosen by the sender, so a child that was
  compromised, or merely corrupted its memory, could run code in the node. JSON can only ever build
  dicts, lists, strings, numbers, booleans and None.
* **The same values the journal takes.** Requests and replies that cross the wire are the messages an
  agent journals, and the journal is JSON with a version field; one rule for both means a message that
  works across a process also works in a durable run, and a message that cannot be journaled fails at
  the first call, with the offending type named (:class:`~beamish.errors.IsolationError`).
* **Stdlib, readable, fast enough.** No compiled dependency, frames are readable in ``strace``, and a
  typical agent message (≈1 KB) encodes and decodes in ~10 µs, which is nothing beside a model call.
  msgpack's edge (raw bytes, about twice the speed) matters little here; bytes can travel base64-encoded.

Tuples arrive as lists, and dict keys must be strings: both are JSON's rules, stated here so nobody is
surprised. The node↔zygote control channel uses the same JSON objects, one per ``SOCK_SEQPACKET``
datagram (the datagram is the frame), because that socket also carries file descriptors.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

from beamish._exceptions import IsolationError

#: Version of the frame vocabulary; the child announces it in its first frame.
WIRE_VERSION = 1
#: Largest frame either side accepts (64 MiB).
MAX_FRAME = 64 * 1024 * 1024

_HEADER = struct.Struct(">I")
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decode = json.JSONDecoder().decode


def encode(message: dict[str, Any]) -> bytes:
    """One frame for ``message``; raises :class:`IsolationError` naming a value JSON cannot carry."""
    try:
        body = _encoder.encode(message).encode()
    except (TypeError, ValueError) as exc:
        raise IsolationError(
            f"a message to or from a process child must be JSON-safe "
            f"(dict with str keys, list, str, int, float, bool, None): {exc}"
        ) from exc
    if len(body) > MAX_FRAME:
        raise IsolationError(f"a frame of {len(body)} bytes exceeds the limit of {MAX_FRAME}")
    return _HEADER.pack(len(body)) + body


def encode_body(message: dict[str, Any]) -> bytes:
    """The JSON body alone, for the control channel where a datagram is the frame."""
    return encode(message)[_HEADER.size :]


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse one frame body; anything but a JSON object with a ``"t"`` key is a protocol error."""
    try:
        message = _decode(body.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise IsolationError(f"a peer sent a frame that is not UTF-8 JSON: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise IsolationError(f"a peer sent a frame that is not a message object: {body[:80]!r}")
    return message


class FrameBuffer:
    """Splits a byte stream into frames as bytes arrive (used by both ends)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add ``data``; return every message now complete, in order."""
        buf = self._buf
        buf += data
        out: list[dict[str, Any]] = []
        start = 0
        size = len(buf)
        while size - start >= 4:
            (length,) = _HEADER.unpack_from(buf, start)
            if length > MAX_FRAME:
                raise IsolationError(f"a peer announced a frame of {length} bytes (limit {MAX_FRAME})")
            end = start + 4 + length
            if end > size:
                break
            out.append(decode_body(bytes(buf[start + 4 : end])))
            start = end
        if start:
            del buf[:start]
        return out


class FrameProtocol(asyncio.Protocol):
    """An asyncio protocol that delivers whole messages to ``on_message`` and the end to ``on_close``.

    A callback protocol, not a reader task: a frame is handled in the same loop iteration in which its
    bytes arrive, which keeps a call's round trip to two loop hops.
    """

    def __init__(
        self,
        on_message: Callable[[dict[str, Any]], None],
        on_close: Callable[[BaseException | None], None],
    ) -> None:
        self._on_message = on_message
        self._on_close = on_close
        self._frames = FrameBuffer()
        self._closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._frames.feed(data)
        except IsolationError as exc:
            if self.transport is not None:
                self.transport.abort()
            self._close(exc)
            return
        for message in messages:
            self._on_message(message)

    def eof_received(self) -> bool:
        return False  # close our side too: a half-open child link is of no use

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(exc)

    def send(self, message: dict[str, Any]) -> None:
        """Write one message; raises :class:`IsolationError` for a value JSON cannot carry."""
        frame = encode(message)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)
