"""A usage error — a missing argument, a bad value, an unknown command or option — is one line that
names what is wrong and the usage, with exit code 2 (click's), never a boxed panel."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from beamish.cli import app

pytestmark = pytest.mark.timeout(30)
runner = CliRunner()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["submit"],
            "error: beamish submit: missing argument 'agent'; usage: beamish submit [OPTIONS] {agent} "
            "{task} (more: beamish submit --help)",
        ),
        (
            ["nosuch"],
            "error: beamish: no such command 'nosuch'; usage: beamish [OPTIONS] COMMAND [ARGS]... "
            "(more: beamish --help)",
        ),
        (
            ["memory", "nosuch"],
            "error: beamish memory: no such command 'nosuch'; usage: beamish memory [OPTIONS] COMMAND "
            "[ARGS]... (more: beamish memory --help)",
        ),
        (
            ["--bogus"],
            "error: beamish: no such option: --bogus; usage: beamish [OPTIONS] COMMAND [ARGS]... "
            "(more: beamish --help)",
        ),
    ],
    ids=["missing-argument", "unknown-command", "unknown-subcommand", "unknown-option"],
)
def test_a_usage_error_is_one_line_with_exit_code_2(argv: list[str], expected: str) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.strip()] == [expected]


def test_a_bad_value_names_the_option_and_the_usage_in_one_line() -> None:
    result = runner.invoke(app, ["run", "--health", "abc"])
    assert result.exit_code == 2
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("error: beamish run: invalid value for '--health': ")
    assert line.endswith("; usage: beamish run [OPTIONS] [[CONFIG]] (more: beamish run --help)")
    assert "╭" not in result.output


def test_a_mistyped_command_keeps_clicks_suggestions() -> None:
    result = runner.invoke(app, ["statu"])
    assert result.exit_code == 2
    assert "error: beamish: no such command 'statu'. Did you mean 'status'" in result.output
