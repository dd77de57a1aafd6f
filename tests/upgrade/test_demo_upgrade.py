"""`beamish demo`: the Improver upgrades the lawyer through propose_upgrade, and the summary says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from _company_helpers import run_demo_json

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def test_the_demos_improver_makes_one_upgrade_visible_in_the_summary(tmp_path: Path) -> None:
    summary = run_demo_json(tmp_path, duration=10, seed=3, timeout=110)
    assert summary["upgrades"] == [
        {
            "agent": "lawyer",
            "version": 2,
            "previous": 1,
            "author": "agent:improver",
            "reason": "auto-renewal clauses slipped through last month's reviews",
            "changed": ["instructions"],
        }
    ]
    assert summary["rollbacks"] == 0
    assert summary["lost_steps"] == 0 and summary["duplicate_effects"] == 0, summary["problems"]
