"""Every page in a real headless Chromium: it renders its key elements, its screenshot is not blank,
no line runs off the right edge, no script fails, and no request leaves the machine. One browser
and one dashboard serve the whole module. And a stopped node: the page says so, then recovers."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from _browser import chromium
from _dashboard_company import CompanySource
from _dashboard_store import filled_store

from beamish._events import Event
from beamish.company import load_config_data
from beamish.company._control import ControlServer
from beamish.company._remote import NodeOrStore
from beamish.dashboard import DashboardServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]

LOCAL = ("127.0.0.1", "localhost", "::1")

#: Colour statistics of a PNG, computed by the browser itself (no imaging library needed).
_PIXELS = """async (b64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const counts = new Map();
  let n = 0;
  for (let i = 0; i < d.length; i += 4 * 7) {
    const key = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    counts.set(key, (counts.get(key) || 0) + 1);
    n++;
  }
  return {colours: counts.size, dominant: Math.max(...counts.values()) / n};
}"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, CompanySource]]:
    store = await filled_store(f"sqlite:///{tmp_path_factory.mktemp('screens')}/j.db")
    source = CompanySource()
    source.store = store  # type: ignore[attr-defined]
    long = "a report line that goes on " * 12
    source.hub.publish(Event("run.finished", "r-timeline", {"run_id": "r-timeline", "note": long}))
    source.hub.publish(
        Event("child.restarted", "root/finance/accountant", {"id": "accountant", "restarts": 2})
    )
    try:
        async with DashboardServer(source, port=0) as server:
            yield server.url, source
    finally:
        await store.close()


class Visit:
    """A page with every request it makes recorded, and any that would leave the machine refused
    before it is sent."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def start(self) -> Visit:
        async def gate(route: Any) -> None:
            url = route.request.url
            self.requests.append(url)
            if urlsplit(url).hostname in LOCAL or url.startswith(("data:", "about:")):
                await route.continue_()
            else:
                await route.abort()

        await self.page.route("**/*", gate)
        return self

    def off_machine(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).hostname not in LOCAL and not u.startswith("data:")]


async def looks_drawn(browser: Any, png: bytes) -> dict[str, float]:
    """The screenshot's colour statistics, measured in a blank page of its own."""
    page = await browser.new_page()
    try:
        stats: dict[str, float] = await page.evaluate(_PIXELS, base64.b64encode(png).decode())
    finally:
        await page.close()
    return stats


def assert_not_blank(stats: dict[str, float]) -> None:
    assert stats["colours"] >= 12 and stats["dominant"] < 0.97, f"the page looks blank: {stats}"


async def check_page(browser: Any, url: str, ready: list[str], tmp_path: Path) -> Any:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    visit = await Visit(page).start()
    response = await page.goto(url)
    assert response is not None and response.status == 200
    from playwright.async_api import expect

    for testid in ready:
        await expect(page.get_by_test_id(testid).first).to_be_visible()
    png = await page.screenshot(full_page=False)
    keep = os.environ.get("BEAMISH_SCREENSHOTS")  # a folder to look at them by hand; never committed
    if keep:
        name = urlsplit(url).path.strip("/").replace("/", "_") or "overview"
        (Path(keep) / f"{name}.png").write_bytes(png)
    assert_not_blank(await looks_drawn(browser, png))
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{url}: the page runs {overflow}px off the right edge"
    assert visit.requests and visit.off_machine() == []
    assert visit.errors == []
    return page


PAGES = [
    ("/", ["status", "node-cfo", "event"]),
    ("/runs", ["runs", "run-row", "filter-agent"]),
    ("/runs/r-timeline", ["timeline", "mark-replayed", "run-error"]),
    ("/events", ["events", "event-row", "filter-kind"]),
    ("/charts", ["chart-day", "chart-month", "chart-agents", "chart-runs", "chart-restarts"]),
    ("/company", ["company-caps", "upgrades"]),
]


@pytest.mark.parametrize(("path", "ready"), PAGES, ids=[p for p, _ in PAGES])
async def test_each_page_renders_is_not_blank_and_stays_on_this_machine(
    browser: Any, served: tuple[str, CompanySource], path: str, ready: list[str], tmp_path: Path
) -> None:
    page = await check_page(browser, served[0] + path, ready, tmp_path)
    await page.close()


async def test_on_a_phone_no_page_runs_off_the_right_edge(
    browser: Any, served: tuple[str, CompanySource]
) -> None:
    """390 px wide: wide tables scroll inside their own box, charts shrink to fit."""
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    for path, ready in [*PAGES, ("/events", ["events"])]:  # the events last, for the check below
        await page.goto(served[0] + path)
        await page.get_by_test_id(ready[0]).first.wait_for()
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path}: the page runs {overflow}px off the right edge of a phone"
        if path == "/charts":  # whole on the screen, its text grown so that it stays legible
            chart = await page.get_by_test_id("chart-day").bounding_box()
            assert chart is not None and chart["x"] + chart["width"] <= 390
            size = await page.locator("svg .tick").first.evaluate("e => getComputedStyle(e).fontSize")
            assert size == "12px"
    # an event's summary, the part one reads, is on the screen without scrolling sideways
    summary = await page.get_by_test_id("event-row").first.locator("td").last.bounding_box()
    assert summary is not None and summary["x"] + summary["width"] <= 390
    await page.close()


async def test_the_checks_catch_a_blank_page_and_a_request_off_the_machine(browser: Any) -> None:
    page = await browser.new_page(viewport={"width": 800, "height": 600})
    visit = await Visit(page).start()
    await page.set_content('<body><img src="http://192.0.2.1/x.png"></body>')  # refused, never sent
    png = await page.screenshot()
    with pytest.raises(AssertionError, match="blank"):
        assert_not_blank(await looks_drawn(browser, png))
    assert visit.off_machine() == ["http://192.0.2.1/x.png"]
    await page.close()


async def test_runs_are_filtered_and_a_run_opens_from_the_list(
    browser: Any, served: tuple[str, CompanySource]
) -> None:
    from playwright.async_api import expect

    page = await browser.new_page()
    await page.goto(served[0] + "/")
    await page.get_by_test_id("node-ceo").get_by_role("link", name="ceo").click()  # an agent's runs
    await expect(page).to_have_url(served[0] + "/runs?agent=ceo")
    await expect(page.get_by_test_id("run-row")).to_have_count(50)
    await page.goto(served[0] + "/runs")
    await expect(page.get_by_test_id("run-row").first).to_have_attribute("data-status", "needs_attention")
    await page.get_by_test_id("filter-status").select_option("failed")
    await page.get_by_role("button", name="filter").click()
    await expect(page).to_have_url(served[0] + "/runs?agent=&status=failed")
    await expect(page.get_by_test_id("run-row")).to_have_count(1)
    await page.get_by_role("link", name="r-timeline").click()
    await expect(page.get_by_test_id("run-id")).to_contain_text("r-timeline")
    await expect(page.get_by_test_id("step")).to_have_count(3)
    await page.close()


async def test_an_events_json_opens_on_demand(browser: Any, served: tuple[str, CompanySource]) -> None:
    from playwright.async_api import expect

    page = await browser.new_page()
    await page.goto(served[0] + "/events?kind=agent.upgraded")
    row = page.get_by_test_id("event-row")
    await expect(row).to_have_count(1)
    await expect(row.get_by_test_id("event-json")).to_be_hidden()
    await row.get_by_text("JSON").click()
    await expect(row.get_by_test_id("event-json")).to_contain_text('"author": "agent:improver"')
    await page.close()


async def test_a_stopped_node_is_said_and_the_page_recovers_when_it_returns(
    browser: Any, served: tuple[str, CompanySource], tmp_path: Path
) -> None:
    from playwright.async_api import expect

    (tmp_path / "x.json").write_text('{"turns": [{"text": "ok"}]}')
    agent = {"instructions": "x", "model": "scripted:x.json"}
    data = {"store": {"url": "sqlite:///j.db"}, "memory": {"enabled": False}, "agents": {"ceo": agent}}
    config = load_config_data(data, tmp_path / "beamish.toml")
    path = tmp_path / "node.sock"
    store = served[1].store  # type: ignore[attr-defined]
    source = NodeOrStore(path, config, store, recheck_s=0.2)
    node = ControlServer(CompanySource(), path)
    await node.start()
    try:
        async with DashboardServer(source, port=0) as server:
            page = await browser.new_page()
            await page.goto(server.url + "/")
            await expect(page.get_by_test_id("node-finance")).to_be_visible()  # the node's tree
            await expect(page.get_by_test_id("status")).to_have_text("live")
            await expect(page.get_by_test_id("resume-cfo")).to_be_enabled()
            await node.stop()
            await page.evaluate("window.beamishStatus()")
            await expect(page.get_by_test_id("node-banner")).to_contain_text("The node is not running")
            await expect(page.get_by_test_id("status")).to_have_text("node stopped: read-only")
            # a resume needs the node: its buttons cannot be pressed while it is stopped
            await expect(page.locator("button[data-needs-node]:enabled")).to_have_count(0)
            await page.reload()  # the tree now comes from the store: the config's agents, stopped
            await expect(page.get_by_test_id("node-ceo")).to_have_attribute("data-state", "stopped")
            await page.goto(server.url + "/runs")
            await expect(page.get_by_test_id("node-banner")).to_be_visible()
            await expect(page.get_by_test_id("run-row").first).to_be_visible()
            await node.start()
            await page.evaluate("window.beamishStatus()")
            await expect(page.get_by_test_id("node-banner")).to_be_hidden()
            await expect(page.get_by_test_id("status")).to_have_text("live")
            await page.close()
    finally:
        await node.stop()
