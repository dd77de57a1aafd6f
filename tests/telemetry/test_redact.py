"""Secrets are masked wherever beamish shows or exports data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from beamish.telemetry import MASK, redact, redact_text

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("key sk-ant-api03-abcdefghijklmnopqrstuv used", "sk-ant-api03-abcdefghijklmnopqrstuv"),
        ("openai sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX", "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9.payload.sig"),
        ("aws AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
        ("https://bob:hunter2pass@db.example/x", "hunter2pass"),
        ("password=correct-horse", "correct-horse"),
        ("api_key: 1234567890abcdef", "1234567890abcdef"),
    ],
)
def test_known_secret_shapes_are_masked(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out


def test_values_of_secret_named_environment_variables_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "plainlookingvalue42")
    assert redact_text("sent plainlookingvalue42 to the api") == f"sent {MASK} to the api"


def test_secret_named_keys_are_masked_in_nested_data_and_the_rest_is_kept() -> None:
    data = {"headers": {"Authorization": "abc", "Accept": "json"}, "items": [{"password": "x1"}], "n": 3}
    assert redact(data) == {
        "headers": {"Authorization": MASK, "Accept": "json"},
        "items": [{"password": MASK}],
        "n": 3,
    }


def test_ordinary_text_is_left_alone() -> None:
    text = "The CFO approved the Q3 budget of $3,000; token count was 1200."
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://beamish:pgPassw0rd@db:5432/company", "pgPassw0rd"),
        ("redis://:r3dis-pass@cache:6379/0", "r3dis-pass"),
        ("amqp://guest:rabbitpw42@mq:5672//", "rabbitpw42"),
        ("mongodb+srv://app:m0ngoPw@cluster0.example/db", "m0ngoPw"),
        ("connect to mysql://root:toor1234@127.0.0.1/app failed", "toor1234"),
    ],
)
def test_credentials_in_a_url_of_any_scheme_are_masked(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out
    assert out.split("://")[0] == text.split("://")[0]  # the scheme and host stay readable
    assert "@" in out


def test_a_url_with_a_user_and_no_password_is_left_alone() -> None:
    assert redact_text("postgresql://beamish@db/company") == "postgresql://beamish@db/company"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("STRIPE_API_KEY=rk_live_abcdef123", "rk_live_abcdef123"),
        ("export PAYMENTS_KEY=plainvalue99", "plainvalue99"),
        ("MY_SERVICE_TOKEN=xyzw9876 was rejected", "xyzw9876"),
        ("WEBHOOK_SECRET='whsec-0a1b2c'", "whsec-0a1b2c"),
        ("SENTRY_DSN=https://abc123@o1.ingest.example/1", "abc123@o1"),
        ("client_secret: cs-000111222", "cs-000111222"),
        ('{"db_password": "hunter22"}', "hunter22"),
    ],
)
def test_secret_named_assignments_in_text_are_masked(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out


@pytest.mark.parametrize(
    "text",
    [
        "input_tokens=1234 output_tokens=56 max_tokens: 4096",
        '{"cache_read_input_tokens": 2048, "cache_creation_input_tokens": 512, "total_tokens": 9}',
        "token_count=77 tokenizer=cl100k idempotency_key=run-7:3 sort_key=name",
    ],
)
def test_token_counts_and_ordinary_keys_in_text_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_token_counts_in_structured_data_are_numbers_not_secrets() -> None:
    from beamish.agent._messages import Usage

    usage = Usage(input_tokens=1200, output_tokens=80, cache_read_tokens=30, cache_write_tokens=4).to_json()
    data = {
        "usage": usage,
        "max_tokens": 4096,
        "cache_read_input_tokens": 30,
        "token_count": 3,
        "token_type": "Bearer",
        "refresh_token": "r-abc",
        "api_key": "k",
    }
    assert redact(data) == {**data, "refresh_token": MASK, "api_key": MASK}


SAMPLE = "redis://:r3dis-pass@cache/0 and PAYMENTS_KEY=plainvalue99, input_tokens=1234"
LEAKS = ("r3dis-pass", "plainvalue99")


def _masked(out: str) -> None:
    assert not [s for s in LEAKS if s in out], out
    assert "input_tokens=1234" in out


async def test_the_journal_and_the_event_log_mask_with_the_same_rules(tmp_path: Path) -> None:
    from beamish._events import Event
    from beamish.journal import open_store

    store = await open_store(f"sqlite:///{tmp_path / 'j.db'}")
    try:
        await store.append_event(Event("run.failed", "cfo", {"error": SAMPLE}))
        [(_, event)] = await store.events()
        _masked(event.data["error"])
        run, _ = await store.create_run("cfo", {"task": SAMPLE}, run_id="r1")
        _masked(json.dumps((await store.get_run(run.run_id)).input))
    finally:
        await store.close()


def test_log_records_mask_with_the_same_rules(caplog: pytest.LogCaptureFixture) -> None:
    from beamish._redact import install_log_redaction

    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        install_log_redaction()
        with caplog.at_level(logging.INFO, logger="beamish.test"):
            logging.getLogger("beamish.test").info("cache at %s", SAMPLE)
    finally:
        logging.setLogRecordFactory(previous)
    _masked(caplog.records[-1].getMessage())


def test_telemetry_and_the_store_url_mask_with_the_same_rules() -> None:
    from beamish.journal._postgres import PostgresBackend

    _masked(json.dumps(redact({"note": SAMPLE})))
    where = PostgresBackend("postgresql://app:r3dis-pass@db/x").where
    assert "r3dis-pass" not in where


def test_a_changed_or_swapped_secret_variable_is_masked_from_the_next_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "firstvalue-0001")
    assert "firstvalue-0001" not in redact_text("sent firstvalue-0001")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "secondvalue-0002")  # same variable, new value
    assert "secondvalue-0002" not in redact_text("sent secondvalue-0002")
    monkeypatch.setenv("UNRELATED_SETTING", "x")
    redact_text("warm")
    monkeypatch.delenv("UNRELATED_SETTING")  # one out, one in: the count stays the same
    monkeypatch.setenv("OTHER_SERVICE_SECRET", "thirdvalue-0003")
    masked = [redact_text("sent thirdvalue-0003") for _ in range(64)]
    assert "thirdvalue-0003" not in masked[-1], "a full scan runs at least every few dozen calls"
