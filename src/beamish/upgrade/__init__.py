"""Live upgrades: versioned agent definitions, ``reload`` by OTP's rules, and the rollback guard."""

from beamish._exports import claim_public_module as _claim_public_module
from beamish.upgrade._probation import ProbationRules
from beamish.upgrade._reload import ReloadReport, reconcile
from beamish.upgrade._tool import propose_upgrade
from beamish.upgrade._upgrader import PROPOSABLE, Upgrader, apply_changes
from beamish.upgrade._versions import AgentVersion, Versions, diff

__all__ = [
    "PROPOSABLE",
    "AgentVersion",
    "ProbationRules",
    "ReloadReport",
    "Upgrader",
    "Versions",
    "apply_changes",
    "diff",
    "propose_upgrade",
    "reconcile",
]

_claim_public_module(globals(), __all__, __name__)
