"""Commands on one agent of the running node: pause, resume, stop, start, restart.

``systemctl``'s verbs: ``stop`` keeps the agent stopped (its supervisor does not restart it) until
``start``; ``restart`` stops it politely and starts it again; ``pause`` keeps it running but calling
no model, until ``resume``. Each goes through the node's control socket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beamish.cli._common import ConfigOption, load
from beamish.cli._company import _known_agent, ask_node
from beamish.cli._output import console

AgentArgument = Annotated[str, typer.Argument(metavar="AGENT", help="The agent's name in beamish.toml.")]
_DONE = {
    "pause": "paused",
    "resume": "resumed",
    "stop": "stopped",
    "start": "started",
    "restart": "restarted",
}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    for command in (pause, resume, stop, start, restart):
        app.command()(command)


def _control(config: Path, op: str, agent: str) -> None:
    cfg = load(config)
    _known_agent(cfg, agent)
    ask_node(cfg, {"op": op, "agent": agent}, what=f"{op} {agent}", timeout=30.0)
    console.print(f"{_DONE[op]} {agent}")


def pause(agent: AgentArgument, config: ConfigOption = Path("beamish.toml")) -> None:
    """Pause an agent (its state kept; `beamish resume` continues it)."""
    _control(config, "pause", agent)


def resume(agent: AgentArgument, config: ConfigOption = Path("beamish.toml")) -> None:
    """Resume an agent paused by its budget, a loop, or `beamish pause`."""
    _control(config, "resume", agent)


def stop(agent: AgentArgument, config: ConfigOption = Path("beamish.toml")) -> None:
    """Stop an agent and keep it stopped (not restarted) until `beamish start`; its runs wait."""
    _control(config, "stop", agent)


def start(agent: AgentArgument, config: ConfigOption = Path("beamish.toml")) -> None:
    """Start an agent stopped with `beamish stop`."""
    _control(config, "start", agent)


def restart(agent: AgentArgument, config: ConfigOption = Path("beamish.toml")) -> None:
    """Stop an agent politely and start it again (its runs resume from the journal)."""
    _control(config, "restart", agent)
