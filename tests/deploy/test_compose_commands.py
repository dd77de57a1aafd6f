"""The compose file's commands work, run here without containers: its two nodes on the real
PostgreSQL (a fresh schema standing in for the compose's database) become ready on /readyz, both are
listed as nodes, a run submitted to the company is answered, and its dashboard serves behind its
token. What the containers add (the image, their network) is test_image.py's and the guide's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from beamish.company._scaffold import scaffold

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "BEAMISH_CONFIG"}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return {**env, **extra}


def _answers(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _wait_for(url: str, procs: list[subprocess.Popen[str]], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while _answers(url) != 200:
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{url} did not answer 200 within {timeout:g} s"
        time.sleep(0.2)


def _translate(command: list[str], config: Path, store: str, port: int) -> list[str]:
    """The compose command with this machine's config path, store and a free port."""
    out = []
    for i, word in enumerate(command):
        before = command[i - 1] if i else ""
        if word == "/srv/company/beamish.toml":
            word = str(config)
        elif before == "--store":
            word = store
        elif before in ("--health", "--port"):
            word = str(port)
        elif before in ("--health-host", "--host"):
            word = "127.0.0.1"
        out.append(word)
    return [str(BIN / "beamish"), *out]


def test_the_compose_commands_run_two_nodes_and_the_dashboard_on_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    scaffold(tmp_path, template="minimal", model="scripted")  # the image's /srv/company
    config = tmp_path / "beamish.toml"
    text = (ROOT / "deploy" / "docker" / "company.toml").read_text()
    config.write_text(text.replace("postgresql://beamish@postgres:5432/beamish", pg_url))

    procs: list[subprocess.Popen[str]] = []
    try:
        ports = {}
        for name in ("node-1", "node-2"):
            ports[name] = _free_port()
            command = _translate(services[name]["command"], config, pg_url, ports[name])
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for name in ("node-1", "node-2"):
            _wait_for(f"http://127.0.0.1:{ports[name]}/readyz", procs)
        assert _answers(f"http://127.0.0.1:{ports['node-1']}/healthz") == 200

        listed = subprocess.run(
            [str(BIN / "beamish"), "node", "list", "--store", pg_url],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert "node-1" in listed.stdout and "node-2" in listed.stdout, listed.stdout

        submitted = subprocess.run(
            [
                str(BIN / "beamish"),
                "submit",
                "assistant",
                "What time is it?",
                "--wait",
                "--timeout",
                "90",
                "-c",
                str(config),
            ],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        assert "It is" in submitted.stdout

        dash_port = _free_port()
        token = "compose-test-token"
        dashboard = _translate(services["dashboard"]["command"], config, pg_url, dash_port)
        procs.append(
            subprocess.Popen(
                dashboard,
                cwd=tmp_path,
                env=_env(BEAMISH_DASHBOARD_TOKEN=token),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        _wait_for(f"http://127.0.0.1:{dash_port}/?token={token}", procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
