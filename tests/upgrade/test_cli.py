"""``beamish history`` and ``beamish diff`` read an agent's versions from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish.cli._app import app
from beamish.company import attach_upgrades
from beamish.company._company import Company
from beamish.company._tree import CompanyParts

from ._company import script, write_company

pytestmark = pytest.mark.timeout(60)


def test_history_and_diff_show_who_changed_an_agent_why_and_what(tmp_path: Path) -> None:
    model = script(tmp_path / "done.json", [{"text": "Done."}])
    toml = tmp_path / "beamish.toml"
    cfg = write_company(toml, {"lawyer": {"instructions": "Review contracts.", "model": model}})

    async def upgrade() -> None:
        parts = CompanyParts()
        attach_upgrades(parts)
        async with Company(cfg, parts=parts, control=False) as company:
            changes = {"instructions": "Review contracts; flag auto-renewals."}
            await company.upgrader.upgrade("lawyer", author="ann", reason="missed renewals", changes=changes)

    asyncio.run(upgrade())
    runner = CliRunner()
    shown = runner.invoke(app, ["history", "lawyer", "--config", str(toml)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "missed renewals" in shown.output and "ann" in shown.output and "instructions" in shown.output
    changed = runner.invoke(app, ["diff", "lawyer", "1", "2", "--config", str(toml)])
    assert changed.exit_code == 0, changed.output
    assert '- v1: "Review contracts."' in changed.output
    assert '+ v2: "Review contracts; flag auto-renewals."' in changed.output
    missing = runner.invoke(app, ["diff", "lawyer", "1", "7", "--config", str(toml)])
    assert missing.exit_code == 1 and "no version 7" in missing.output
