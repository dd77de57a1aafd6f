"""Versioned agent definitions in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from beamish import AgentSpec
from beamish._exceptions import SpecError
from beamish.journal import open_store
from beamish.upgrade import PROPOSABLE, Versions, apply_changes, diff
from beamish.upgrade._versions import definition_of, spec_of

pytestmark = pytest.mark.timeout(30)


def _spec(instructions: str = "Book every transaction once.") -> AgentSpec:
    return AgentSpec("accountant", instructions, "scripted:books.json", isolation="task")


async def test_every_change_is_a_new_version_with_author_reason_and_one_active(store_url: str) -> None:
    async with await open_store(store_url) as store:
        versions = Versions(store)
        first = await versions.record("accountant", definition_of(_spec()), author="config", reason="start")
        changed = apply_changes(first.definition, {"instructions": "Book twice a day."})
        second = await versions.record("accountant", changed, author="person:ann", reason="cadence")
        assert (first.version, second.version) == (1, 2)
        history = await versions.history("accountant")
        assert [(v.version, v.state, v.author) for v in history] == [
            (1, "superseded", "config"),
            (2, "active", "person:ann"),
        ]
        assert diff(history[0].definition, history[1].definition) == [
            ("instructions", "Book every transaction once.", "Book twice a day.")
        ]
        assert spec_of(second).version == 2 and spec_of(second).instructions == "Book twice a day."
        await versions.activate("accountant", 1, previous_state="rolled_back")
        active = await versions.active("accountant")
        assert active is not None and active.version == 1
        assert (await versions.get("accountant", 2)).state == "rolled_back"


async def test_a_proposal_recorded_twice_under_one_key_is_one_version(store_url: str) -> None:
    async with await open_store(store_url) as store:
        versions = Versions(store)
        await versions.record("accountant", definition_of(_spec()), author="config", reason="start")
        again = [
            await versions.record(
                "accountant",
                definition_of(_spec("Book hourly.")),
                author="agent:improver",
                reason="faster books",
                state="proposed",
                idem_key="propose:run-1:0",
            )
            for _ in range(2)
        ]
        assert again[0] == again[1] and again[0].version == 2
        assert [v.version for v in await versions.proposed()] == [2]


async def test_bad_versions_and_changes_are_refused_by_name(store_url: str) -> None:
    async with await open_store(store_url) as store:
        versions = Versions(store)
        first = await versions.record("accountant", definition_of(_spec()), author="config", reason="start")
        with pytest.raises(SpecError, match="no version 9"):
            await versions.get("accountant", 9)
        with pytest.raises(SpecError, match="author and a reason"):
            await versions.record("accountant", first.definition, author="", reason="")
        with pytest.raises(SpecError, match="'name'"):
            apply_changes(first.definition, {"name": "cfo"})
        with pytest.raises(SpecError, match="'isolation'"):
            apply_changes(first.definition, {"isolation": "process"}, allowed=PROPOSABLE)
        with pytest.raises(SpecError, match="max_tokens"):
            apply_changes(first.definition, {"max_tokens": 0})
        assert [v.version for v in await versions.history("accountant")] == [1]


async def test_nodes_starting_together_record_one_version_of_an_unchanged_agent(store_url: str) -> None:
    import asyncio

    stores = [await open_store(store_url) for _ in range(3)]
    try:
        definition = definition_of(_spec())
        found = await asyncio.gather(
            *(Versions(s).adopt("accountant", definition, author="config", reason="start") for s in stores)
        )
        assert {a.active.version for a in found} == {1} and all(a.replaced is None for a in found)
        again = await Versions(stores[0]).adopt("accountant", definition, author="config", reason="start")
        assert again.active.version == 1
        changed = definition_of(_spec("Book hourly."))
        edited = await asyncio.gather(
            *(Versions(s).adopt("accountant", changed, author="config", reason="edit") for s in stores)
        )
        assert {a.active.version for a in edited} == {2}
        assert [a.replaced.version for a in edited if a.replaced is not None] == [1]  # one rolls it out
        assert [v.version for v in await Versions(stores[2]).history("accountant")] == [1, 2]
    finally:
        for s in stores:
            await s.close()


async def test_a_restart_with_an_unchanged_config_keeps_the_upgrade_made_meanwhile(store_url: str) -> None:
    async with await open_store(store_url) as store:
        versions = Versions(store)
        config = definition_of(_spec())
        started = await versions.adopt("accountant", config, author="config", reason="start")
        assert started.active.version == 1
        improved = apply_changes(config, {"instructions": "Book hourly."}, allowed=PROPOSABLE)
        await versions.record("accountant", improved, author="agent:improver", reason="faster")
        kept = await versions.adopt("accountant", config, author="config", reason="start")
        assert (kept.active.version, kept.active.author, kept.replaced) == (2, "agent:improver", None)
        edited = definition_of(_spec("Book daily."))
        won = await versions.adopt("accountant", edited, author="config", reason="start")
        assert (won.active.version, won.active.state, won.active.author) == (3, "active", "config")
        assert won.replaced is not None and won.replaced.version == 2


async def test_a_restart_keeps_a_rollback_and_never_copies_a_definition_it_has(store_url: str) -> None:
    async with await open_store(store_url) as store:
        versions = Versions(store)
        first = definition_of(_spec())
        await versions.adopt("accountant", first, author="config", reason="start")
        reloaded = definition_of(_spec("Book in one pass."))
        await versions.set_config("accountant", reloaded)  # a reload read this file
        await versions.record("accountant", reloaded, author="person:ann", reason="reload")
        await versions.activate("accountant", 1, previous_state="rolled_back")
        kept = await versions.adopt("accountant", reloaded, author="config", reason="start")
        assert (kept.active.version, kept.replaced) == (1, None)  # the same file: the rollback holds
        assert await versions.config("accountant") == reloaded
        await versions.adopt("accountant", first, author="config", reason="start")  # file edited back
        again = await versions.adopt("accountant", reloaded, author="config", reason="start")
        assert (again.active.version, again.replaced.version if again.replaced else None) == (2, 1)
        assert [(v.version, v.state) for v in await versions.history("accountant")] == [
            (1, "superseded"),
            (2, "active"),
        ]
        await versions.put_on_probation("accountant", 2, fallback=1, since=5.0)
        on_trial = await versions.active("accountant")
        assert on_trial is not None and (on_trial.fallback, on_trial.trial_since) == (1, 5.0)
        await versions.set_state("accountant", 2, "active", "passed probation")
        passed = await versions.active("accountant")
        assert passed is not None and (passed.fallback, passed.trial_since) == (None, None)


def test_a_proposal_cannot_switch_an_agents_watchdog_off_but_a_person_may() -> None:
    definition = definition_of(_spec())  # a default spec: protected
    with pytest.raises(SpecError, match="cannot switch an agent's watchdog off"):
        apply_changes(definition, {"watchdog": None}, allowed=PROPOSABLE)
    assert apply_changes(definition, {"watchdog": None})["watchdog"] is None
    tighter = apply_changes(definition, {"watchdog": {"max_steps": 20}}, allowed=PROPOSABLE)
    assert tighter["watchdog"]["data"]["max_steps"] == 20
