"""The public API is pinned: every exported name exists, is documented, and nothing private leaks."""

import inspect

import pytest

import beamish
import beamish._exceptions
import beamish.errors
import beamish.runtime
import beamish.testing
import beamish.upgrade

#: What an application writes, and nothing else, by group: lower-level names live in beamish.runtime,
#: every error in beamish.errors (the common ones are here too), upgrades in beamish.upgrade.
TOP_LEVEL = {
    "runtime": "Actor ActorRef Backoff ChildSpec Down Exit Ignore Node SupervisorRef SupervisorSpec",
    "exit reasons": "ContextFull Crashed ExitReason Hung Killed Looping MemoryExceeded Normal OverBudget "
    "Shutdown",
    "agents": "AgentSpec BreakerPolicy Budget ContextLimit McpServer Policy Price RetryPolicy RunResult "
    "ToolContext Watchdog tool",
    "people in the loop": "ApprovalRule Gate",
    "bring your own": "RunContext current_run durable step",
    "bus and schedules": "Mailboxes PubSub Schedule SchedulerActor",
    "common errors": "BeamishError SpecError ConfigError ActorExited CallTimeout StartFailed StoreError "
    "ToolError ModelError",
    "version": "__version__",
}
PUBLIC = (beamish, beamish.errors, beamish.runtime, beamish.testing, beamish.upgrade)


def test_the_top_level_is_the_curated_list() -> None:
    names = [name for group in TOP_LEVEL.values() for name in group.split()]
    assert sorted(beamish.__all__) == sorted(names)
    assert len(beamish.__all__) == 52


def test_errors_holds_every_beamish_error_and_the_control_flow_signals() -> None:
    defined = {
        name
        for name, obj in vars(beamish._exceptions).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("beamish")
    }
    assert defined == set(beamish.errors.__all__)
    assert {"BeamishError", "StopActor", "PauseRun", "AbortRun"} <= defined
    for name in beamish.errors.__all__:
        assert getattr(beamish.errors, name) is getattr(beamish._exceptions, name)
        assert not issubclass(getattr(beamish.errors, name), Exception) or issubclass(
            getattr(beamish.errors, name), beamish.errors.BeamishError
        ), name
    for name in beamish.__all__:
        obj = getattr(beamish, name)
        if inspect.isclass(obj) and issubclass(obj, beamish.errors.BeamishError):
            assert obj is getattr(beamish.errors, name), name


def test_names_that_left_the_top_level_have_a_public_home() -> None:
    assert beamish.runtime.SYSTEM_CLOCK is not None and beamish.runtime.exit_from_json is not None
    for name in ("ChildInfo", "Clock", "EventStream", "watch_loop"):
        assert name in beamish.runtime.__all__ and not hasattr(beamish, name), name
    for name in ("Upgrader", "ProbationRules"):
        assert name in beamish.upgrade.__all__ and not hasattr(beamish, name), name
        assert getattr(beamish.upgrade, name).__module__ == "beamish.upgrade"
    for name in ("Fenced", "UnknownOutcome", "ModelTimeout"):
        assert not hasattr(beamish, name) and name in beamish.errors.__all__, name


def test_all_is_sorted_and_unique() -> None:
    names = [n for n in beamish.__all__ if n != "__version__"]
    assert len(names) == len(set(names))
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in beamish.__all__:
        obj = getattr(beamish, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"beamish.{name} has no docstring"


def test_no_private_name_leaks_into_all() -> None:
    for module in PUBLIC:
        for name in module.__all__:
            assert not name.startswith("_") or name == "__version__", name


def test_exported_classes_claim_a_public_module_path() -> None:
    """Users see ``beamish.X`` or ``beamish.errors.X``, never ``beamish._private.X``, in reprs and docs."""
    for name in beamish.__all__:
        obj = getattr(beamish, name)
        if inspect.isclass(obj):
            home = "beamish.errors" if name in beamish.errors.__all__ else "beamish"
            assert obj.__module__ == home, f"{name}.__module__ is {obj.__module__}"
    for name in beamish.errors.__all__:
        assert getattr(beamish.errors, name).__module__ == "beamish.errors", name


@pytest.mark.parametrize(
    "module", [beamish.errors, beamish.runtime, beamish.upgrade], ids=lambda m: m.__name__
)
def test_every_name_of_a_public_namespace_exists_and_is_documented(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{module.__name__}.{name} has no docstring"  # type: ignore[attr-defined]
