# ruff: noqa: E501  (exact messages are the point of this table; they are kept whole)
"""A bad config starts nothing and says exactly what is wrong: file, key path, expectation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamish import ConfigError
from beamish.company import load_config, load_config_data
from beamish.company._tree import CompanyParts, agent_spec

pytestmark = pytest.mark.timeout(20)

GOOD_AGENT = {"instructions": "Run the company.", "model": "anthropic:claude-sonnet-4-5"}
ENTRY_AGENT = {"entry": "asyncio:sleep", "model": "openai:gpt-4o-mini"}


def config(**tables: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"agents": {"ceo": dict(GOOD_AGENT), "cfo": dict(GOOD_AGENT)}}
    for key, value in tables.items():
        data[key] = value
    return data


def agent(**fields: Any) -> dict[str, Any]:
    return {"agents": {"ceo": {**GOOD_AGENT, **fields}, "cfo": dict(GOOD_AGENT)}}


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("no agents table", {}, "agents: required key is missing"),
    (
        "an agent without a model",
        {"agents": {"ceo": {"instructions": "x"}}},
        "agents.ceo.model: required key is missing",
    ),
    (
        "an unknown top-level table",
        {**config(), "stores": {}},
        "stores: unknown key (did you mean 'store'? expected one of: company, store, memory, budget, tree, agents, "
        "approvals, alerts, limits, telemetry, dashboard)",
    ),
    (
        "a typo in a budget key",
        agent(budget={"per_dya_usd": 3}),
        "agents.ceo.budget.per_dya_usd: unknown key (did you mean 'per_day_usd'? expected one of: per_run_usd, "
        "per_day_usd, per_month_usd, total_usd, tz, warn_at)",
    ),
    (
        "an unknown key like no known one",
        agent(budget={"zzz": 3}),
        "agents.ceo.budget.zzz: unknown key (expected one of: per_run_usd, per_day_usd, per_month_usd, "
        "total_usd, tz, warn_at)",
    ),
    (
        "a negative budget",
        agent(budget={"per_day_usd": -1}),
        "agents.ceo.budget.per_day_usd: expected a number ≥ 0, got -1",
    ),
    (
        "a budget given as text",
        agent(budget={"per_run_usd": "lots"}),
        "agents.ceo.budget.per_run_usd: expected a number, got 'lots'",
    ),
    (
        "an unknown isolation",
        agent(isolation="thread"),
        "agents.ceo.isolation: expected one of 'task' or 'process', got 'thread'",
    ),
    (
        "an unknown restart type",
        agent(restart="always"),
        "agents.ceo.restart: expected one of 'permanent', 'transient' or 'temporary', got 'always'",
    ),
    (
        "an unknown per-reason action",
        agent(policy={"on_loop": "retry"}),
        "agents.ceo.policy.on_loop: expected one of 'restart', 'pause', 'stop' or 'escalate', got 'retry'",
    ),
    (
        "a restart policy for loops, which replay would walk straight back into",
        agent(policy={"on_loop": "restart"}),
        "agents.ceo.policy: Policy on_loop='restart' is not allowed (a restart replays the journal straight back "
        "into the loop); expected one of ['pause', 'stop', 'escalate']",
    ),
    (
        "a zero hang timeout",
        agent(watchdog={"hang_after_s": 0}),
        "agents.ceo.watchdog.hang_after_s: expected a number > 0, got 0",
    ),
    ("tools given as a string", agent(tools="memory"), "agents.ceo.tools: expected a list, got 'memory'"),
    (
        "a model without a provider",
        agent(model="gpt-4o"),
        "agents.ceo.model: expected 'anthropic:MODEL', 'openai:MODEL' or 'scripted:FILE', got 'gpt-4o'",
    ),
    (
        "an unknown model provider",
        agent(model="gemini:pro"),
        "agents.ceo.model: expected 'anthropic:MODEL', 'openai:MODEL' or 'scripted:FILE', got 'gemini:pro'",
    ),
    (
        "an agent's key below its [agents.X.context] header",
        agent(context={"policy": "trim", "schedules": []}),
        "agents.ceo.context.schedules: unknown key ('schedules' is a key of [agents.ceo]: the keys below a "
        "[agents.ceo.context] header are its own; move [agents.ceo.context] after them)",
    ),
    (
        "a fallback list with a model that is not a string",
        agent(model=["anthropic:claude-sonnet-4-5", 5]),
        "agents.ceo.model[1]: expected a string, got 5",
    ),
    (
        "a fallback list with a model without a provider",
        agent(model=["anthropic:claude-sonnet-4-5", "gpt-4o"]),
        "agents.ceo.model[1]: expected 'anthropic:MODEL', 'openai:MODEL' or 'scripted:FILE', got 'gpt-4o'",
    ),
    ("an empty fallback list", agent(model=[]), "agents.ceo.model: expected at least 1 entry, got none"),
    ("a model that is a number", agent(model=5), "agents.ceo.model: expected a string or a list, got 5"),
    (
        "a schedule deadline in words",
        agent(schedules=[{"cron": "0 9 * * *", "task": "t", "deadline": "5 minutes"}]),
        "agents.ceo.schedules[0].deadline: expected a duration above zero such as '5m', '90s' or 300, "
        "got '5 minutes'",
    ),
    (
        "a schedule deadline that is a list",
        agent(schedules=[{"cron": "0 9 * * *", "task": "t", "deadline": [5]}]),
        "agents.ceo.schedules[0].deadline: expected a string or a number, got a list",
    ),
    (
        "a bad cron expression",
        agent(schedules=[{"cron": "every day", "task": "t"}]),
        "agents.ceo.schedules[0].cron: expected 5 fields (minute hour day month weekday), got 'every day'",
    ),
    (
        "a minute out of range",
        agent(schedules=[{"cron": "61 9 * * *", "task": "t"}]),
        "agents.ceo.schedules[0].cron: minute 61 is out of range 0-59",
    ),
    (
        "a month that is no month",
        agent(schedules=[{"cron": "0 9 * foo *", "task": "t"}]),
        "agents.ceo.schedules[0].cron: month 'foo' is not a number 1-12 or a name (jan, feb, mar, apr, "
        "may, jun, jul, aug, sep, oct, nov, dec)",
    ),
    (
        "a schedule without a task",
        agent(schedules=[{"cron": "0 14 * * *"}]),
        "agents.ceo.schedules[0].task: required key is missing",
    ),
    (
        "an unknown time zone",
        agent(schedules=[{"cron": "0 14 * * *", "task": "t", "tz": "Mars/Olympus"}]),
        "agents.ceo.schedules[0].tz: expected an IANA time zone such as 'UTC' or 'Europe/Lisbon', got 'Mars/Olympus'",
    ),
    (
        "an unknown misfire policy",
        agent(schedules=[{"cron": "0 14 * * *", "task": "t", "misfire": "twice"}]),
        "agents.ceo.schedules[0].misfire: expected one of 'skip', 'once' or 'all', got 'twice'",
    ),
    (
        "an unknown group strategy",
        config(tree={"groups": {"finance": {"agents": ["cfo"], "strategy": "rest_for_two"}}}),
        "tree.groups.finance.strategy: expected one of 'one_for_one', 'one_for_all' or 'rest_for_one', got 'rest_for_two'",
    ),
    (
        "a group naming an unknown agent",
        config(tree={"groups": {"finance": {"agents": ["cfo", "accountant"]}}}),
        "tree.groups.finance.agents[1]: unknown agent 'accountant' (agents: ceo, cfo)",
    ),
    (
        "an agent in two groups",
        config(tree={"groups": {"finance": {"agents": ["cfo"]}, "ops": {"agents": ["cfo"]}}}),
        "tree.groups.ops.agents[0]: agent 'cfo' is already in group 'finance'",
    ),
    (
        "a group named like an agent",
        config(tree={"groups": {"cfo": {"agents": ["ceo"]}}}),
        "tree.groups.cfo: a group cannot have the name of an agent",
    ),
    (
        "a store that is neither SQLite nor PostgreSQL",
        config(store={"url": "mysql://db"}),
        "store.url: expected sqlite:///PATH or postgresql://…, got 'mysql://db'",
    ),
    (
        "a tool module that does not exist",
        agent(tools=["no_such_module_xyz:post"]),
        "agents.ceo.tools[0]: cannot import module 'no_such_module_xyz': ModuleNotFoundError: No module named "
        "'no_such_module_xyz'",
    ),
    (
        "a tool function that does not exist",
        agent(tools=["json:no_such_function"]),
        "agents.ceo.tools[0]: module 'json' has no attribute 'no_such_function'",
    ),
    (
        "a plain function that is not a beamish tool",
        agent(tools=["json:dumps"]),
        "agents.ceo.tools[0]: 'json:dumps' is not a beamish tool (decorate it with @beamish.tool)",
    ),
    (
        "a tool that is not callable",
        agent(tools=["json:__doc__"]),
        "agents.ceo.tools[0]: 'json:__doc__' is not a tool (not callable)",
    ),
    (
        "a bare tool name that is not built in",
        agent(tools=["twitter"]),
        "agents.ceo.tools[0]: expected 'memory', 'consult', 'ask_human' or an import path 'module:function', got 'twitter'",
    ),
    (
        "the memory tool with memory off",
        {**agent(tools=["memory"]), "memory": {"enabled": False}},
        "agents.ceo.tools[0]: 'memory' needs [memory] enabled = true",
    ),
    (
        "an agent with neither instructions nor entry",
        {"agents": {"ceo": {"model": "openai:gpt-4o-mini"}}},
        "agents.ceo.instructions: required key is missing (or set entry = 'module:function')",
    ),
    (
        "an entry agent with instructions too",
        agent(entry="asyncio:sleep"),
        "agents.ceo.entry: an entry agent takes no instructions (its code holds them); remove one",
    ),
    (
        "an entry agent with tools",
        {"agents": {"ceo": {**ENTRY_AGENT, "tools": ["memory"]}}},
        "agents.ceo.entry: an entry agent's tools belong to its own code; leave tools empty",
    ),
    (
        "an entry that is not an import path",
        {"agents": {"ceo": {**ENTRY_AGENT, "entry": "run_agent"}}},
        "agents.ceo.entry: expected an import path 'module:function', got 'run_agent'",
    ),
    (
        "an entry module that cannot be imported",
        {"agents": {"ceo": {**ENTRY_AGENT, "entry": "no_such_module_xyz:run"}}},
        "agents.ceo.entry: cannot import module 'no_such_module_xyz': ModuleNotFoundError: No module named "
        "'no_such_module_xyz'",
    ),
    (
        "an entry function that does not exist",
        {"agents": {"ceo": {**ENTRY_AGENT, "entry": "asyncio:no_such_function"}}},
        "agents.ceo.entry: module 'asyncio' has no attribute 'no_such_function'",
    ),
    (
        "an entry that is not an async function",
        {"agents": {"ceo": {**ENTRY_AGENT, "entry": "json:dumps"}}},
        "agents.ceo.entry: 'json:dumps' is not an async function (task, ctx) -> answer",
    ),
    (
        "an agent name with capitals",
        {"agents": {"CEO": GOOD_AGENT, "cfo": GOOD_AGENT}},
        "agents.CEO: expected a lowercase name (a-z, 0-9, _ or -, starting with a letter)",
    ),
    (
        "a prices key the agent does not name (a typo)",
        agent(
            model=["anthropic:claude-sonnet-4-5", "openai:my-local-model"],
            prices={"openai:my-locl-model": {"input_per_mtok": 0, "output_per_mtok": 0}},
        ),
        """agents.ceo.prices."openai:my-locl-model": prices a model the agent does not name (its models: ['anthropic:claude-sonnet-4-5', 'openai:my-local-model'])""",
    ),
    (
        "the first model priced by price and by prices",
        agent(
            price={"input_per_mtok": 1, "output_per_mtok": 2},
            prices={"anthropic:claude-sonnet-4-5": {"input_per_mtok": 1, "output_per_mtok": 2}},
        ),
        """agents.ceo.prices."anthropic:claude-sonnet-4-5": the first model is priced twice (price and prices): keep one""",
    ),
    (
        "a prices entry without its output price",
        agent(prices={"anthropic:claude-sonnet-4-5": {"input_per_mtok": 1}}),
        "agents.ceo.prices.anthropic:claude-sonnet-4-5.output_per_mtok: required key is missing",
    ),
    (
        "a port out of range",
        config(dashboard={"port": 70000}),
        "dashboard.port: expected a number ≤ 65535, got 70000",
    ),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_each_bad_config_is_refused_with_its_exact_message(
    case: str, data: dict[str, Any], message: str, tmp_path: Path
) -> None:
    source = tmp_path / "beamish.toml"
    with pytest.raises(ConfigError) as info:
        load_config_data(data, source, shown="beamish.toml")
    assert str(info.value) == f"beamish.toml: {message}"


def test_a_scripted_model_file_that_does_not_exist_is_named_with_its_resolved_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_data(
            agent(model="scripted:models/ceo.jsonl"), tmp_path / "beamish.toml", shown="beamish.toml"
        )
    assert (
        str(info.value)
        == f"beamish.toml: agents.ceo.model: scripted model file not found: {tmp_path}/models/ceo.jsonl"
    )


def test_every_problem_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    data = config(store={"url": "mysql://db"}, tree={"groups": {"finance": {"agents": ["nobody"]}}})
    with pytest.raises(ConfigError) as info:
        load_config_data(data, tmp_path / "beamish.toml", shown="beamish.toml")
    assert str(info.value).splitlines() == [
        "beamish.toml: store.url: expected sqlite:///PATH or postgresql://…, got 'mysql://db'",
        "beamish.toml: tree.groups.finance.agents[0]: unknown agent 'nobody' (agents: ceo, cfo)",
    ]


def test_invalid_toml_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "beamish.toml"
    path.write_text('[agents.ceo]\ninstructions = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: invalid TOML: ")
    assert "line 2" in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml: no such file$"):
        load_config(tmp_path / "nowhere.toml")


def test_a_config_error_is_a_spec_error_and_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_config_data({}, tmp_path / "beamish.toml")


def test_the_solo_company_loads_with_its_groups_tools_and_paths_resolved() -> None:
    from beamish.company._examples import solo_company_dir

    base = solo_company_dir()
    cfg = load_config(base / "beamish.toml")
    assert list(cfg.agents) == ["ceo", "coo", "cfo", "accountant", "marketing", "lawyer", "cto", "improver"]
    assert cfg.file.tree.groups["finance"].strategy == "rest_for_one"
    assert cfg.file.tree.groups["finance"].agents == ["cfo", "accountant"]
    assert cfg.group_of("accountant") == "finance"
    assert cfg.store_url == f"sqlite:///{base / 'state' / 'beamish.db'}"
    assert cfg.memory_file == base / "state" / "memory.jsonl"
    names = [getattr(t, "name", t) for t in cfg.agents["marketing"].tools]
    assert names == ["memory", "consult", "post_update"]
    assert cfg.agents["marketing"].section.schedules[0].cron == "0 14 * * *"


def test_an_approval_rule_for_an_unknown_agent_is_refused(tmp_path: Path) -> None:
    data = {**config(), "approvals": [{"agent": "nobody", "tool": "post"}]}
    with pytest.raises(ConfigError, match=r"approvals\[0\]\.agent: unknown agent 'nobody'"):
        load_config_data(data, tmp_path / "beamish.toml")


def test_an_approval_rule_reaches_its_agents_spec(tmp_path: Path) -> None:
    rule = {"agent": "ceo", "tool": "post", "approvers": ["owner"], "if_cost_over": 0.5}
    cfg = load_config_data({**config(), "approvals": [rule]}, tmp_path / "beamish.toml")
    spec = agent_spec(cfg.agents["ceo"], cfg, CompanyParts())
    assert [(r.tool, r.approvers, r.if_cost_over) for r in spec.approvals] == [("post", ("owner",), 0.5)]


@pytest.mark.parametrize(
    ("sink", "problem"),
    [
        ({"name": "ops", "type": "webhook"}, r"alerts\[0\]\.url: a webhook sink needs url"),
        (
            {"name": "mail", "type": "email", "host": "smtp.example.com"},
            r"an email sink needs host, sender and to",
        ),
        ({"name": "ops", "type": "pager", "url": "https://x"}, r"alerts\[0\]\.type"),
        (
            {"name": "ops", "type": "slack", "url": "https://x", "quiet_hours": "22-7"},
            r"alerts\[0\]\.quiet_hours",
        ),
    ],
)
def test_a_bad_alert_sink_is_refused_naming_the_key(
    tmp_path: Path, sink: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config_data({**config(), "alerts": [sink]}, tmp_path / "beamish.toml")


def test_alert_sinks_become_the_alerts_service(tmp_path: Path) -> None:
    from beamish.company._services import company_parts

    sink = {"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/hook", "quiet_hours": "22:00-07:00"}
    cfg = load_config_data(
        {**config(), "company": {"timezone": "Europe/Paris"}, "alerts": [sink]}, tmp_path / "beamish.toml"
    )
    (service,) = [s for s in company_parts(cfg).services if s.id == "alerts"]
    (route,) = service.kwargs["routes"]
    assert (route.sink, route.quiet, route.tz) == ("ops", (22 * 60, 7 * 60), "Europe/Paris")


def test_a_prices_table_prices_each_model_it_names_and_round_trips_through_the_budgets_json(
    tmp_path: Path,
) -> None:
    from beamish import Budget, Price
    from beamish.company._tree import agent_budget

    (tmp_path / "primary.json").write_text('{"turns": []}')
    (tmp_path / "backup.json").write_text('{"turns": []}')
    source = tmp_path / "beamish.toml"
    source.write_text(
        "[agents.ceo]\n"
        'instructions = "Run the company."\n'
        'model = ["scripted:primary.json", "scripted:backup.json", "openai:my-local-model"]\n'
        "price = { input_per_mtok = 1.0, output_per_mtok = 2.0 }\n"
        'prices = { "openai:my-local-model" = { input_per_mtok = 0.0, output_per_mtok = 0.0 }, '
        '"scripted:backup.json" = { input_per_mtok = 0.5, output_per_mtok = 0.25 } }\n'
    )
    loaded = load_config(source)
    budget = agent_budget(loaded.agents["ceo"], loaded)
    assert budget.prices == {
        f"scripted:{tmp_path}/primary.json": Price(1.0, 2.0),
        f"scripted:{tmp_path}/backup.json": Price(0.5, 0.25),
        "openai:my-local-model": Price(0.0, 0.0),
    }, "price keeps the first model; the table prices the rest, a scripted key resolved as the model"
    assert Budget.from_mapping(budget.to_json()).prices == budget.prices
