"""The README's first command works on a fresh copy of the project in a new virtualenv."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## On a fresh machine\s+```bash\n(.*?)```", text, re.S)
    assert block, "the README must open with its two commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_the_readme_leads_with_install_and_demo_then_install_and_tests() -> None:
    first, second = readme_commands()
    assert first == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/beamish demo"
    assert second.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'")
    assert second.endswith(".venv/bin/python -m pytest -q")


def test_the_first_command_installs_and_runs_the_demo_in_a_fresh_venv(tmp_path: Path) -> None:
    clone = tmp_path / "beamish"
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.db", "*.db-*", "state", "outbox")
    shutil.copytree(ROOT, clone, ignore=ignore)
    first = readme_commands()[0]
    # the README's command as written, with the demo shortened and its summary as JSON
    command = first.replace(".venv/bin/beamish demo", ".venv/bin/beamish demo --duration 8 --json")
    python = shutil.which("python3") or sys.executable
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "VIRTUAL_ENV"}
    env["PATH"] = f"{Path(python).parent}:{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=540, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["runs_completed"] > 0
    assert (summary["lost_steps"], summary["duplicate_effects"]) == (0, 0)
