"""Fuzzing the config loader: any file is a valid company or a ConfigError naming the file and key.

Random text, random TOML documents, and the solo company's own config with one value replaced by
a random one (wrong types, unknown keys, bad crons and zones, deep nesting). Nothing else may
escape ``load_config``, and every error names where the problem is.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamish import ConfigError
from beamish.company import load_config
from beamish.company._config import load_config_data
from beamish.company._examples import solo_company_dir

pytestmark = pytest.mark.timeout(90)

EXAMPLE = solo_company_dir() / "beamish.toml"
BASE: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["* * * * *", "61 * * * *", "Mars/Olympus", "UTC", "scripted:nope.json", "../../etc"]),
)
values = st.recursive(
    scalars,
    lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=10), x, max_size=3),
    max_leaves=10,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=values)
def test_one_bad_value_anywhere_in_the_company_config_is_a_config_error(
    tmp_path: Path, path: tuple[Any, ...], value: Any
) -> None:
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    try:
        load_config_data(data, EXAMPLE)
    except ConfigError as exc:
        message = str(exc)
        assert str(EXAMPLE) in message
        named = [str(p) for p in path if isinstance(p, str)]
        assert any(part in message for part in named), f"{path} not named in: {message}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_text_as_a_config_file_is_loaded_or_refused_with_a_config_error(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "beamish.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(st.text(min_size=1, max_size=10), values, min_size=1, max_size=3))
def test_unknown_tables_and_keys_are_named(tmp_path: Path, extra: dict[str, Any]) -> None:
    data = {**copy.deepcopy(BASE), **extra}
    try:
        load_config_data(data, EXAMPLE)
    except ConfigError as exc:
        assert any(k in str(exc) for k in extra if k not in BASE)


@pytest.mark.parametrize("depth", [100, 10_000])
def test_a_deeply_nested_config_is_refused_with_a_config_error(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "beamish.toml"
    path.write_text("x = " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_invalid_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "beamish.toml"
    path.write_bytes(b'[company]\nname = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)
