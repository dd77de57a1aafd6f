"""`beamish demo --duration 20 --json`: the offline company under faults, checked against its effect log."""

from __future__ import annotations

import pytest

from _company_helpers import run_demo_json

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return run_demo_json(tmp_path_factory.mktemp("demo"), duration=20, seed=7, timeout=140)


def test_the_demo_completes_runs_and_restarts_crashed_agents(summary: dict[str, object]) -> None:
    assert isinstance(summary["runs_completed"], int) and summary["runs_completed"] > 0
    assert isinstance(summary["restarts"], int) and summary["restarts"] > 0


def test_no_step_is_lost_and_no_effect_happens_twice(summary: dict[str, object]) -> None:
    assert summary["lost_steps"] == 0, summary["problems"]
    assert summary["duplicate_effects"] == 0, summary["problems"]
    assert isinstance(summary["effects_applied"], int) and summary["effects_applied"] > 0


def test_the_journal_and_every_record_of_the_world_agree_to_the_line(summary: dict[str, object]) -> None:
    mismatches = summary["mismatches"]
    assert isinstance(mismatches, dict)
    assert set(mismatches) >= {
        "missing_step",
        "phantom_effect",
        "wrong_tool",
        "duplicate_effect",
        "unreadable_line",
    }
    assert set(mismatches.values()) == {0}, summary["problems"]
    assert summary["unreadable_lines"] == {"effect_log": 0, "memory": 0}


def test_no_cap_is_passed_by_any_run_day_month_or_total(summary: dict[str, object]) -> None:
    # the costly agent is paused at its per-day cap; the ledger, re-summed per window, agrees
    assert summary["spend_past_cap"] == 0, summary["problems"]
    reasons = summary["exit_reasons"]
    assert isinstance(reasons, dict) and reasons.get("run:over_budget", 0) >= 1


def test_restarted_agents_replay_model_calls_from_the_journal(summary: dict[str, object]) -> None:
    assert isinstance(summary["llm_calls_replayed"], int) and summary["llm_calls_replayed"] > 0
    assert isinstance(summary["llm_calls_made"], int) and summary["llm_calls_made"] > 0


def test_each_fault_kind_shows_up_as_its_own_exit_reason(summary: dict[str, object]) -> None:
    reasons = summary["exit_reasons"]
    assert isinstance(reasons, dict)
    assert reasons.get("killed", 0) >= 1  # SIGKILL of agent processes
    assert reasons.get("crashed", 0) >= 1  # the bank feed's bug ends the accountant's process
    assert reasons.get("hung", 0) >= 1  # the hung tool, killed by the watchdog
    assert reasons.get("run:looping", 0) >= 1  # the looping agent, paused
    assert reasons.get("run:over_budget", 0) >= 1  # the costly agent, paused at its cap
    seen = summary["faults_seen"]
    assert isinstance(seen, dict)
    assert seen["rate_limit_429"] >= 1  # back-pressure, no restart
    assert seen["corrupt_memory_line"] >= 1  # the memory file repaired on load
    assert seen["tool_crash"] >= 1
    injected = summary["faults_injected"]
    assert isinstance(injected, dict)
    assert injected["server_error_500"] >= 1  # played by the accountant's script, retried, no restart
    assert injected["rate_limit_429"] >= 1
    assert (
        1 <= reasons["killed"] <= injected["sigkill"]
    )  # each kill is seen as Killed (a racing watchdog kill is Hung)


def test_the_summary_has_every_documented_field(summary: dict[str, object]) -> None:
    for key in (
        "runs_completed",
        "restarts",
        "exit_reasons",
        "lost_steps",
        "duplicate_effects",
        "llm_calls_made",
        "llm_calls_replayed",
        "spend_usd",
        "spend_past_cap",
        "scheduled_fires",
        "scheduled_success_rate",
    ):
        assert key in summary, key
    assert isinstance(summary["scheduled_fires"], int) and summary["scheduled_fires"] > 0
    assert summary["scheduled_success_rate"] is not None
    assert isinstance(summary["spend_usd"], float) and summary["spend_usd"] > 0


def test_marketing_posts_wait_for_approval_and_one_is_denied(summary: dict[str, object]) -> None:
    approvals = summary["approvals"]
    assert isinstance(approvals, dict)
    assert approvals["denied"] == 1 and approvals["approved"] >= 2
    assert approvals["pending_at_end"] >= 0


def test_alerts_reach_the_local_sink_signed(summary: dict[str, object]) -> None:
    alerts = summary["alerts_sent"]
    assert isinstance(alerts, dict)
    approvals = summary["approvals"]
    assert isinstance(approvals, dict)
    # the alerter runs once a second: a post that waited at the very end may not be announced yet
    assert 1 <= alerts.get("approval.requested", 0) <= approvals["approved"] + approvals["denied"] + 1
