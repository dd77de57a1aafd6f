"""The bring-your-own-agent example runs offline, survives its SIGKILL, and repeats nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "examples" / "byo_agent" / "run.py"


def _run(directory: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(RUN), "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.timeout(100)
def test_the_byo_example_resumes_its_killed_pydantic_ai_agent_without_repeating_anything(
    tmp_path: Path,
) -> None:
    first = _run(tmp_path)
    assert "killing the agent process" in first
    assert "run launch-post: succeeded" in first
    assert "answer: Posted the launch announcement." in first
    assert "model calls in the journal: 3, served from it on resume: 2" in first
    assert "requests the server answered this time: 3 (received 4)" in first
    assert "publications: 1" in first
    second = _run(tmp_path)
    assert "nothing is repeated" in second
    assert "requests the server answered this time: 0" in second
    assert "publications: 1" in second
