"""One home for "an actor class ↔ its import path": the node names a process child's class by path,
and the child (or the zygote) imports it back.

A class defined in the node's main script is named ``__main__:Name`` and loaded in the child from
the script's file under :data:`MAIN_ALIAS`, so the script's ``if __name__ == "__main__"`` guard stays
false there.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from beamish._exceptions import SpecError
from beamish.runtime._actor import Actor

#: The name the main script is loaded under in the zygote (its ``__main__`` guard stays false).
MAIN_ALIAS = "__beamish_main__"


def resolve(path: str, main_file: str | None = None) -> Any:
    """``"package.module:Outer.Inner"`` → the object, importing the module.

    ``"__main__:Name"`` loads ``main_file`` (the node's main script) as :data:`MAIN_ALIAS` once.
    """
    module_name, _, qualname = path.partition(":")
    obj: Any
    if module_name == "__main__":
        obj = sys.modules.get(MAIN_ALIAS)
        if obj is None:
            if not main_file:
                raise ImportError(f"{path}: the node's main script has no file to load it from")
            spec = importlib.util.spec_from_file_location(MAIN_ALIAS, main_file)
            if spec is None or spec.loader is None:
                raise ImportError(f"{path}: cannot load the main script {main_file!r}")
            obj = importlib.util.module_from_spec(spec)
            sys.modules[MAIN_ALIAS] = obj
            try:
                spec.loader.exec_module(obj)
            except BaseException:
                del sys.modules[MAIN_ALIAS]
                raise
    else:
        obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def actor_path(cls: type, owner: str) -> tuple[str, str | None]:
    """``module:qualname`` of an actor class, and the main script's file when it lives there."""
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise SpecError(
            f"{owner}: start={cls!r} is invalid: expected an Actor subclass for isolation='process'"
        )
    if "<locals>" in cls.__qualname__:
        raise SpecError(
            f"{owner}: start={cls.__qualname__} is defined inside a function; isolation='process' "
            "needs a class at module level (the child imports it by name)"
        )
    main_file = None
    if cls.__module__ == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if main_file is None:
            raise SpecError(
                f"{owner}: start={cls.__qualname__} lives in an interactive __main__; isolation='process' "
                "needs it in a module or a script file"
            )
    return f"{cls.__module__}:{cls.__qualname__}", main_file
