"""`beamish run` as a service: process titles, systemd's notify protocol, health probes, SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _company_helpers import wait_for_control_socket
from beamish._net import free_port

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

BEAMISH = str(Path(sys.executable).parent / "beamish")

CONFIG = """
[company]
name = "solo"

[store]
url = "sqlite:///state/beamish.db"

[memory]
enabled = false

[agents.ceo]
instructions = "{instructions}"
model = "scripted:ceo.json"
isolation = "process"
price = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }}
"""


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _messages(sock: socket.socket, until: str) -> list[str]:
    """Datagrams received until one contains ``until`` (the socket's timeout bounds the wait)."""
    seen: list[str] = []
    while not any(until in m for m in seen):
        seen.append(sock.recv(4096).decode())
    return seen


def _titles(pid: int) -> list[str]:
    """The command lines of ``pid`` and its descendants, as ``ps`` shows them."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True, check=True)
    rows = [line.split(None, 2) for line in out.stdout.splitlines()]
    family, titles = {pid}, []
    for _ in range(4):
        family |= {int(p) for p, pp, _a in rows if int(pp) in family}
    titles = [a for p, _pp, a in rows if int(p) in family]
    return titles


def test_run_names_its_processes_notifies_systemd_serves_probes_and_reloads_on_sighup(tmp_path: Path) -> None:
    (tmp_path / "beamish.toml").write_text(CONFIG.format(instructions="Lead."))
    (tmp_path / "state").mkdir()
    (tmp_path / "ceo.json").write_text(json.dumps({"turns": [{"text": "Done."}]}))
    folder = tempfile.mkdtemp(prefix="sd", dir="/tmp")
    notify = str(Path(folder) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify)
    sock.settimeout(30.0)
    port = free_port()
    env = {**os.environ, "NOTIFY_SOCKET": notify, "WATCHDOG_USEC": "400000", "COLUMNS": "200"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [BEAMISH, "run", "beamish.toml", "--health", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = _messages(sock, "READY=1")
        assert ready[-1].startswith("READY=1\nSTATUS=company 'solo' running: 1 agent")
        assert "WATCHDOG=1" in _messages(sock, "WATCHDOG=1")[-1]
        wait_for_control_socket(proc, tmp_path / "state" / "beamish.db.sock", timeout=30)
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
        assert _get(f"http://127.0.0.1:{port}/readyz") == (200, {"status": "ready"})
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404

        titles = _titles(proc.pid)
        assert "beamish: node (solo)" in titles
        assert "beamish: template (solo)" in titles
        assert "beamish: agent ceo (solo)" in titles

        (tmp_path / "beamish.toml").write_text(CONFIG.format(instructions="Lead, and write it down."))
        proc.send_signal(signal.SIGHUP)
        reload_msgs = _messages(sock, "READY=1")
        assert any(m.startswith("RELOADING=1") for m in reload_msgs)
        history = subprocess.run(
            [BEAMISH, "history", "ceo"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=30
        )
        assert "SIGHUP" in history.stdout and "person" in history.stdout, history.stdout + history.stderr

        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in _messages(sock, "STOPPING=1")[-1]
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "SIGHUP: config reloaded (1 change)" in out
        assert f"health probes at http://127.0.0.1:{port}/healthz and /readyz" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        os.unlink(notify)
        os.rmdir(folder)


def test_the_memory_server_names_itself_in_ps(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [BEAMISH, "memory", "serve", "--http", f"127.0.0.1:{port}", "--file", str(tmp_path / "team.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "serving on …" comes only after the bind succeeded
        assert "serving on" in line, line
        assert _titles(proc.pid) == ["beamish: memory server team.jsonl"]
    finally:
        proc.terminate()
        proc.wait(30)
