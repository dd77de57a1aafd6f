"""The public API is pinned: every exported name exists, is documented, and nothing private leaks."""

import inspect

import beamish
import beamish.testing


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
    for module in (beamish, beamish.testing):
        for name in module.__all__:
            assert not name.startswith("_") or name == "__version__", name


def test_exported_classes_claim_a_public_module_path() -> None:
    """Users see ``beamish.X``, never ``beamish._private.X``, in reprs and docs."""
    for name in beamish.__all__:
        obj = getattr(beamish, name)
        if inspect.isclass(obj):
            assert obj.__module__ == "beamish", f"{name}.__module__ is {obj.__module__}"
