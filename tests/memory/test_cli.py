"""``beamish memory check`` says by its exit code whether a file is clean; ``repair`` fixes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish.cli import app

pytestmark = pytest.mark.timeout(20)

ENTITY = '{"type":"entity","name":"a","entityType":"t","observations":[]}'
DANGLING = '{"type":"relation","from":"a","to":"nowhere","relationType":"r"}'


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["memory", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (ENTITY, 0),
        (ENTITY + "\n{torn", 1),
        (ENTITY + "\n" + ENTITY, 1),
        (ENTITY + "\n" + DANGLING, 3),
    ],
    ids=["clean", "corrupt-line", "duplicate-entity", "dangling-relation"],
)
def test_check_exit_code_says_whether_the_file_is_clean(tmp_path: Path, content: str, code: int) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_text(content)
    exit_code, output = _run("check", str(memory))
    assert exit_code == code, output
    assert memory.read_text() == content  # check never writes


def test_check_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    assert _run("check", str(tmp_path / "missing.jsonl"))[0] == 2


def test_check_reports_a_stray_temp_file_and_repair_removes_it(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_text(ENTITY)
    stray = tmp_path / f"m.jsonl.{'0' * 32}.tmp"
    stray.write_text("half")
    assert _run("check", str(memory))[0] == 1
    assert _run("repair", str(memory))[0] == 0
    assert not stray.exists()
    assert _run("check", str(memory))[0] == 0


def test_repair_quarantines_merges_and_leaves_a_clean_file(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_text(ENTITY + "\n{torn\n" + ENTITY.replace("[]", '["o"]'))
    exit_code, output = _run("repair", str(memory))
    assert exit_code == 0, output
    assert "quarantined lines are in" in output
    assert memory.read_text() == ENTITY.replace("[]", '["o"]')
    assert "{torn" in (tmp_path / "m.jsonl.quarantine").read_text()
    assert _run("check", str(memory))[0] == 0


def test_repair_puts_entities_appended_out_of_place_back_in_the_reference_layout(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    relation = '{"type":"relation","from":"a","to":"b","relationType":"r"}'
    memory.write_text(relation + "\n\n\n" + ENTITY)  # a killed server's appended tail, padded
    assert _run("check", str(memory))[0] == 3  # only the dangling relation is worth reporting
    assert _run("repair", str(memory))[0] == 0
    assert memory.read_text() == ENTITY + "\n" + relation
