"""Process titles: ``ps`` and ``top`` show each beamish process for what it is.

A node's processes all run ``python -m …`` and would look alike in ``ps``; an operator looking for
the agent that eats memory wants ``beamish: agent ceo (solo)``. The title names the role and the
company. The company's name travels in the environment (``BEAMISH_TITLE_SCOPE``) because the
template process is started by ``exec`` and agents are forked from it: both inherit the environment
and nothing else. ``setproctitle`` rewrites the command line ``ps`` shows; where it is missing, the
kernel's 15-character ``comm`` (``top``'s default column) is set with ``prctl`` instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

_SCOPE_ENV = "BEAMISH_TITLE_SCOPE"
_PR_SET_NAME = 15


def set_scope(scope: str | None) -> None:
    """Name what this process and the processes it starts belong to (a company's name)."""
    if scope:
        os.environ[_SCOPE_ENV] = scope
    else:
        os.environ.pop(_SCOPE_ENV, None)


def title_for(role: str) -> str:
    """``beamish: ROLE (SCOPE)``, or ``beamish: ROLE`` without a scope."""
    scope = os.environ.get(_SCOPE_ENV)
    return f"beamish: {role} ({scope})" if scope else f"beamish: {role}"


def set_title(role: str) -> str:
    """Show this process as ``beamish: ROLE (SCOPE)``; returns the title. Never fails: a title is a
    courtesy to the operator, not something a process should die of."""
    title = title_for(role)
    try:
        import setproctitle

        setproctitle.setproctitle(title)
        return title
    except ImportError:
        pass
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(title.encode()[:15]), 0, 0, 0)
    return title
