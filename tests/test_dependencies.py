"""Every requirement in pyproject.toml has a tested range: a ceiling below the next major, so a
fresh install tomorrow gets the majors CI passed with, not whatever was released tonight."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) for the build system, the runtime, and every extra (dev and bench too),
    leaving out the extras that name beamish itself."""
    data = tomllib.loads(PYPROJECT.read_text())
    found = [("build-system", Requirement(r)) for r in data["build-system"]["requires"]]
    found += [("dependencies", Requirement(r)) for r in data["project"]["dependencies"]]
    for extra, reqs in data["project"]["optional-dependencies"].items():
        found += [(f"extra {extra!r}", Requirement(r)) for r in reqs]
    return [(where, req) for where, req in found if req.name != "beamish"]


def ceiling(req: Requirement) -> Version | None:
    """The version the requirement stops at (``<V``, ``<=V``, ``~=V``, ``==V``, ``==V.*``)."""
    ceilings: list[Version] = []
    for spec in req.specifier:
        wildcard = spec.version.endswith(".*")
        version = Version(spec.version.removesuffix(".*"))
        if spec.operator == "~=" or (spec.operator == "==" and wildcard):
            parts = version.release[:-1] if spec.operator == "~=" else version.release
            ceilings.append(Version(".".join(map(str, (*parts[:-1], parts[-1] + 1)))))
        elif spec.operator in ("<", "<=", "==", "==="):
            ceilings.append(version)
    return min(ceilings, default=None)


def next_major(version: Version) -> Version:
    """The next release that may break: ``X+1`` from ``X.y``, ``0.(y+1)`` from ``0.y`` (semver)."""
    if version.major == 0:
        return Version(f"0.{version.minor + 1}")
    return Version(f"{version.major + 1}")


def installed(name: str) -> Version | None:
    try:
        return Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        return None


def test_the_pyproject_has_requirements_to_check() -> None:
    names = {req.name for _, req in requirements()}
    assert {"pydantic", "croniter", "sentry-sdk", "pytest", "apscheduler", "hatchling"} <= names


def test_every_requirement_has_an_upper_bound() -> None:
    unbounded = [f"{where}: {req}" for where, req in requirements() if ceiling(req) is None]
    assert unbounded == [], "give each a ceiling below its next major, e.g. 'croniter>=2.0,<8'"


@pytest.mark.parametrize(("where", "req"), requirements(), ids=lambda v: str(v))
def test_the_installed_version_is_inside_its_range_and_the_ceiling_is_its_next_major(
    where: str, req: Requirement
) -> None:
    """The range holds what CI installed and tested, and reaches no further than the next major
    of it (a ceiling two majors up would admit a major nobody tested)."""
    version = installed(req.name)
    if version is None:
        pytest.skip(f"{req.name} is not installed here ({where})")
    assert req.specifier.contains(version, prereleases=True), f"{where}: {req} excludes installed {version}"
    top = ceiling(req)
    assert top is not None, f"{where}: {req} has no ceiling"
    assert top <= next_major(version), f"{where}: {req} reaches past {next_major(version)}"


def test_a_requirement_without_a_ceiling_is_caught() -> None:
    assert ceiling(Requirement("croniter>=2.0")) is None
    assert ceiling(Requirement("croniter>=2.0,<8")) == Version("8")
    assert ceiling(Requirement("typer~=0.29.1")) == Version("0.30")
    assert ceiling(Requirement("ruff==0.17.*")) == Version("0.18")
    assert ceiling(Requirement("sentry-sdk>=2.0,<4")) == Version("4")
