"""The README's "Your first agent" path, command by command, as a new user would type it.

The commands are read from the README (a changed README changes the test), run with the installed
``beamish`` from a fresh folder with no API key in the environment: ``init --template minimal``,
``check``, ``run`` in the background, ``submit --wait`` (the scripted model answers offline), ``runs``,
``show --json`` (the steps), ``status`` (exit 0 while the node runs, 3 after it stopped). The fresh
virtualenv install itself is covered by test_readme_commands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _company_helpers import wait_for_control_socket

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def first_agent_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Your first agent\n.*?```bash\n(.*?)```", text, re.S)
    assert block, "the README must have a 'Your first agent' section with a bash block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_path_goes_init_check_run_submit_runs_show_status() -> None:
    words = [shlex.split(c.rstrip("&"))[1] for c in first_agent_commands()]
    assert words == ["init", "check", "run", "submit", "runs", "show", "status"]
    commands = first_agent_commands()
    assert "--template minimal" in commands[0]
    assert commands[2].endswith("&") and "--wait" in commands[3] and "--json" in commands[5]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "BEAMISH_CONFIG"}
    env.pop("OPENAI_BASE_URL", None)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def _sh(command: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shlex.split(command),
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_new_user_follows_the_readme_from_init_to_the_runs_timeline(tmp_path: Path) -> None:
    init, check, run, submit, runs, show, status = first_agent_commands()
    done = _sh(init, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "beamish run -c my-company/beamish.toml" in done.stdout  # the next step names the config
    checked = _sh(check, tmp_path, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    config = "my-company/beamish.toml"
    stopped = _sh(f"beamish status -c {config}", tmp_path)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr

    node = subprocess.Popen(
        shlex.split(run.rstrip("&")),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_control_socket(node, tmp_path / "my-company" / "beamish.db.sock")

        answered = _sh(submit, tmp_path)
        assert answered.returncode == 0, answered.stderr
        assert answered.stdout.startswith("It is ") and "You asked: What time is it?" in answered.stdout

        listed = _sh(runs, tmp_path)
        assert listed.returncode == 0, listed.stderr
        [only] = json.loads(listed.stdout)
        assert (only["agent"], only["status"]) == ("assistant", "succeeded")

        shown = _sh(show.replace("RUN", only["run_id"]), tmp_path)
        assert shown.returncode == 0, shown.stderr
        timeline = json.loads(shown.stdout)
        assert [(s["kind"], s["name"]) for s in timeline["steps"]][1] == ("tool", "now")
        assert [s["kind"] for s in timeline["steps"]] == ["llm", "tool", "llm"]
        assert timeline["steps"][0]["tokens"]["in"] > 0 and timeline["output"].startswith("It is ")

        running = _sh(status, tmp_path)
        assert running.returncode == 0, running.stdout + running.stderr
        assert "assistant" in running.stdout

        not_paused = _sh(f"beamish resume assistant -c {config}", tmp_path)
        assert (not_paused.returncode, not_paused.stderr.strip()) == (
            1,
            "error: resume assistant: agent 'assistant' is not paused: nothing to resume",
        )
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=60)
    assert node.returncode == 0
    after = _sh(status, tmp_path)
    assert after.returncode == 3 and "no node is running" in after.stdout
