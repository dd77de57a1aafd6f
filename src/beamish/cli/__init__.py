"""The ``beamish`` command line."""

from beamish.cli._app import app, main

__all__ = ["app", "main"]
