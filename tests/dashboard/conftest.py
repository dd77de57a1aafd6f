"""Fixtures for the dashboard tests."""

from __future__ import annotations

import pytest
from _dashboard_company import CompanySource


@pytest.fixture
def source() -> CompanySource:
    return CompanySource()
