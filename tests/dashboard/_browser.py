"""Headless Chromium for the dashboard's browser tests: absent, it skips — or fails in CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("BEAMISH_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A launched browser, closed at the end."""
    if not shutil.which(CHROMIUM):
        if os.environ.get("BEAMISH_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{CHROMIUM} is required in CI (Debian package 'chromium') but absent")
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            await b.close()
