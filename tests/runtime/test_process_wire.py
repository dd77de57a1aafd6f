"""The node↔child wire: length-prefixed JSON frames, strict about what they carry."""

from __future__ import annotations

import struct

import pytest

from beamish._exceptions import IsolationError
from beamish.runtime._wire import MAX_FRAME, FrameBuffer, decode_body, encode


def test_a_frame_is_a_big_endian_length_then_compact_json() -> None:
    frame = encode({"t": "call", "id": 1, "req": ["é", 2]})
    body = '{"t":"call","id":1,"req":["é",2]}'.encode()
    assert frame == struct.pack(">I", len(body)) + body


def test_frames_split_anywhere_are_reassembled_in_order() -> None:
    messages = [{"t": "cast", "msg": i, "pad": "x" * i} for i in range(50)]
    stream = b"".join(encode(m) for m in messages)
    buffer = FrameBuffer()
    received = []
    for start in range(0, len(stream), 7):
        received += buffer.feed(stream[start : start + 7])
    assert received == messages


def test_a_value_json_cannot_carry_is_refused_naming_the_type() -> None:
    with pytest.raises(IsolationError, match="set is not JSON serializable"):
        encode({"t": "call", "req": {1, 2}})
    with pytest.raises(IsolationError, match="JSON-safe"):
        encode({"t": "call", "req": float("nan")})


def test_tuples_arrive_as_lists() -> None:
    (message,) = FrameBuffer().feed(encode({"t": "reply", "value": (1, (2, 3))}))
    assert message["value"] == [1, [2, 3]]


def test_a_peer_announcing_a_huge_frame_is_a_protocol_error() -> None:
    with pytest.raises(IsolationError, match="announced a frame"):
        FrameBuffer().feed(struct.pack(">I", MAX_FRAME + 1))


def test_a_frame_that_is_not_a_message_object_is_a_protocol_error() -> None:
    with pytest.raises(IsolationError, match="not a message object"):
        decode_body(b"[1, 2]")
    with pytest.raises(IsolationError, match="not UTF-8 JSON"):
        decode_body(b"\xff")
