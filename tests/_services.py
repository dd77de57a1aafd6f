"""The service policy, importable from any test folder: skip locally, fail in CI.

A test that needs a service skips only when the service is truly absent; under CI
(``BEAMISH_REQUIRE_SERVICES=1``) an absent service is a failure, never a skip.
"""

from __future__ import annotations

import os

import pytest

PG_DSN = os.environ.get("BEAMISH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def service_missing(what: str) -> None:
    """Skip (locally) or fail (CI) because ``what`` is absent."""
    if os.environ.get("BEAMISH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required in CI but absent")
    pytest.skip(f"{what} is absent on this machine")
