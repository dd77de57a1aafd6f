"""Which tool calls need a person first, and the ``ask_human`` tool.

A call needs approval when its tool says ``approval="required"`` or an approval rule of its agent
names the tool (``AgentSpec.approvals``, from ``[[approvals]]`` in ``beamish.toml``); a rule may add a
condition on the arguments (``if_args``: each named argument equals the value given) or on the run's
cost so far (``if_cost_over``). The first rule that matches sets the gate's policy: who may decide,
how long it waits, and what its expiry does. A ``once`` effect's expiry default is ``deny``: it is
never approved because nobody answered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from beamish._exceptions import SpecError, ToolError
from beamish.agent._gates import GatePolicy
from beamish.agent._messages import ToolSchema

_RULE_KEYS = ("tool", "approvers", "expires_after_s", "on_expiry", "escalate_to", "if_args", "if_cost_over")


def _names(owner: str, key: str, value: Any) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise SpecError(f"{owner}: {key}={value!r} is invalid: expected a list of names like ['alice']")
    return tuple(value)


@dataclass(frozen=True)
class ApprovalRule:
    """``tool`` of this agent needs approval, when ``if_args`` and ``if_cost_over`` (if set) hold."""

    tool: str
    approvers: tuple[str, ...] = ()
    expires_after_s: float = 86_400.0
    on_expiry: str = "deny"
    escalate_to: tuple[str, ...] = ()
    if_args: Mapping[str, Any] = field(default_factory=dict)
    if_cost_over: float | None = None

    def __post_init__(self) -> None:
        owner = f"approval rule for tool {self.tool!r}"
        if not isinstance(self.tool, str) or not self.tool:
            raise SpecError(f"approval rule: tool={self.tool!r} is invalid: expected a tool name")
        object.__setattr__(self, "approvers", _names(owner, "approvers", self.approvers))
        object.__setattr__(self, "escalate_to", _names(owner, "escalate_to", self.escalate_to))
        exp = self.expires_after_s
        if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp) or exp <= 0:
            raise SpecError(f"{owner}: expires_after_s={exp!r} is invalid: expected seconds > 0")
        if self.on_expiry not in ("deny", "escalate"):
            raise SpecError(
                f"{owner}: on_expiry={self.on_expiry!r} is invalid: expected 'deny' or 'escalate'"
            )
        if self.on_expiry == "escalate" and not self.escalate_to:
            raise SpecError(f"{owner}: on_expiry='escalate' needs escalate_to (who decides next)")
        if not isinstance(self.if_args, Mapping):
            raise SpecError(f"{owner}: if_args={self.if_args!r} is invalid: expected a table of values")
        object.__setattr__(self, "if_args", dict(self.if_args))
        cost = self.if_cost_over
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0):
            raise SpecError(f"{owner}: if_cost_over={cost!r} is invalid: expected dollars >= 0")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "approval rule") -> ApprovalRule:
        unknown = sorted(set(data) - set(_RULE_KEYS))
        if unknown:
            raise SpecError(f"{where}: unknown key(s) {unknown}; known: {list(_RULE_KEYS)}")
        if "tool" not in data:
            raise SpecError(f"{where}: needs tool = 'NAME' (the tool that needs approval)")
        return cls(**dict(data))

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "approvers": list(self.approvers),
            "expires_after_s": self.expires_after_s,
            "on_expiry": self.on_expiry,
            "escalate_to": list(self.escalate_to),
            "if_args": dict(self.if_args),
            "if_cost_over": self.if_cost_over,
        }

    def matches(self, tool: str, args: Mapping[str, Any], cost_usd: float | None) -> bool:
        if tool != self.tool or any(args.get(k) != v for k, v in self.if_args.items()):
            return False
        return self.if_cost_over is None or (cost_usd is not None and cost_usd > self.if_cost_over)

    def policy(self) -> GatePolicy:
        on_expiry: Literal["deny", "escalate"] = "escalate" if self.on_expiry == "escalate" else "deny"
        return GatePolicy(self.approvers, float(self.expires_after_s), on_expiry, self.escalate_to)


def parse_rules(values: Any, owner: str) -> tuple[ApprovalRule, ...]:
    """``AgentSpec.approvals``: rules or their mappings, checked."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise SpecError(f"{owner}: approvals={values!r} is invalid: expected a list of rules")
    return tuple(
        v if isinstance(v, ApprovalRule) else ApprovalRule.from_mapping(v, f"{owner}: approvals[{i}]")
        for i, v in enumerate(values)
    )


def needs_cost(rules: Sequence[ApprovalRule], tool: str) -> bool:
    """Whether deciding on ``tool`` needs the run's cost so far (one read of the store)."""
    return any(r.tool == tool and r.if_cost_over is not None for r in rules)


def gate_policy(
    target: Any, rules: Sequence[ApprovalRule], tool: str, args: Mapping[str, Any], cost_usd: float | None
) -> GatePolicy | None:
    """The policy of the gate this call must pass, or None when it needs no one."""
    for rule in rules:
        if rule.matches(tool, args, cost_usd):
            return rule.policy()
    if getattr(target, "approval", None) == "required" or isinstance(target, AskHumanTool):
        return GatePolicy()
    return None


class AskHumanTool:
    """``ask_human``: a durable question to a person; the answer is the tool's result.

    Listed as ``"ask_human"`` in an agent's tools. The run waits (holding only its rows) until
    someone answers with ``beamish answer ID TEXT`` or ``company.answer(ID, TEXT)``."""

    name = "ask_human"
    effect = "read"

    def schema(self) -> ToolSchema:
        return ToolSchema(
            name=self.name,
            description=(
                "Ask a person a question and wait for the answer (it may take hours). Use it only for "
                "what no tool or agent can tell you."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "The question, self-contained."}
                },
                "required": ["question"],
            },
        )

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        question = arguments.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ToolError("ask_human needs a non-empty 'question' string")
        return {"question": question}
