"""`beamish demo`: the Improver upgrades the lawyer through propose_upgrade, and the summary says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

BEAMISH = Path(sys.executable).parent / "beamish"


def test_the_demos_improver_makes_one_upgrade_visible_in_the_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [str(BEAMISH), "demo", "--duration", "10", "--json", "--seed", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
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
