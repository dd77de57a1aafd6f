"""Signed decision links for notifications: ``approve`` or ``deny`` one gate, as one person, until
a time. The token is ``base64url(claim).base64url(HMAC-SHA256(secret, claim))``; nothing is stored
for it. It is single-use because the gate is: a decided gate refuses every later decision.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from beamish._exceptions import GateError, SpecError

_DECISIONS = ("approve", "deny")


@dataclass(frozen=True)
class LinkClaim:
    """What a verified link may do: ``decision`` on ``gate_id`` as ``by``, before ``expires_at``."""

    gate_id: str
    decision: str
    by: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def sign_link(secret: str, gate_id: str, decision: str, *, by: str, expires_at: float) -> str:
    """A token for ``/links/TOKEN`` on the dashboard."""
    if not secret:
        raise SpecError("a decision link needs a secret (BEAMISH_LINK_SECRET or the dashboard token)")
    if decision not in _DECISIONS:
        raise SpecError(f"a link decides 'approve' or 'deny', got {decision!r}")
    claim = {"g": gate_id, "d": decision, "b": by, "e": expires_at}
    body = json.dumps(claim, sort_keys=True, separators=(",", ":")).encode()
    return f"{_b64(body)}.{_b64(_mac(secret, body))}"


def verify_link(secret: str, token: str, now: float) -> LinkClaim:
    """The link's claim, or :class:`~beamish.errors.GateError` when it is forged, damaged or expired."""
    part, _, sig = token.partition(".")
    try:
        body, given = _unb64(part), _unb64(sig)
    except (ValueError, TypeError):
        raise GateError("this decision link is damaged") from None
    if not secret or not hmac.compare_digest(given, _mac(secret, body)):
        raise GateError("this decision link is not valid (its signature does not match)")
    claim = json.loads(body)
    if float(claim["e"]) <= now:
        raise GateError("this decision link has expired; decide with `beamish approvals` instead")
    return LinkClaim(str(claim["g"]), str(claim["d"]), str(claim["b"]), float(claim["e"]))
