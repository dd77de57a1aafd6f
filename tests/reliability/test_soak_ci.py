"""The chaos soak, bounded for CI: two minutes of the solo company under every fault, then checked.

``benchmarks/soak.py`` is run as the operator would run it; its last line is the JSON verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_two_minutes_of_chaos_lose_nothing_repeat_nothing_and_recover(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--minutes",
            "2",
            "--node-kill-every",
            "25",
            "--seed",
            "11",
            "--quiet",
            "--workdir",
            str(tmp_path / "soak"),
        ],
        capture_output=True,
        text=True,
        timeout=190,
    )
    assert done.stdout, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    report = done.stdout[-4000:]
    assert figures["lost_acknowledged_steps"] == 0, report
    assert figures["duplicate_side_effects"] == 0, report
    assert figures["rebilled_model_calls"] == 0, report
    assert figures["spend_past_cap"] == 0 and figures["spend_over_cap"] == 0, report
    assert figures["cap_windows_checked"] > 0, report
    assert figures["ticks_missing"] == 0 and figures["ticks_duplicated"] == 0, report
    assert figures["orphans_after_node_kill"] == 0, report
    assert figures["calm_scheduled_runs"] > 0, report
    assert figures["calm_success_rate"] >= 0.999, report
    # the faults really happened
    faults = figures["faults"]
    assert faults["node_sigkill"] >= 2 and faults["disk_full_windows"] >= 1, report
    assert faults["model_faults_scripted"] > 0 and figures["runs"] > 20, report
    assert figures["targets_missed"] == [] and done.returncode == 0, report
