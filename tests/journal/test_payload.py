"""Payloads: versioned JSON that round-trips, refuses what is not JSON, and detects damage."""

from __future__ import annotations

import json
import math

import pytest

from beamish import SpecError, StoreError
from beamish.errors import CorruptStore, ScheduleError
from beamish.journal import Store
from beamish.journal._payload import canonical, decode, envelope, open_envelope, prepare, request_hash

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "value",
    [None, 0, -3, 2.5, "text ✓", [1, "a", None], {"b": 1, "a": [True, False]}, {"nested": {"x": [{}]}}],
)
def test_every_json_value_round_trips_through_an_envelope(value: object) -> None:
    assert decode(prepare(value, 10_000).envelope) == value


def test_key_order_does_not_change_the_request_hash() -> None:
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


@pytest.mark.parametrize("bad", [object(), {1, 2}, math.nan, b"bytes"])
def test_values_that_are_not_json_are_refused_by_name(bad: object) -> None:
    with pytest.raises(SpecError, match="JSON-safe"):
        canonical({"x": bad}, "step request")


def test_an_envelope_from_a_future_version_is_refused() -> None:
    with pytest.raises(CorruptStore, match="unsupported payload version 2"):
        decode('{"v":2,"data":1}')


@pytest.mark.parametrize("value", [None, 2.5, "text ✓", [1, None], {"b": 1, "a": [True, {}]}])
def test_a_value_round_trips_through_the_shared_envelope_and_reads_as_a_payload(value: object) -> None:
    text = envelope(value, "message")
    assert text == '{"v":1,"data":' + canonical(value) + "}"
    assert open_envelope(text, "mailbox") == value
    assert decode(text) == value


def test_a_row_written_before_the_codec_was_shared_still_reads() -> None:
    old = json.dumps({"v": 1, "data": {"city": "Oslo", "n": [1, 2]}}, sort_keys=True)  # spaces
    assert open_envelope(old, "schedule input", error=ScheduleError) == {"city": "Oslo", "n": [1, 2]}


def test_the_shared_envelope_fails_in_the_callers_error_type_naming_what() -> None:
    with pytest.raises(ScheduleError, match="schedule 'x' input must be JSON-safe"):
        envelope({"bad": math.nan}, "schedule 'x' input", error=ScheduleError)
    with pytest.raises(SpecError, match="message to 'inbox' must be JSON-safe"):
        envelope(object(), "message to 'inbox'")
    with pytest.raises(StoreError, match="unsupported mailbox version 2"):
        open_envelope('{"v":2,"data":1}', "mailbox")
    with pytest.raises(ScheduleError, match="schedule input is not valid JSON"):
        open_envelope('{"v":1,"data":', "schedule input", error=ScheduleError)


def test_the_shared_envelope_masks_secrets_only_when_asked() -> None:
    key = "sk-ant-" + "a1B2c3D4" * 5
    assert key in envelope({"note": key}, "message")
    assert key not in envelope({"note": key}, "run input", mask=True)


def test_a_large_payload_is_a_reference_by_content_hash() -> None:
    prepared = prepare({"text": "y" * 100}, threshold=64)
    assert prepared.body is not None and prepared.hash is not None
    assert prepared.envelope == f'{{"v":1,"ref":"{prepared.hash}","size":{len(prepared.body)}}}'
    assert decode(prepared.envelope, {prepared.hash: prepared.body}) == {"text": "y" * 100}
    with pytest.raises(CorruptStore, match="does not match its content hash"):
        decode(prepared.envelope, {prepared.hash: prepared.body.replace("y", "z")})
    with pytest.raises(CorruptStore, match="missing"):
        decode(prepared.envelope, {})


async def test_a_damaged_stored_payload_is_reported_not_returned(store: Store) -> None:
    await store.create_run("ceo", None, run_id="r")
    epoch = await store.claim_run("r", "n")
    await store.record_step("r", 0, epoch, kind="llm", phase="done", request={}, response={"t": "z" * 2000})
    await store.execute("UPDATE payloads SET body = ?", ['{"t":"tampered"}'])
    with pytest.raises(CorruptStore, match="content hash"):
        await store.steps("r")


def test_the_journal_namespace_exports_documented_public_names() -> None:
    import inspect

    import beamish.journal as journal

    assert journal.__all__ == sorted(journal.__all__, key=lambda n: (not n[0].isupper(), n))
    for name in journal.__all__:
        obj = getattr(journal, name)
        assert not name.startswith("_")
        assert obj.__doc__, name
        if inspect.isclass(obj):
            assert obj.__module__ == "beamish.journal", name


async def test_damaged_events_and_exit_reasons_are_reported_as_corrupt(store: Store) -> None:
    await store.execute(
        "INSERT INTO events (at, kind, subject, body) VALUES (1, 'run.started', 'r', ?)", ['{"v":9}']
    )
    with pytest.raises(CorruptStore, match="stored event"):
        await store.events()
    await store.create_run("ceo", None, run_id="r")
    await store.execute("UPDATE runs SET reason = ? WHERE run_id = 'r'", ['{"v":1,"kind":"martian"}'])
    with pytest.raises(CorruptStore, match="exit reason"):
        await store.get_run("r")
