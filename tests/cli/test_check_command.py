"""``beamish check``: every problem at once, one line each, with a fix in the file's own words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish.cli import app

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()

FIVE_PROBLEMS = """
[store]
url = "sqlite:///missing/beamish.db"

[memory]
enabled = false

[agents.helper]
instructions = "Help."
model = "scripted:helper.json"
policy = { on_loop = "restrat" }
schedules = [{ cron = "61 9 * * *", task = "Morning." }]

[agents.writer]
instructions = "Write."
model = "openai:gpt-4o-mini"
"""


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def test_a_config_with_five_problems_prints_five_lines_and_exits_1(tmp_path: Path, no_keys: None) -> None:
    config = tmp_path / "beamish.toml"
    config.write_text(FIVE_PROBLEMS)
    (tmp_path / "helper.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 5, result.output
    shown = str(config)
    assert all(line.startswith(f"{shown}: ") for line in lines)
    expected = [
        "agents.helper.policy.on_loop: expected one of",
        "agents.helper.schedules[0].cron: minute 61 is out of range 0-59; fix: cron = ",
        "agents.helper.price: the scripted model has no price (say what it costs, zero included); "
        "fix: add to [agents.helper]: price = { input_per_mtok = …, output_per_mtok = … }",
        "agents.writer.model: 'openai:gpt-4o-mini' needs OPENAI_API_KEY, which is not set; "
        "fix: export OPENAI_API_KEY=…",
        f"store.url: the folder {tmp_path / 'missing'} does not exist",
    ]
    for part in expected:
        assert sum(part in line for line in lines) == 1, (part, result.output)


def test_check_as_json_is_one_document(tmp_path: Path, no_keys: None) -> None:
    config = tmp_path / "beamish.toml"
    config.write_text(FIVE_PROBLEMS)
    result = runner.invoke(app, ["check", "-c", str(config), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and len(data["problems"]) == 5
    assert {"where", "problem", "fix"} == set(data["problems"][0])


def test_a_fresh_minimal_company_checks_clean_and_its_header_names_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "co"])
    assert result.exit_code == 0, result.output
    assert "beamish run -c co/beamish.toml" in result.output
    assert 'beamish submit assistant "What time is it?" --wait -c co/beamish.toml' in result.output
    assert (
        Path("co/beamish.toml").read_text().startswith("# co/beamish.toml: one agent, one tool, one schedule")
    )
    checked = runner.invoke(app, ["check", "-c", "co/beamish.toml"])
    assert checked.exit_code == 0, checked.output
    assert checked.output.strip() == "co/beamish.toml: ok"


@pytest.mark.parametrize("model", ["anthropic", "openai", "local"])
def test_each_real_model_choice_names_the_variable_it_needs(
    tmp_path: Path, no_keys: None, model: str
) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "co"), "--model", model])
    assert result.exit_code == 0, result.output
    key = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "local": "OPENAI_BASE_URL"}[model]
    assert f"export {key}=" in result.output
    checked = runner.invoke(app, ["check", "-c", str(tmp_path / "co" / "beamish.toml")])
    assert checked.exit_code == 1  # the key is not set here
    assert len(checked.output.splitlines()) == 1


def test_an_install_hint_keeps_its_brackets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        "beamish.company._preflight.importlib.util.find_spec",
        lambda name, *a: None if name == "openai" else real(name, *a),
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    runner.invoke(app, ["init", str(tmp_path / "co"), "--model", "openai"])
    config = tmp_path / "co" / "beamish.toml"
    for command in (["check", "-c", str(config)], ["run", "-c", str(config)]):
        result = runner.invoke(app, command)
        assert result.exit_code in (1, 2)
        assert "fix: pip install 'beamish[openai]'" in result.output, result.output


def test_the_solo_template_on_the_scripted_model_checks_clean(tmp_path: Path, no_keys: None) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "solo"), "--template", "solo"])
    assert result.exit_code == 0, result.output
    config = tmp_path / "solo" / "beamish.toml"
    assert config.read_text().startswith(
        f"# {config}: made by `beamish init --template solo --model scripted`"
    )
    from beamish.company import load_config

    loaded = load_config(config)
    assert all(a.model.startswith("scripted:") for a in loaded.agents.values())
    assert all(a.section.price is not None for a in loaded.agents.values())
    from beamish.company._preflight import check_file

    _cfg, problems = check_file(config, {}, servers=False)
    assert problems == []


def _minimal_with_store(tmp_path: Path, url: str) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "co")])
    assert result.exit_code == 0, result.output
    config = tmp_path / "co" / "beamish.toml"
    config.write_text(config.read_text().replace('url = "sqlite:///beamish.db"', f'url = "{url}"'))
    return config


def test_an_unreachable_postgresql_store_is_one_problem(tmp_path: Path) -> None:
    config = _minimal_with_store(tmp_path, "postgresql://postgres@127.0.0.1:1/test")
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert "store.url: cannot reach postgresql://postgres@127.0.0.1:1/test" in line
    assert line.endswith("fix: start PostgreSQL or fix [store] url")


def test_a_reachable_postgresql_store_at_this_beamishs_schema_checks_clean(
    tmp_path: Path, pg_url: str
) -> None:
    import asyncio

    from beamish.journal import open_store

    async def migrate() -> None:
        await (await open_store(pg_url)).close()

    asyncio.run(migrate())  # a journal this beamish wrote, in a schema of its own
    config = _minimal_with_store(tmp_path, pg_url)
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 0, result.output


def test_a_store_written_by_a_newer_beamish_is_named(tmp_path: Path) -> None:
    import asyncio

    from beamish.journal import open_store

    config = _minimal_with_store(tmp_path, "sqlite:///beamish.db")
    db = tmp_path / "co" / "beamish.db"

    async def from_the_future() -> None:
        store = await open_store(f"sqlite:///{db}")
        try:
            await store.execute("UPDATE beamish_meta SET version = 99 WHERE component = 'journal'")
        finally:
            await store.close()

    asyncio.run(from_the_future())
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert "schema 'journal' is at version 99, but this beamish knows only up to" in line
    assert line.endswith("fix: upgrade beamish (pip install -U beamish)")


def test_reload_refuses_a_config_that_would_not_run_before_asking_the_node(tmp_path: Path) -> None:
    config = _minimal_with_store(tmp_path, "sqlite:///beamish.db")
    config.write_text(config.read_text().replace('cron = "0 9 * * *"', 'cron = "0 25 * * *"'))
    result = runner.invoke(app, ["reload", "-c", str(config)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"{config}: 1 problem; nothing was reloaded",
        f"{config}: agents.assistant.schedules[0].cron: hour 25 is out of range 0-23; "
        'fix: cron = "MIN HOUR DAY MONTH WEEKDAY", e.g. cron = "0 9 * * 1-5" (09:00 on weekdays)',
    ]


def test_version_and_a_bad_template_or_model() -> None:
    from beamish import __version__

    assert runner.invoke(app, ["--version"]).output.strip() == __version__
    bad = runner.invoke(app, ["init", "x", "--template", "huge"])
    assert (bad.exit_code, bad.output.strip()) == (
        2,
        "error: --template: expected one of minimal, solo, got 'huge'",
    )
    bad = runner.invoke(app, ["init", "x", "--model", "gemini"])
    assert bad.exit_code == 2
    assert (
        bad.output.strip()
        == "error: --model: expected one of scripted, anthropic, openai, local, got 'gemini'"
    )


def test_the_solo_template_copies_no_state_of_a_run_of_the_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from beamish.company._examples import solo_company_dir

    example = tmp_path / "example"
    shutil.copytree(solo_company_dir(), example)
    (example / "state" / "beamish.db").write_text("a journal of someone's run")
    (example / "outbox").mkdir()
    (example / "outbox" / "effects.jsonl").write_text("{}\n")
    monkeypatch.setattr("beamish.company._scaffold.solo_company_dir", lambda: example)
    result = runner.invoke(app, ["init", str(tmp_path / "co"), "--template", "solo"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "co" / "state").iterdir()) == []
    assert not (tmp_path / "co" / "outbox").exists()
    assert (tmp_path / "co" / "solo_tools.py").is_file() and (
        tmp_path / "co" / "scripts" / "ceo.json"
    ).is_file()


def test_a_bad_context_policy_is_not_given_the_agents_policy_as_its_fix(
    tmp_path: Path, no_keys: None
) -> None:
    config = _minimal_with_store(tmp_path, "sqlite:///beamish.db")
    config.write_text(config.read_text().replace("tools = [", 'context = { policy = "squash" }\ntools = ['))
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{config}: agents.assistant.context.policy: expected one of 'compact', 'trim' or 'fail', "
        "got 'squash'"
    ]


def test_a_scripted_fallback_is_priced_by_the_agents_price_and_checks_clean(
    tmp_path: Path, no_keys: None
) -> None:
    from beamish.company import load_config
    from beamish.company._tree import agent_budget

    config = _minimal_with_store(tmp_path, "sqlite:///beamish.db")
    (config.parent / "scripts" / "backup.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    config.write_text(
        config.read_text().replace(
            'model = "scripted:scripts/assistant.json"',
            'model = ["scripted:scripts/assistant.json", "scripted:scripts/backup.json"]',
        )
    )
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert (result.exit_code, result.output.splitlines()) == (0, [f"{config}: ok"])
    loaded = load_config(config)
    prices = agent_budget(loaded.agents["assistant"], loaded).prices
    assert set(prices) == {
        f"scripted:{config.parent / 'scripts' / name}" for name in ("assistant.json", "backup.json")
    }


def test_an_unpriced_fallback_is_one_line_naming_it_not_a_repeat_of_the_first_models(
    tmp_path: Path, no_keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = _minimal_with_store(tmp_path, "sqlite:///beamish.db")
    config.write_text(
        config.read_text().replace(
            'model = "scripted:scripts/assistant.json"',
            'model = ["scripted:scripts/assistant.json", "openai:my-local-model"]',
        )
    )
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 1
    priced = [line for line in result.output.splitlines() if "price" in line]
    assert priced == [
        f"{config}: agents.assistant.model[1]: the fallback 'openai:my-local-model' has no price "
        "([agents.assistant] price prices only the first model); fix: add to [agents.assistant]: "
        'prices = { "openai:my-local-model" = { input_per_mtok = …, output_per_mtok = … } }'
    ]


def test_the_fix_for_an_unpriced_fallback_makes_the_config_check_clean(
    tmp_path: Path, no_keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = _minimal_with_store(tmp_path, "sqlite:///beamish.db")
    config.write_text(
        config.read_text().replace(
            'model = "scripted:scripts/assistant.json"',
            'model = ["scripted:scripts/assistant.json", "openai:my-local-model"]\n'
            'prices = { "openai:my-local-model" = { input_per_mtok = 0.0, output_per_mtok = 0.0 } }',
        )
    )
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert (result.exit_code, result.output.splitlines()) == (0, [f"{config}: ok"])
