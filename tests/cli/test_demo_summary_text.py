"""The demo's summary on a terminal says its counts in words; ``--json`` keeps them structured."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from beamish.cli import _demo
from beamish.company._effects import EffectCheck, Mismatch
from beamish.company._summary import Summary

pytestmark = pytest.mark.timeout(30)


def summary(**changes: object) -> Summary:
    s = Summary(
        duration_s=20.0,
        runs_total=36,
        runs_completed=33,
        runs_by_status={"succeeded": 33, "paused": 3},
        restarts=10,
        exit_reasons={"crashed": 1, "hung": 1, "killed": 7, "run:looping": 1, "run:over_budget": 2},
        effects_applied=49,
        mismatches=EffectCheck().counts(),
        unreadable_lines={"effect_log": 0, "memory": 0},
        faults_injected={"corrupt_memory_line": 1, "rate_limit_429": 1, "server_error_500": 2, "sigkill": 7},
        faults_seen={"sigkill": 7, "tool_crash": 1, "hung_tool": 1, "loop": 0},
    )
    for name, value in changes.items():
        setattr(s, name, value)
    return s


def printed(s: Summary, monkeypatch: pytest.MonkeyPatch) -> str:
    """What a wide terminal shows (a narrow one wraps the table's cells)."""
    out, errors = io.StringIO(), io.StringIO()
    monkeypatch.setattr(_demo, "console", Console(file=out, width=200, highlight=False))
    monkeypatch.setattr(_demo, "err", Console(file=errors, width=200, highlight=False))
    _demo._print_summary(s.to_json())
    return out.getvalue() + errors.getvalue()


def test_counts_read_as_words_not_as_a_python_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    text = printed(summary(), monkeypatch)
    assert "{" not in text and "}" not in text
    assert "33 of 36 (33 succeeded, 3 paused)" in text
    assert "processes 1 crashed, 1 hung, 7 killed; runs 1 looping, 2 over budget" in text
    assert "1 corrupt memory line, 1 HTTP 429, 2 HTTP 500s, 7 SIGKILLs" in text
    assert "7 SIGKILLs, 1 tool crash, 1 hung tool, 0 loops" in text
    assert "mismatches         none" in text
    assert "unreadable lines   0 (0 in the effect log, 0 in the memory file)" in text
    assert "the journal and the world agree" in text


def test_each_mismatch_is_named_and_each_problem_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    check = EffectCheck(
        [
            Mismatch("wrong_tool", "effect r:0 (post_update) has the key of a llm step [x]"),
            Mismatch("step_gap", "g", 2),
        ]
    )
    text = printed(summary(mismatches=check.counts(), problems=check.problems), monkeypatch)
    assert "mismatches         1 wrong tool, 2 step gap" in text
    assert "problem: effect r:0 (post_update) has the key of a llm step [x]" in text
    assert "the journal and the world disagree" in text


def test_the_json_summary_keeps_counts_structured() -> None:
    data = summary().to_json()
    assert data["runs_by_status"] == {"succeeded": 33, "paused": 3}
    assert data["mismatches"]["phantom_effect"] == 0 and isinstance(data["unreadable_lines"], dict)
    assert data["faults_injected"]["server_error_500"] == 2
