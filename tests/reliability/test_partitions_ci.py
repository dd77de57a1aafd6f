"""The partition suite, short mode for CI: fifty randomized schedules of cuts, stalls, latency, resets
and splits against three nodes in their own network namespaces, then the history checked.

``benchmarks/partitions.py`` is run as an operator would run it; its last line is the JSON verdict.
It needs root for ``ip netns``: without it the test skips, except under BEAMISH_REQUIRE_SERVICES=1
where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _services import service_missing

PARTITIONS = Path(__file__).resolve().parents[2] / "benchmarks" / "partitions.py"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fifty_partition_schedules_keep_fencing_effects_ticks_and_runs(postgres_dsn: str) -> None:
    if os.geteuid() != 0:
        service_missing("root, for the network namespaces of the partition suite (ip netns)")
    done = subprocess.run(
        [sys.executable, str(PARTITIONS), "--schedules", "50", "--seed", "19"],
        capture_output=True,
        text=True,
        timeout=580,
        env={**os.environ, "BEAMISH_TEST_PG": postgres_dsn},
    )
    assert done.stdout, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    report = done.stdout[-4000:]
    assert "skipped" not in figures, report  # root was there: namespaces must work
    assert figures["schedules"] == 50, report
    assert figures["violations"] == 0, report
    assert figures["stop_within_lease"], report
    # the faults really happened, and some outlasted the lease, so units had to move
    assert set(figures["faults"]) == {"cut", "stall", "delay", "reset", "split"}, report
    assert figures["cuts_longer_than_lease"] > 0 and figures["units_moved"] > 0, report
    assert figures["ticks_fired"] >= 3 and figures["effects"] >= figures["runs"] > 100, report
    assert figures["cleanup_left"] == [] and done.returncode == 0, report
