"""The ``beamish`` command line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from beamish.runtime._zygote_client import prestart

if TYPE_CHECKING:
    from beamish.cli._app import app

__all__ = ["app", "main"]

#: What every agent process needs: the process template imports it while the command line loads.
AGENT_MODULES = ("beamish.agent._agent", "beamish.agent._loop", "beamish.agent.models._scripted")


def main() -> None:
    """The console script. ``beamish run`` (and ``demo``) starts its agents' process template first
    thing, so the template's interpreter start and imports overlap the command line's own (see
    ``prestart``)."""
    if sys.argv[1:2] in (["run"], ["demo"]):
        prestart(AGENT_MODULES)
    from beamish.cli._app import main as app_main  # lazy: typer and all commands, after the prestart

    app_main()


def __getattr__(name: str) -> Any:
    if name == "app":
        from beamish.cli._app import app  # lazy: the typer app, loaded by main() after the prestart

        return app
    raise AttributeError(f"module 'beamish.cli' has no attribute {name!r}")
