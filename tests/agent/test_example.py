"""The consulting example runs offline on the scripted model, and a second run repeats nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "examples" / "consulting_agents" / "run.py"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("isolation", ["task", "process"])
def test_the_consulting_example_runs_offline_and_announces_once(tmp_path: Path, isolation: str) -> None:
    def run() -> str:
        done = subprocess.run(
            [sys.executable, str(RUN), "--dir", str(tmp_path), "--isolation", isolation],
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = run()
    assert "run decision-q4-hiring: succeeded" in first
    assert "consult refused: ceo → cfo → ceo would ask 'ceo' again (a cycle)" in first
    assert "model calls made: 3" in first
    second = run()
    assert "announcements made: 1" in second
    assert len((tmp_path / "announcements.log").read_text().splitlines()) == 1
