"""The package version, in a core module of its own so that no part of beamish imports the root."""

from __future__ import annotations

__version__ = "0.1.0"
