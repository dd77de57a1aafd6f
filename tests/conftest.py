"""Shared fixtures: the real PostgreSQL (one fresh schema per test) and the service policy.

A test that needs a service skips only when the service is truly absent; under CI
(``BEAMISH_REQUIRE_SERVICES=1``) an absent service is a failure, never a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from _services import PG_DSN, service_missing

__all__ = ["PG_DSN", "service_missing"]


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    try:
        import psycopg
    except ImportError:
        service_missing("psycopg (the 'postgres' extra)")
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL at {PG_DSN} ({exc})")
    return PG_DSN


@pytest.fixture
def pg_url(postgres_dsn: str) -> Iterator[str]:
    """A URL to a fresh, empty schema of the test database; dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'create schema "{schema}"')
    options = quote(f"-csearch_path={schema}")
    yield f"{postgres_dsn}?options={options}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'drop schema if exists "{schema}" cascade')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """One suite, every backend: a URL to an empty store on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.db"
    return str(request.getfixturevalue("pg_url"))
