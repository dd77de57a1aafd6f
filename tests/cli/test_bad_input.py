"""Bad input gets one line naming what is wrong and an exit code, never a traceback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish._exits import Crashed
from beamish.cli import app
from beamish.cli._common import _said
from beamish.company._control import control_path
from beamish.errors import BeamishError, StartFailed

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()
BEAMISH = str(Path(sys.executable).parent / "beamish")


def one_line(result: object) -> str:
    output = getattr(result, "output", "")
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "co")])
    assert result.exit_code == 0, result.output
    return tmp_path / "co" / "beamish.toml"


def test_memory_serve_off_loopback_without_a_token_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BEAMISH_MEMORY_TOKEN", raising=False)
    result = runner.invoke(app, ["memory", "serve", "--http", "0.0.0.0:8770", "--file", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert one_line(result) == (
        "error: --http 0.0.0.0:8770: serving beyond loopback needs a token; pass --token or set "
        "BEAMISH_MEMORY_TOKEN (clients send it as 'Authorization: Bearer <token>')"
    )


def test_memory_serve_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["memory", "serve", "--http", "127.0.0.1:70000", "--file", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert one_line(result) == "error: --http: port 70000 is out of range 0-65535"


def test_memory_serve_on_a_port_in_use_says_so_and_never_that_it_serves(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [BEAMISH, "memory", "serve", "--http", f"127.0.0.1:{port}", "--file", str(tmp_path / "m")],
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: memory server: cannot listen on 127.0.0.1:{port}: the port is already in use (another "
        "process listens on it); stop that process, or pass another --http HOST:PORT"
    ]


def test_memory_serve_says_serving_only_once_the_port_accepts_connections(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            BEAMISH,
            "memory",
            "serve",
            "--http",
            f"127.0.0.1:{port}",
            "--token",
            "t0k",
            "--file",
            str(tmp_path / "m"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # blocks until the server says something
        assert line.strip().endswith(f"serving on http://127.0.0.1:{port}/mcp"), line
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # already listening when it said so
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_init_over_an_existing_config_is_refused_in_one_line(minimal: Path) -> None:
    result = runner.invoke(app, ["init", str(minimal.parent)])
    assert result.exit_code == 1
    assert one_line(result) == (
        f"error: {minimal} exists; pass --force to replace it (only beamish.toml: tools and scripts are kept)"
    )


def test_init_into_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["init", str(tmp_path / "notes.txt")])
    assert result.exit_code == 1
    assert (
        one_line(result)
        == f"error: {tmp_path / 'notes.txt'} is a file, not a folder: name a folder for the company"
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_init_force_replaces_only_the_config_never_the_users_tools_or_scripts(minimal: Path) -> None:
    tools, script = minimal.parent / "my_tools.py", minimal.parent / "scripts" / "assistant.json"
    tools.write_text(tools.read_text() + "\n# my change\n")
    script.write_text(script.read_text().replace("You asked", "You said"))
    minimal.write_text(minimal.read_text().replace('name = "co"', 'name = "edited"'))
    result = runner.invoke(app, ["init", str(minimal.parent), "--force", "--model", "local"])
    assert result.exit_code == 0, result.output
    assert "# my change" in tools.read_text() and "You said" in script.read_text()
    assert "kept co/my_tools.py" in result.output or "kept" in result.output
    text = minimal.read_text()
    assert 'name = "edited"' not in text and 'model = "openai:llama3.1"' in text


def test_a_sqlite_store_in_a_missing_folder_is_refused_not_created(minimal: Path) -> None:
    minimal.write_text(minimal.read_text().replace("sqlite:///beamish.db", "sqlite:///nowhere/beamish.db"))
    folder = minimal.parent / "nowhere"
    result = runner.invoke(app, ["runs", "-c", str(minimal)])
    assert result.exit_code == 1
    assert one_line(result) == (
        f"error: {minimal}: store.url: the folder {folder} does not exist; create it (mkdir -p {folder}) "
        "or point [store] url at an existing folder"
    )
    run = runner.invoke(app, ["run", "-c", str(minimal)])
    assert run.exit_code == 2 and f"store.url: the folder {folder} does not exist" in run.output
    assert not folder.exists()


@pytest.mark.parametrize("command", [["events", "-n", "-1"], ["runs", "-n", "-1"]])
def test_a_negative_count_is_refused(minimal: Path, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "-c", str(minimal)])
    assert result.exit_code == 2
    option = "-n/--last" if command[0] == "events" else "-n/--limit"
    assert one_line(result) == f"error: {option}: expected a count of 0 or more, got -1"


@pytest.mark.parametrize("task", ["", "   "])
def test_an_empty_task_is_refused_before_the_node_is_asked(minimal: Path, task: str) -> None:
    result = runner.invoke(app, ["submit", "assistant", task, "-c", str(minimal)])
    assert result.exit_code == 2
    assert one_line(result) == (
        'error: the task is empty: say what the agent should do, e.g. beamish submit AGENT "Plan the week"'
    )


def test_a_bad_since_is_named(minimal: Path) -> None:
    result = runner.invoke(app, ["runs", "--since", "yesterday", "-c", str(minimal)])
    assert result.exit_code == 2
    assert one_line(result) == (
        "error: --since: expected an age (30m, 1h, 2d) or an ISO time (2026-12-01T09:00), got 'yesterday'"
    )


def _run_on_a_taken_port(config: Path, extra: list[str]) -> tuple[subprocess.CompletedProcess[str], int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if not extra:  # the memory server's port, from the config
            text = config.read_text().replace("enabled = false", f"enabled = true\nport = {port}")
            config.write_text(text)
        done = subprocess.run(
            [BEAMISH, "run", "-c", str(config), *[a.format(port=port) for a in extra]],
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
    return done, port


def test_run_with_its_health_port_taken_says_which_port_and_what_to_do(minimal: Path) -> None:
    done, port = _run_on_a_taken_port(minimal, ["--health", "{port}"])
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: health probes: cannot listen on 127.0.0.1:{port}: the port is already in use (another "
        "process listens on it); stop that process, or pass another --health PORT (0 picks a free one)"
    ]


def test_run_with_its_memory_port_taken_says_which_port_and_what_to_do(minimal: Path) -> None:
    done, port = _run_on_a_taken_port(minimal, [])
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: memory server: cannot listen on 127.0.0.1:{port}: the port is already in use (another "
        "process listens on it); stop that process, or set another [memory] port in beamish.toml (or "
        "none, for a free one)"
    ]


def test_a_child_that_did_not_start_is_said_in_one_line_naming_it() -> None:
    taken = BeamishError("memory server: cannot listen on 127.0.0.1:1: the port is already in use")
    assert _said(StartFailed("memory", Crashed(taken))) == str(taken)
    other = BeamishError("no key")
    assert _said(StartFailed("root", Crashed(StartFailed("ceo", Crashed(other))))) == (
        "child 'ceo' did not start: no key"
    )


@pytest.fixture
def backed_up(minimal: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The minimal company with a store and a backup of it: (config, backup)."""
    assert runner.invoke(app, ["runs", "-c", str(minimal)]).exit_code == 0  # the store, made
    done = runner.invoke(app, ["backup", str(tmp_path / "b.db"), "-c", str(minimal)])
    assert done.exit_code == 0, done.output
    return minimal, tmp_path / "b.db"


@pytest.mark.parametrize(
    ("dest", "message"),
    [
        (
            "nowhere/b.db",
            "{tmp}/nowhere/b.db: the folder {tmp}/nowhere does not exist; create it (mkdir -p {tmp}/nowhere) "
            "or name a file in an existing folder",
        ),
        ("", "{tmp} is a folder: name the backup file, e.g. {tmp}/beamish-backup.db"),
        ("co/beamish.db", "{tmp}/co/beamish.db is the store itself: name another file for the backup"),
    ],
    ids=["missing folder", "a folder", "the store itself"],
)
def test_a_backup_to_a_place_it_cannot_go_is_one_line_and_the_store_is_untouched(
    backed_up: tuple[Path, Path], tmp_path: Path, dest: str, message: str
) -> None:
    config, _ = backed_up
    store = config.parent / "beamish.db"
    before = store.read_bytes()
    result = runner.invoke(
        app, ["backup", str(tmp_path / dest) if dest else str(tmp_path), "-c", str(config)]
    )
    assert result.exit_code == 1
    assert one_line(result) == "error: " + message.format(tmp=tmp_path)
    assert store.read_bytes() == before and not (tmp_path / "nowhere").exists()


@contextlib.contextmanager
def _a_node_answering_on(path: Path) -> Iterator[None]:
    """A stand-in for a running node: its control socket answers every request "ok"."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b'{"ok": true, "result": "pong"}\n')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_restore_under_a_running_node_is_refused_and_the_store_is_untouched(
    backed_up: tuple[Path, Path],
) -> None:
    config, backup = backed_up
    store = config.parent / "beamish.db"
    before = store.read_bytes()
    sock = control_path(f"sqlite:///{store}", config.parent)
    with _a_node_answering_on(sock):
        result = runner.invoke(app, ["restore", str(backup), "--replace", "-c", str(config)])
    assert result.exit_code == 1
    assert one_line(result) == (
        f"error: a node is running this company (it answers on {sock}): stop it first (Ctrl-C, or "
        "systemctl stop), then restore"
    )
    assert store.read_bytes() == before


def test_a_restore_says_what_it_restored_into_which_store(backed_up: tuple[Path, Path]) -> None:
    config, backup = backed_up
    result = runner.invoke(app, ["restore", str(backup), "--replace", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert one_line(result).startswith(f"restored {backup} into {config.parent / 'beamish.db'}: 0 runs, ")


@pytest.mark.parametrize("command", ["show", "cancel", "retry"])
def test_a_run_id_that_is_not_there_says_where_the_real_ones_are(minimal: Path, command: str) -> None:
    result = runner.invoke(app, [command, "21731af6", "-c", str(minimal)])
    assert result.exit_code == 1
    assert one_line(result) == "error: no run '21731af6'; `beamish runs` lists the recent ones"


@pytest.mark.parametrize(
    ("command", "option"),
    [(["run", "--dashboard", "99999"], "--dashboard"), (["dashboard", "--port", "99999"], "--port")],
)
def test_a_dashboard_port_out_of_range_is_a_usage_error_not_a_traceback(
    minimal: Path, command: list[str], option: str
) -> None:
    result = runner.invoke(app, [*command, "-c", str(minimal)])
    assert result.exit_code == 2
    assert one_line(result).startswith(f"error: beamish {command[0]}: invalid value for '{option}'")


def test_listening_on_a_port_out_of_range_is_one_line_naming_the_range() -> None:
    from beamish._net import listen

    with pytest.raises(BeamishError) as info:
        listen("127.0.0.1", 99999, "health probes", "pass another --health PORT")
    assert str(info.value) == (
        "health probes: cannot listen on 127.0.0.1:99999: the port is out of range; "
        "choose a port from 0 to 65535"
    )
