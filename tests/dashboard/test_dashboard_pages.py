"""The server-rendered pages over HTTP: runs (held first, filtered, paged), a run's timeline as
``beamish show`` has it, events filtered with their JSON, the charts and the company's caps; all of
it escaped. And the fallback: with the node stopped the pages read the store and say so."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _dashboard_company import CompanySource
from _dashboard_store import HOSTILE, ODD_ID, PLAIN_RUNS, SECRET, filled_store

from beamish.company import load_config_data
from beamish.company._control import ControlServer
from beamish.company._remote import NodeOrStore
from beamish.dashboard import create_app

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Any]:
    """The filled store on SQLite and on PostgreSQL: the pages' queries run on both."""
    found = await filled_store(store_url)
    yield found
    await found.close()


def client(source: Any, store: Any = None) -> httpx.AsyncClient:
    app = create_app(source, store=store)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765")


def run_ids(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('<a href="/runs/')[1:]]


async def test_runs_list_held_runs_first_then_the_newest_a_page_at_a_time(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        first = (await c.get("/runs")).text
        second = (await c.get("/runs?page=2")).text
    ids = run_ids(first)
    assert ids[:2] == ["r-attention", "r-held"] or ids[:2] == ["r-held", "r-attention"]
    assert ids[2] == "r-timeline" and len(ids) == 50
    assert f"page 1 of 2 · {PLAIN_RUNS + 5} runs" in first and "older →" in first
    assert len(run_ids(second)) == PLAIN_RUNS + 5 - 50 and "← newer" in second
    assert not set(ids) & set(run_ids(second))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("agent=coo", {"r-held", "r-attention"}),
        ("status=failed", {"r-timeline"}),
        ("agent=coo&status=paused", {"r-held"}),
    ],
)
async def test_runs_filter_by_agent_and_status(store: Any, query: str, expected: set[str]) -> None:
    async with client(CompanySource(), store) as c:
        page = (await c.get(f"/runs?{query}")).text
    assert set(run_ids(page)) == expected


async def test_the_run_page_shows_what_beamish_show_shows(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        r = await c.get("/runs/r-timeline")
    assert r.status_code == 200
    page = html.unescape(r.text)
    assert "anthropic:claude-haiku-4-5" in page and "in 120 · out 30 · cache 800r/5w" in page
    assert "$0.0012<" in page  # the model call's cost, not $0.001200
    assert 'approve_spend({"item": "laptops"})' in page  # what the model asked for
    assert "approve_spend" in page and "once" in page and "r-timeline:1" in page  # effect and key
    for mark in ("replayed", "diverged", "nudged"):
        assert f'data-testid="mark-{mark}"' in page
    assert "the bank said no" in page and "line two" in page  # the reason, in full
    assert SECRET not in page and "[redacted]" in page
    assert HOSTILE not in r.text  # the task is escaped


async def test_the_run_page_shows_a_compaction_with_what_it_folded_and_cost(store_url: str) -> None:
    from beamish.journal import open_store

    store = await open_store(store_url)
    try:
        await store.create_run("writer", "Research", run_id="r-compact")
        epoch = await store.claim_run("r-compact", "node")
        meta = {
            "compact": "summarize",
            "model": "anthropic:claude-haiku-4-5",
            "folded": 64,
            "tokens_before": 9,
        }
        response = {"text": "Looked up 63 topics.", "usage": {"input_tokens": 4100, "output_tokens": 300}}
        await store.record_step(
            "r-compact", 0, epoch, kind="compact", phase="done", name="anthropic:claude-haiku-4-5",
            request={"v": 2, "skeleton": meta, "lists": {}}, response=response, cost_usd=0.0425,
        )  # fmt: skip
        async with client(CompanySource(), store) as c:
            page = html.unescape((await c.get("/runs/r-compact")).text)
    finally:
        await store.close()
    assert 'data-kind="compact"' in page and '"folded": 64' in page
    assert "anthropic:claude-haiku-4-5 · tokens in 4100 · out 300" in page
    assert "Looked up 63 topics." in page and "$0.0425<" in page
    assert "total $0.0425 over 1 step<" in page


async def test_a_run_whose_id_a_url_must_quote_opens_from_its_link(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        listing = (await c.get("/runs?status=queued&agent=ceo")).text
        (href,) = run_ids(listing)
        r = await c.get("/runs/" + html.unescape(href))
    assert r.status_code == 200 and html.escape(ODD_ID) in r.text


async def test_an_unknown_run_is_a_404_page_with_a_way_back(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        r = await c.get("/runs/no-such-run")
    assert r.status_code == 404 and "Not found" in r.text
    assert "No run has the id &#x27;no-such-run&#x27;" in r.text and '<a href="/runs">All runs</a>' in r.text


async def test_runs_waiting_for_a_person_come_first_and_say_what_to_do(store: Any) -> None:
    await store.create_run("marketing", "post it", run_id="r-gated")
    await store.update_run("r-gated", status="awaiting_approval")
    async with client(CompanySource(), store) as c:
        listing = (await c.get("/runs")).text
        gated = (await c.get("/runs/r-gated")).text
        held = (await c.get("/runs/r-held")).text
        done = (await c.get("/runs/r-plain-00")).text
    assert "r-gated" in run_ids(listing)[:3] and "waits for a person to approve a call" in listing
    assert 'data-testid="run-next"' in gated and "Awaiting a person" in gated
    assert "<code>beamish resume coo</code>" in held and 'data-resume="coo"' in held
    assert 'data-testid="run-next"' not in done


async def test_an_empty_store_says_no_runs_yet_and_a_filter_says_nothing_matches(tmp_path: Path) -> None:
    from beamish.journal import open_store

    empty = await open_store(f"sqlite:///{tmp_path}/empty.db")
    try:
        async with client(CompanySource(), empty) as c:
            first = (await c.get("/runs")).text
            filtered = (await c.get("/runs?status=failed")).text
    finally:
        await empty.close()
    assert "No runs yet" in first and "beamish submit" in first
    assert "No run matches these filters." in filtered


def test_money_and_event_numbers_read_as_a_person_writes_them() -> None:
    from beamish._events import Event
    from beamish.dashboard._html import event_summary, money

    assert [money(3.0), money(0.0156), money(0.192, 6), money(0.0), money(None)] == [
        "$3.00", "$0.0156", "$0.192", "$0.00", "\u2013"
    ]  # fmt: skip
    data = {"late_s": 0.077738, "delay_s": 0.11519092166825762, "cost_usd": 0.000333, "ratio": 1 / 3}
    summary = event_summary(Event("schedule.fired", "s", data))
    assert summary == "late: 78 ms · delay: 115 ms · cost: $0.000333 · ratio: 0.333333"


async def test_hostile_names_are_escaped_on_every_page(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        for path in (
            "/runs",
            "/runs/r-hostile",
            "/events",
            f"/events?agent={HOSTILE}",
            "/charts",
            "/company",
        ):
            r = await c.get(path)
            assert r.status_code == 200, path
            assert HOSTILE not in r.text, path
            assert html.escape(HOSTILE) in r.text or path in ("/charts", "/company"), path


async def test_events_are_filtered_by_kind_and_agent_with_their_json_on_demand(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        restarts = (await c.get("/events?kind=child.restarted")).text
        about_cfo = (await c.get("/events?agent=cfo")).text
        about_lawyer = (await c.get("/events?agent=lawyer&kind=agent.rolled_back")).text
    assert restarts.count('data-testid="event-row"') == 3
    assert "restarts: 3" in restarts and "<details><summary>JSON</summary>" in restarts
    assert about_cfo.count('data-kind="child.restarted"') == 3 and 'data-kind="run.started"' in about_cfo
    assert 'data-kind="agent.upgraded"' not in about_cfo
    assert about_lawyer.count('data-testid="event-row"') == 1


async def test_the_charts_draw_spend_against_the_caps_runs_and_restarts(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        page = (await c.get("/charts")).text
    for chart in ("chart-day", "chart-month", "chart-agents", "chart-runs", "chart-restarts"):
        assert f'data-testid="{chart}"' in page
    assert 'data-cap="day cap"' in page and 'data-cap="month cap"' in page
    assert "company $1.00" in page  # 0.4 + 0.25 + 0.35 and a model call's 0.0012
    assert 'data-group="cfo"' in page and 'data-group="succeeded"' in page
    assert "Runs created per " in page  # by creation time: a scheduled run's is its tick's


async def test_the_company_page_shows_caps_upgrades_and_rollbacks(store: Any) -> None:
    async with client(CompanySource(), store) as c:
        page = html.unescape((await c.get("/company")).text)
    assert "$1.0012" in page  # 0.4 + 0.25 + 0.35 on the ledger, and the model call's 0.0012
    assert "$2.00" in page and "$40.00" in page
    assert 'data-kind="agent.upgraded"' in page and "v1 → v2" in page and "agent:improver" in page
    assert 'data-kind="agent.rolled_back"' in page and "v2 → v1" in page
    assert "No schedule stored" in page  # the empty state says why, not an empty table


async def test_without_a_store_the_pages_say_so(source: CompanySource) -> None:
    async with client(source) as c:
        r = await c.get("/runs")
        gates = await c.get("/api/approvals")
    assert r.status_code == 200 and 'data-testid="no-store"' in r.text
    assert gates.json() == []  # a source without gates has none waiting


@pytest.mark.timeout(30)
async def test_with_the_node_stopped_the_dashboard_reads_the_store_and_recovers_when_it_returns(
    store: Any, tmp_path: Path
) -> None:
    (tmp_path / "x.json").write_text('{"turns": [{"text": "ok"}]}')
    agent = {"instructions": "x", "model": "scripted:x.json"}
    data = {"store": {"url": f"sqlite:///{tmp_path}/j.db"}, "memory": {"enabled": False},
            "agents": {"ceo": agent, "cfo": agent}}  # fmt: skip
    config = load_config_data(data, tmp_path / "beamish.toml")
    path = tmp_path / "node.sock"
    source = NodeOrStore(path, config, store)
    async with client(source) as c:
        down = (await c.get("/api/status")).json()
        tree = await c.get("/api/tree")
        runs = await c.get("/runs")
        assert down["live"] is False
        assert tree.status_code == 200 and {n["id"] for n in tree.json()["children"]} == {"ceo", "cfo"}
        assert runs.status_code == 200 and 'data-testid="node-banner">The node is not running' in runs.text
        assert (await c.post("/api/agents/ceo/resume")).status_code == 409  # read-only, said why
        assert (await c.get("/api/approvals")).json() == []  # decided in the store, node or not
        node = ControlServer(CompanySource(), path)
        await node.start()
        try:
            up = (await c.get("/api/status")).json()
            live_tree = (await c.get("/api/tree")).json()
            runs_live = (await c.get("/runs")).text
        finally:
            await node.stop()
        assert up["live"] is True and live_tree["children"][1]["id"] == "finance"
        assert 'data-testid="node-banner" hidden>' in runs_live
        assert (await c.get("/api/status")).json()["live"] is False  # stopped again
        assert (await c.get("/api/tree")).status_code == 200


@pytest.mark.timeout(20)
async def test_while_the_node_is_down_events_come_from_the_store_until_it_answers_again(
    store: Any, tmp_path: Path
) -> None:
    (tmp_path / "x.json").write_text('{"turns": [{"text": "ok"}]}')
    data = {"store": {"url": "sqlite:///j.db"}, "memory": {"enabled": False},
            "agents": {"ceo": {"instructions": "x", "model": "scripted:x.json"}}}  # fmt: skip
    config = load_config_data(data, tmp_path / "beamish.toml")
    path = tmp_path / "node.sock"
    source = NodeOrStore(path, config, store, recheck_s=0.05)
    stream = source.events(replay=3)
    seen = [await anext(stream) for _ in range(3)]  # the store's latest three
    assert [e.kind for e in seen] == ["agent.upgraded", "agent.rolled_back", "run.finished"]
    assert source.live is False
    node = ControlServer(CompanySource(), path)
    await node.start()
    try:
        rest = [e async for e in stream]  # the stream ends once the node answers: the page reconnects
    finally:
        await node.stop()
    assert rest == [] and source.live is True
