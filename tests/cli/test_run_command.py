"""`beamish run` serves a company until SIGTERM; the other commands reach it over the control socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _company_helpers import wait_for_control_socket

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

BEAMISH = str(Path(sys.executable).parent / "beamish")

CONFIG = """
[store]
url = "sqlite:///state/beamish.db"

[memory]
file = "state/memory.jsonl"

[tree.groups.finance]
strategy = "rest_for_one"
agents = ["cfo", "accountant"]

[agents.cfo]
instructions = "You approve spending."
model = "scripted:cfo.json"
tools = ["memory"]
price = { input_per_mtok = 3.0, output_per_mtok = 15.0 }

[agents.accountant]
instructions = "You keep the books."
model = "scripted:accountant.json"
isolation = "task"
price = { input_per_mtok = 1.0, output_per_mtok = 5.0 }
"""

CFO_SCRIPT = {
    "turns": [
        {
            "tool_calls": [
                {
                    "name": "create_entities",
                    "arguments": {
                        "entities": [
                            {"name": "budget", "entityType": "finance", "observations": ["approved: laptops"]}
                        ]
                    },
                }
            ]
        },
        {"text": "Approved."},
    ]
}
ACCOUNTANT_SCRIPT = {"turns": [{"text": "Books balanced."}]}


def beamish(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [BEAMISH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@pytest.fixture
def company(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    (tmp_path / "beamish.toml").write_text(CONFIG)
    (tmp_path / "state").mkdir()  # the store's folder: a missing one is refused, not created
    (tmp_path / "cfo.json").write_text(json.dumps(CFO_SCRIPT))
    (tmp_path / "accountant.json").write_text(json.dumps(ACCOUNTANT_SCRIPT))
    proc = subprocess.Popen(
        [BEAMISH, "run", "beamish.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_control_socket(proc, tmp_path / "state" / "beamish.db.sock", timeout=30)
    yield tmp_path, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_running_company_answers_status_takes_runs_and_stops_cleanly_on_sigterm(
    company: tuple[Path, subprocess.Popen[str]],
) -> None:
    cwd, proc = company
    status = beamish("status", cwd=cwd)
    assert status.returncode == 0, status.stderr
    assert "finance" in status.stdout and "rest_for_one" in status.stdout
    assert "no node is running" not in status.stdout
    assert "running" in status.stdout

    submitted = beamish("submit", "cfo", "Approve the laptops", "--run-id", "laptops-1", cwd=cwd)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "laptops-1"
    deadline = time.monotonic() + 30
    while "succeeded" not in (runs := beamish("runs", "cfo", cwd=cwd)).stdout:
        assert time.monotonic() < deadline, runs.stdout + runs.stderr
        time.sleep(0.2)
    assert "laptops-1" in runs.stdout

    again = beamish("submit", "cfo", "Approve the laptops", "--run-id", "laptops-1", cwd=cwd)
    assert again.stdout.strip() == "laptops-1"  # the same id is the same run, not a second one
    assert beamish("runs", "cfo", cwd=cwd).stdout.count("laptops-1") == 1

    not_paused = beamish("resume", "accountant", cwd=cwd)
    assert not_paused.returncode == 1
    assert (
        not_paused.stderr.strip()
        == "error: resume accountant: agent 'accountant' is not paused: nothing to resume"
    )
    assert beamish("pause", "accountant", cwd=cwd).returncode == 0
    resumed = beamish("resume", "accountant", cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    events = beamish("events", "-n", "200", cwd=cwd)
    assert "child.started" in events.stdout and "run.finished" in events.stdout
    assert "agent.resumed" in events.stdout

    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert not (cwd / "state" / "beamish.db.sock").exists()
    after = beamish("status", cwd=cwd)
    assert after.returncode == 3 and "no node is running" in after.stdout
    assert '"budget"' in (cwd / "state" / "memory.jsonl").read_text()


def test_a_second_run_of_the_same_company_is_refused_and_leaves_the_first_running(
    company: tuple[Path, subprocess.Popen[str]],
) -> None:
    cwd, proc = company
    second = beamish("run", "beamish.toml", cwd=cwd, timeout=60)
    assert second.returncode == 1
    assert "a node is already running this company" in second.stderr + second.stdout
    assert proc.poll() is None
    assert beamish("status", cwd=cwd).returncode == 0


def _runs(cwd: Path, *args: str) -> list[dict[str, object]]:
    listed = beamish("runs", "--json", *args, cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, object]] = json.loads(listed.stdout)
    return found


@pytest.mark.timeout(180)
def test_an_operator_stops_cancels_retries_starts_and_restarts_through_the_node(
    company: tuple[Path, subprocess.Popen[str]],
) -> None:
    cwd, _proc = company
    assert beamish("stop", "accountant", cwd=cwd).stdout.strip() == "stopped accountant"
    tree = json.loads(beamish("status", "--json", cwd=cwd).stdout)["tree"]
    states = {n["id"]: n["state"] for g in tree["children"] for n in g.get("children", [])}
    assert states["accountant"] == "stopped"

    waited = beamish(
        "submit", "accountant", "Close the books", "--run-id", "books-1", "--wait", "--timeout", "1", cwd=cwd
    )
    assert (waited.returncode, waited.stderr.strip()) == (
        124,
        "error: run books-1 is still queued after 1 s (beamish show books-1)",
    )
    queued = "books-1"
    assert beamish("cancel", queued, cwd=cwd).returncode == 0
    failed = beamish("submit", "accountant", "Close the books", "--run-id", queued, "--wait", cwd=cwd)
    assert (failed.returncode, failed.stderr.strip()) == (
        1,
        "error: run books-1 failed: shutdown: cancelled by person (beamish show books-1)",
    )
    [cancelled] = _runs(cwd, "--agent", "accountant", "--status", "failed")
    assert cancelled["run_id"] == queued
    shown = json.loads(beamish("show", queued, "--json", cwd=cwd).stdout)
    assert shown["error"] == "shutdown: cancelled by person" and shown["steps"] == []
    again = beamish("cancel", queued, cwd=cwd)
    assert (again.returncode, again.stderr.strip()) == (
        1,
        f"error: run '{queued}' has already finished (failed); nothing to cancel",
    )

    assert beamish("start", "accountant", cwd=cwd).stdout.strip() == "started accountant"
    retried = beamish("retry", queued, cwd=cwd)
    assert retried.returncode == 0, retried.stderr
    new_id = retried.stdout.strip()
    deadline = time.monotonic() + 30
    while [r["status"] for r in _runs(cwd, "--since", "1h") if r["run_id"] == new_id] != ["succeeded"]:
        assert time.monotonic() < deadline, _runs(cwd)
        time.sleep(0.2)

    assert beamish("restart", "cfo", cwd=cwd).stdout.strip() == "restarted cfo"
    answered = beamish("submit", "cfo", "Approve the laptops", "--wait", "--timeout", "30", cwd=cwd)
    assert (answered.returncode, answered.stdout.strip()) == (0, "Approved.")
    follow = subprocess.Popen(
        [BEAMISH, "events", "-f", "--json", "--kind", "run.finished"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        first = json.loads(follow.stdout.readline())  # one JSON object per line while following
        assert first["kind"] == "run.finished"
    finally:
        follow.terminate()
        follow.wait(timeout=10)
