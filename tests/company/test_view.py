"""Events fold into the tree the CLI and dashboard show: restarts, last exit, held agents."""

from __future__ import annotations

import pytest

from beamish._events import Event
from beamish.company import load_config
from beamish.company._examples import solo_company_dir
from beamish.company._view import apply_event, skeleton
from beamish.dashboard import TreeNode

pytestmark = pytest.mark.timeout(10)


def tree() -> TreeNode:
    return skeleton(load_config(solo_company_dir() / "beamish.toml"), services=("memory", "scheduler"))


def node(root: TreeNode, name: str) -> TreeNode:
    return next(n for n in root.walk() if n.id == name)


def test_the_skeleton_has_services_groups_agents_and_the_scheduler_last_with_caps_and_next_fires() -> None:
    root = tree()
    assert [c.id for c in root.children] == [
        "memory",
        "leadership",
        "finance",
        "growth",
        "engineering",
        "scheduler",
    ]
    marketing = node(root, "marketing")
    assert (marketing.cap_usd, marketing.state) == (1.5, "stopped")
    assert marketing.next_schedule is not None and marketing.next_schedule.endswith("14:00 UTC")


def test_child_events_by_path_count_restarts_and_keep_the_last_exit_reason() -> None:
    root = tree()
    apply_event(root, Event("child.started", "root/finance/accountant", {"id": "accountant"}))
    apply_event(
        root, Event("child.exited", "root/finance/accountant", {"reason": {"v": 1, "kind": "killed"}})
    )
    assert node(root, "accountant").state == "restarting"
    apply_event(
        root, Event("child.restarted", "root/finance/accountant", {"id": "accountant", "restarts": 1})
    )
    accountant = node(root, "accountant")
    assert (accountant.state, accountant.restarts, accountant.last_exit) == ("running", 1, "killed")


@pytest.mark.parametrize(
    ("reason", "state"),
    [("looping", "looping"), ("over_budget", "over_budget"), ("shutdown", "paused")],
)
def test_a_paused_run_marks_its_agent_held_by_the_reason(reason: str, state: str) -> None:
    root = tree()
    apply_event(root, Event("child.started", "root/engineering/improver", {"id": "improver"}))
    data = {"agent": "improver", "reason": {"v": 1, "kind": reason}, "status": "paused"}
    apply_event(root, Event("run.paused", "schedule:improver-daily:2026-11-26T11:30:00Z", data))
    assert node(root, "improver").state == state
    apply_event(root, Event("agent.resumed", "improver", {"agent": "improver"}))
    assert node(root, "improver").state == "running"


def test_a_budget_pause_of_an_agent_shows_over_budget() -> None:
    root = tree()
    apply_event(root, Event("agent.paused", "coo", {"agent": "coo", "limit": "per_day_usd", "cap_usd": 0.25}))
    assert node(root, "coo").state == "over_budget"


def test_events_about_unknown_subjects_change_nothing() -> None:
    root = tree()
    before = root.to_json()
    apply_event(root, Event("schedule.fired", "cto-checks", {"agent": "nobody"}))
    assert root.to_json() == before


def test_an_unprotected_start_marks_the_agent_until_a_new_version_takes_over() -> None:
    root = tree()
    data = {"agent": "improver", "why": "watchdog=None", "budget": False}
    apply_event(root, Event("agent.unprotected", "improver", data))
    assert node(root, "improver").unprotected == "watchdog=None"
    assert node(root, "marketing").unprotected is None
    assert TreeNode.from_json(root.to_json()).walk()[-2].unprotected == "watchdog=None"
    apply_event(root, Event("agent.upgraded", "improver", {"agent": "improver", "version": 2}))
    assert node(root, "improver").unprotected is None
