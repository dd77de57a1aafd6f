"""Sentry gets abnormal exits as issues and lifecycle events as breadcrumbs, secrets scrubbed."""

from __future__ import annotations

from typing import Any

import pytest
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from beamish._events import Event
from beamish.telemetry import MASK, SentryReporter

pytestmark = pytest.mark.timeout(20)


class RecordingTransport(Transport):
    """A Sentry transport that keeps envelopes in memory instead of sending them."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for env in self.envelopes:
            for item in env.items:
                if item.type == "event" and item.payload.json is not None:
                    out.append(item.payload.json)
        return out


def reporter(capture_content: bool = False) -> tuple[SentryReporter, RecordingTransport]:
    transport = RecordingTransport()
    rep = SentryReporter(
        "https://public@sentry.invalid/1", transport=transport, capture_content=capture_content
    )
    return rep, transport


def test_a_killed_child_becomes_an_issue_tagged_with_its_reason() -> None:
    rep, transport = reporter()
    rep.on_event(Event("child.started", "cfo", {}))
    rep.on_event(Event("child.exited", "cfo", {"reason": {"v": 1, "kind": "killed"}}))
    rep.flush()
    [event] = transport.events()
    assert event["message"] == "cfo: killed"
    assert event["level"] == "error"
    assert event["tags"]["beamish.reason"] == "killed"
    assert event["tags"]["beamish.subject"] == "cfo"
    crumbs = [c["category"] for c in event["breadcrumbs"]["values"]]
    assert crumbs == ["child.started", "child.exited"]


def test_normal_exits_and_routine_events_raise_no_issue() -> None:
    rep, transport = reporter()
    rep.on_event(Event("child.exited", "ceo", {"reason": {"v": 1, "kind": "shutdown"}}))
    rep.on_event(Event("run.finished", "ceo", {"status": "succeeded"}))
    rep.flush()
    assert transport.events() == []


@pytest.mark.parametrize(
    "kind", ["supervisor.escalated", "budget.exceeded", "loop.detected", "watchdog.hung", "events.unstored"]
)
def test_semantic_failures_raise_an_issue(kind: str) -> None:
    rep, transport = reporter()
    rep.on_event(Event(kind, "improver", {"pattern": "same_action_same_result"}))
    rep.flush()
    [event] = transport.events()
    assert event["tags"]["beamish.reason"] == kind


def test_content_stays_home_unless_opted_in_and_secrets_never_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-SECRETSECRETSECRETSECRET")
    data = {
        "reason": {
            "v": 1,
            "kind": "crashed",
            "error": "boom with sk-proj-SECRETSECRETSECRETSECRET",
            "traceback": "tb",
        },
        "prompt": "the owner's private plans",
    }
    rep, transport = reporter(capture_content=False)
    rep.on_event(Event("child.exited", "cto", data))
    rep.flush()
    [event] = transport.events()
    text = repr(event)
    assert "private plans" not in text
    assert "SECRETSECRET" not in text
    assert MASK in text

    rep, transport = reporter(capture_content=True)
    rep.on_event(Event("child.exited", "cto", data))
    rep.flush()
    [event] = transport.events()
    assert "private plans" in repr(event)
    assert "SECRETSECRET" not in repr(event)


def _leaks(event: dict[str, Any], needle: str) -> list[str]:
    """The paths in ``event`` whose text holds ``needle``."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        elif needle in str(value):
            found.append(path)

    walk(event, "event")
    return found


def test_the_client_attaches_no_stack_locals_or_request_of_its_own() -> None:
    """Whatever the installed sentry-sdk major collects by default (3.x attaches the reporting
    thread's stack with every frame's local variables), the event holds only what beamish built."""
    private_prompt = "quarterly plans nobody may read"  # a local of this frame, as a caller's would be
    rep, transport = reporter(capture_content=False)
    rep.on_event(Event("run.needs_attention", "cto", {"prompt": private_prompt}))
    rep.flush()
    [event] = transport.events()
    assert _leaks(event, private_prompt) == []
    assert not {"threads", "exception", "stacktrace", "request", "user", "extra"} & set(event)
    assert set(event["contexts"]) <= {"beamish", "trace"}


def test_the_private_client_options_are_the_ones_the_installed_major_knows() -> None:
    import sentry_sdk.consts

    rep, _ = reporter()
    options = rep.client.options
    assert options["attach_stacktrace"] is False
    if "data_collection" in sentry_sdk.consts.DEFAULT_OPTIONS:
        collection = options["data_collection"]
        assert collection["stack_frame_variables"] is False
        assert collection["user_info"] is False
        assert collection["http_bodies"] == []
    else:
        assert options["send_default_pii"] is False
    if "include_local_variables" in sentry_sdk.consts.DEFAULT_OPTIONS:
        assert options["include_local_variables"] is False
