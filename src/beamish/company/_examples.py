"""Where the shipped solo company lives: inside the wheel, or ``examples/`` in a source checkout."""

from __future__ import annotations

from pathlib import Path


def solo_company_dir() -> Path:
    """The directory holding the 8-agent solo company (``beamish.toml``, its tools and scripts)."""
    package = Path(__file__).resolve().parents[1]  # the beamish package directory
    for candidate in (
        package / "_examples" / "solo_company",  # installed from a wheel (force-included)
        package.parents[1] / "examples" / "solo_company",  # editable install / source checkout
    ):
        if (candidate / "beamish.toml").is_file():
            return candidate
    raise FileNotFoundError("the solo company example is not installed with this beamish")
