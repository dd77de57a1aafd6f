"""The dashboard in a real headless Chromium: the tree renders, events arrive live, resume works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _browser import chromium
from _dashboard_company import CompanySource

from beamish._events import Event
from beamish.agent._gates import GatePolicy, get_gate, open_gate
from beamish.company._approvals import ApprovalsMixin
from beamish.dashboard import DashboardServer
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b


async def test_the_tree_renders_events_appear_live_and_resume_works(browser: object) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    source = CompanySource()
    async with DashboardServer(source, port=0) as server:
        page = await browser.new_page()
        await page.goto(server.url + "/")
        await expect(page.get_by_test_id("status")).to_have_text("live")
        # the tree, with the finance group and its paused CFO
        await expect(page.get_by_test_id("node-finance")).to_contain_text("rest_for_one")
        await expect(page.get_by_test_id("node-accountant")).to_contain_text("2 restarts")
        await expect(page.get_by_test_id("node-cfo")).to_have_attribute("data-state", "paused")
        # dollars as the pages write them: at most four decimals, a cap in cents
        await expect(page.get_by_test_id("spend-ceo")).to_have_text("ceo$0.12$3.00")
        # an agent running without the watchdog and loop detector is marked, and only that one
        await expect(page.get_by_test_id("unprotected-accountant")).to_contain_text("watchdog=None")
        await expect(page.locator('[data-testid^="unprotected-"]')).to_have_count(1)
        # an event published now shows up without reloading
        source.hub.publish(Event("child.exited", "accountant", {"reason": {"v": 1, "kind": "killed"}}))
        await expect(page.locator('[data-testid="event"][data-kind="child.exited"]')).to_contain_text(
            "accountant"
        )
        # live, the newest arrival is on top whatever its time says (the demo's simulated clock)
        source.hub.publish(Event("agent.paused", "accountant", {}, 1.0))
        await expect(page.get_by_test_id("event").first).to_have_attribute("data-kind", "agent.paused")
        # a reconnect replays events before the ones shown: not seen yet, they go below them
        await page.evaluate("source.onopen()")
        source.hub.publish(Event("child.started", "accountant", {}, 0.5))
        await expect(page.get_by_test_id("event").last).to_have_attribute("data-kind", "child.started")
        await expect(page.get_by_test_id("event").first).to_have_attribute("data-kind", "agent.paused")
        # resume the paused CFO from the page
        await page.get_by_test_id("resume-cfo").click()
        await expect(page.get_by_test_id("node-cfo")).to_have_attribute("data-state", "running")
        await expect(page.get_by_test_id("held-cfo")).to_have_count(0)
        await expect(page.locator('[data-testid="event"][data-kind="agent.resumed"]')).to_contain_text("cfo")
        assert source.resumed == ["cfo"]
    # the dashboard itself gone (the demo ended): the page says that, not that the store is shown
    await page.evaluate("window.beamishStatus()")
    await expect(page.get_by_test_id("status")).to_have_text("dashboard unreachable")
    await expect(page.get_by_test_id("node-banner")).to_contain_text("The dashboard does not answer")


async def test_with_a_token_the_page_works_when_opened_with_it_and_not_without(browser: object) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    source = CompanySource()
    async with DashboardServer(source, port=0, token="tok-123456") as server:
        page = await browser.new_page()
        response = await page.goto(server.url + "/")
        assert response is not None and response.status == 401
        await page.goto(server.url + "/?token=tok-123456")
        await expect(page.get_by_test_id("status")).to_have_text("live")
        await expect(page.get_by_test_id("node-cfo")).to_be_visible()


def test_a_non_loopback_bind_without_a_token_is_refused_before_any_browser_can_reach_it() -> None:
    from beamish import SpecError

    with pytest.raises(SpecError):
        DashboardServer(CompanySource(), host="0.0.0.0", port=0)


async def test_a_live_company_paused_by_hand_is_resumed_from_the_page(
    browser: object, tmp_path: object
) -> None:
    import json
    from pathlib import Path

    from playwright.async_api import Browser, expect

    from beamish.company import Company, company_parts, load_config_data

    assert isinstance(browser, Browser)
    base = Path(str(tmp_path))
    (base / "ceo.json").write_text(json.dumps({"turns": [{"text": "Priorities set."}]}))
    agent = {
        "instructions": "x",
        "model": "scripted:ceo.json",
        "isolation": "task",
        "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
    }
    data = {
        "store": {"url": "sqlite:///j.db"},
        "memory": {"enabled": False},
        "tree": {"groups": {"leadership": {"agents": ["ceo", "coo"]}}},
        "agents": {"ceo": agent, "coo": agent},
    }
    cfg = load_config_data(data, base / "beamish.toml")
    async with Company(cfg, parts=company_parts(cfg)) as company, DashboardServer(company, port=0) as server:
        page = await browser.new_page()
        await page.goto(server.url + "/")
        await expect(page.get_by_test_id("status")).to_have_text("live")
        await expect(page.get_by_test_id("node-ceo")).to_have_attribute("data-state", "running")
        await company.pause("ceo")
        run_id = await company.submit("ceo", "Set today's priorities", "p-1")
        assert (await company.node.result(run_id, timeout=20)).status == "paused"
        await expect(page.get_by_test_id("node-ceo")).to_have_attribute("data-state", "paused")
        await expect(page.locator('[data-testid="event"][data-kind="run.paused"]')).to_have_count(1)
        await expect(page.get_by_test_id("resume-ceo")).to_be_visible()
        # the paused run's own page resumes it too (an agent may be running while an old run waits)
        await page.goto(server.url + "/runs/" + run_id)
        await expect(page.get_by_test_id("run-next")).to_contain_text("Paused")
        async with page.expect_navigation():  # resumed, the page reloads
            await page.get_by_test_id("resume-run").click()
        await page.goto(server.url + "/")
        await expect(page.get_by_test_id("node-ceo")).to_have_attribute("data-state", "running")
        assert (await company.node.result(run_id, timeout=20)).status == "succeeded"
        await expect(page.get_by_test_id("spend-ceo")).to_contain_text("$0.0")


async def test_a_person_approves_one_call_and_denies_another_with_a_note_from_the_page(
    browser: object, tmp_path: Path
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    gates = []
    for run_id, text in (("r1", "launch day"), ("r2", "cheap shot at a rival")):
        await store.create_run("marketing", text, run_id=run_id)
        epoch = await store.claim_run(run_id, "test")
        gates.append(
            await open_gate(
                store,
                run_id=run_id,
                epoch=epoch,
                seq=1,
                kind="approval",
                tool="post",
                args={"text": text},
                policy=GatePolicy(approvers=("alice",)),
            )
        )
    source = _GatedCompany(store)
    try:
        async with DashboardServer(source, port=0) as server:
            page = await browser.new_page()
            await page.goto(server.url + "/")
            first, second = (g.gate_id for g in gates)
            await expect(page.get_by_test_id(f"gate-{first}")).to_contain_text("launch day")
            await expect(page.get_by_test_id(f"gate-{second}")).to_contain_text("alice may decide")
            await page.get_by_test_id("by").fill("alice")
            await page.get_by_test_id(f"approve-{first}").click()
            await expect(page.get_by_test_id(f"gate-{first}")).to_have_count(0)
            await page.get_by_test_id(f"note-{second}").fill("not our tone")
            await page.get_by_test_id(f"deny-{second}").click()
            await expect(page.get_by_test_id("approvals-none")).to_be_visible()
        decided = [await get_gate(store, g.gate_id) for g in gates]
        assert [(g.status, g.decided_by) for g in decided] == [("approved", "alice"), ("denied", "alice")]
        assert decided[1].note == "not our tone"
    finally:
        await store.close()


class _GatedCompany(CompanySource, ApprovalsMixin):
    """The test company's tree, with the approvals API over a real store (no node to wake)."""

    def __init__(self, store: Any) -> None:
        CompanySource.__init__(self)
        self.store, self.node = store, None
