"""Secrets are masked wherever beamish shows or exports data."""

from __future__ import annotations

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
