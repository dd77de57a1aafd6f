"""The shape of ``beamish.toml``: one pydantic model per table, unknown keys refused.

The schema states defaults once, here. Values that need the file's location (paths, import paths of
tools) or the whole file (group membership, consult targets) are checked by the loader after this
layer has validated types and ranges.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from beamish.agent import _context, _watchdog
from beamish.agent.models._settings import FIRST_CHUNK_S, NEXT_CHUNK_S

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]
Isolation = Literal["task", "process"]
ReasonAction = Literal["restart", "pause", "stop", "escalate"]
Misfire = Literal["skip", "once", "all"]

NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class _Table(BaseModel):
    """Every table refuses keys it does not know: a typo must not silently mean "default"."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CompanySection(_Table):
    name: str = "company"
    timezone: str = "UTC"


class StoreSection(_Table):
    """Where the journal lives: ``sqlite:///path`` (relative to the config file) or ``postgresql://…``."""

    url: str = "sqlite:///beamish.db"


class MemorySection(_Table):
    """The shared knowledge-graph memory server, a supervised child of the node."""

    enabled: bool = True
    file: str = "memory.jsonl"
    transport: Literal["http"] = "http"  # every agent shares one server process: HTTP on loopback
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0


class BudgetSection(_Table):
    """Spending caps in USD; ``None`` means no cap for that window."""

    per_run_usd: NonNegative | None = None
    per_day_usd: NonNegative | None = None
    per_month_usd: NonNegative | None = None
    total_usd: NonNegative | None = None
    tz: str | None = None
    warn_at: Annotated[float, Field(gt=0, le=1)] = 0.8


class WatchdogSection(_Table):
    """The run watchdog (and, with it, the loop detector): ``beamish.Watchdog``'s defaults."""

    hang_after_s: Positive = _watchdog.HANG_AFTER_S
    max_steps: Annotated[int, Field(ge=1)] = _watchdog.MAX_STEPS
    max_wall_s: Positive | None = None
    first_chunk_s: Positive = FIRST_CHUNK_S
    next_chunk_s: Positive = NEXT_CHUNK_S


class ContextSection(_Table):
    """``[agents.NAME.context]``: the model's context window in tokens (default: genai-prices'),
    the share of it a request may need before ``policy`` acts, the policy (``compact`` summarizes
    older turns with a model call, ``trim`` drops them, ``fail`` ends the run) and the recent turns
    kept verbatim: ``beamish.ContextLimit``."""

    window: Annotated[int, Field(ge=64)] | None = None
    threshold: Annotated[float, Field(gt=0, le=1)] = _context.THRESHOLD
    policy: Literal["compact", "trim", "fail"] = "compact"
    keep_turns: Annotated[int, Field(ge=1)] = _context.KEEP_TURNS


class PolicySection(_Table):
    """What to do per exit reason (DESIGN §4): the defaults are the documented escalation."""

    on_crash: ReasonAction = "restart"
    on_hang: ReasonAction = "restart"
    on_loop: ReasonAction = "pause"
    on_budget: ReasonAction = "pause"


class BackoffSection(_Table):
    min_s: NonNegative = 0.5
    max_s: NonNegative = 30.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    reset_after_s: NonNegative = 60.0


class ScheduleSection(_Table):
    """A cron schedule that submits ``task`` to the agent; each fire is exactly one run."""

    id: str | None = None
    cron: str
    task: str
    tz: str = "UTC"
    misfire: Misfire = "once"
    grace_s: NonNegative = 3600.0
    jitter_s: NonNegative = 0.0
    #: Each tick's run must be done this long after its nominal time ("5m", "90s" or seconds).
    deadline: str | float | None = None


class BreakerSection(_Table):
    """When a model's circuit breaker opens (failed attempts in a row), how long before one probe,
    and how long a probe may take (``beamish.BreakerPolicy``'s defaults)."""

    failures: Annotated[int, Field(ge=1)] = 5
    cooldown_s: Positive = 30.0
    probe_timeout_s: Positive = 120.0


class LimitSection(_Table):
    """A provider's rate limits (``[limits.anthropic]``) or one model's
    (``[limits."anthropic:claude-sonnet-4-5"]``), shared by every agent of the store."""

    requests_per_minute: Annotated[int, Field(ge=1)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=1)] | None = None


class PriceSection(_Table):
    """A price for a model genai-prices does not know (USD per million tokens)."""

    input_per_mtok: NonNegative
    output_per_mtok: NonNegative


class AgentSection(_Table):
    """An agent: beamish's loop (``instructions``) or the user's own code (``entry``), never both.

    ``model`` stays required for an ``entry`` agent: its requests through ``beamish.durable`` are
    priced and budgeted by the model each names, and by this one when a request names none.
    """

    instructions: str | None = None
    entry: str | None = None
    #: One model, or a list: the first, then the fallbacks a step goes to when a model is down.
    model: str | Annotated[list[str], Field(min_length=1)]
    tools: list[str] = Field(default_factory=list)
    isolation: Isolation = "process"
    restart: RestartType = "permanent"
    max_memory_mb: Positive | None = None
    concurrency: Annotated[int, Field(ge=1, le=10_000)] = 1
    max_tokens: Annotated[int, Field(ge=1)] = 1024
    budget: BudgetSection = Field(default_factory=BudgetSection)
    watchdog: WatchdogSection = Field(default_factory=WatchdogSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    context: ContextSection = Field(default_factory=ContextSection)
    backoff: BackoffSection | None = None
    breaker: BreakerSection | None = None
    schedules: list[ScheduleSection] = Field(default_factory=list)
    price: PriceSection | None = None
    #: A price per model the agent names (``{ "openai:my-local-model" = { input_per_mtok = …, … } }``):
    #: for a fallback genai-prices lacks; ``price`` stays the first model's.
    prices: dict[str, PriceSection] = Field(default_factory=dict)


class ApprovalSection(_Table):
    """``[[approvals]]``: calls of ``tool`` by ``agent`` (``"*"``: any) wait for a person first;
    ``if_args`` (each argument equals the value given) and ``if_cost_over`` (the run's dollars so
    far) narrow it. The first matching rule sets who decides and what the expiry does."""

    agent: str
    tool: str
    approvers: list[str] = Field(default_factory=list)
    expires_after_s: Positive = 86_400.0
    on_expiry: Literal["deny", "escalate"] = "deny"
    escalate_to: list[str] = Field(default_factory=list)
    if_args: dict[str, Any] = Field(default_factory=dict)
    if_cost_over: NonNegative | None = None


class AlertSection(_Table):
    """``[[alerts]]``: a sink (``webhook``, ``slack`` or ``email``) and the events routed to it.

    ``events`` defaults to what needs a person (approvals, questions, over-budget and loop pauses,
    needs-attention and missed deadlines, supervisor escalation, a lost lease, a memory repair, an
    open circuit breaker). ``quiet_hours``
    (``"22:00-07:00"`` in the company's time zone) holds all but critical alerts for the digest.
    Secrets are named by environment variable (``secret_env``, ``password_env``), never written here.
    """

    name: str
    type: Literal["webhook", "slack", "email"]
    url: str | None = None
    secret_env: str | None = None
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    username: str | None = None
    password_env: str | None = None
    sender: str | None = None
    to: list[str] = Field(default_factory=list)
    events: list[str] | None = None
    agents: list[str] | None = None
    min_severity: Literal["info", "warning", "critical"] = "info"
    dedup_window_s: Positive = 3600.0
    rate_per_minute: Annotated[int, Field(ge=1)] = 30
    quiet_hours: (
        Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")] | None
    ) = None
    links_url: str | None = None
    #: When this sink gets the digest (cron, company time zone); email sinks: "0 8 * * *" unless set.
    digest_cron: str | None = None


class GroupSection(_Table):
    """A supervisor over some agents, e.g. finance as ``rest_for_one`` (the CFO first)."""

    strategy: Strategy = "one_for_one"
    agents: list[str]
    intensity: Annotated[int, Field(ge=0)] = 3
    period: Positive = 5.0


class TreeSection(_Table):
    """The root supervisor and its groups; agents in no group hang directly off the root."""

    strategy: Strategy = "one_for_one"
    intensity: Annotated[int, Field(ge=0)] = 10
    period: Positive = 10.0
    groups: dict[str, GroupSection] = Field(default_factory=dict)


class TelemetrySection(_Table):
    otel: bool = False
    service_name: str = "beamish"
    capture_content: bool = False
    sentry_dsn: str | None = None
    sentry_environment: str | None = None


class DashboardSection(_Table):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8765
    token_env: str = "BEAMISH_DASHBOARD_TOKEN"


class ConfigFile(_Table):
    """The whole file, as written (before paths are resolved and cross-references checked)."""

    company: CompanySection = Field(default_factory=CompanySection)
    store: StoreSection = Field(default_factory=StoreSection)
    memory: MemorySection = Field(default_factory=MemorySection)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    tree: TreeSection = Field(default_factory=TreeSection)
    agents: dict[str, AgentSection]
    approvals: list[ApprovalSection] = Field(default_factory=list)
    alerts: list[AlertSection] = Field(default_factory=list)
    limits: dict[str, LimitSection] = Field(default_factory=dict)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    dashboard: DashboardSection = Field(default_factory=DashboardSection)
