"""What a model call costs: prices from the offline ``genai-prices`` data, or configured ones.

Money is counted in integer nano-dollars (1e-9 USD) inside beamish, so sums in the ledger are exact
and comparisons against caps never wobble; the public API speaks floats in USD. A model whose price
is unknown fails closed (:class:`~beamish.errors.PricingError`): an agent that cannot be priced cannot be
kept under its budget, so it does not run. The ``scripted`` test model has no catalogue price and
must be given one explicitly (``Price.free()`` for zero), never silently.

Only the data bundled with the installed ``genai-prices`` is read; its online price update is never
started.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from beamish._exceptions import PricingError, SpecError

#: Nano-dollars per dollar: the unit every internal amount is kept in.
NANO = 1_000_000_000


def usd_to_nano(usd: float) -> int:
    """Dollars to nano-dollars, rounded to the nearest unit (caps and configured amounts)."""
    return round(usd * NANO)


def nano_to_usd(nano: int) -> float:
    return nano / NANO


class TokenUsage(Protocol):
    """Tokens of one response. ``input_tokens`` counts the *uncached* input only: cache reads and
    writes are counted apart (as Anthropic reports them; an OpenAI adapter subtracts its cached
    tokens), because providers price them apart."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_tokens(self) -> int: ...
    @property
    def cache_write_tokens(self) -> int: ...


def _check_rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise SpecError(f"Price {name} must be a number of USD per million tokens, got {value!r}")
    rate = float(value)
    if not math.isfinite(rate) or rate < 0:
        raise SpecError(f"Price {name} must be a finite amount >= 0, got {value!r}")
    return rate


@dataclass(frozen=True)
class Price:
    """A model's price in USD per million tokens.

    ``cache_read_per_mtok`` and ``cache_write_per_mtok`` default to the input price: a provider that
    does not price its cache apart bills those tokens as input.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_per_mtok", _check_rate("input_per_mtok", self.input_per_mtok))
        object.__setattr__(self, "output_per_mtok", _check_rate("output_per_mtok", self.output_per_mtok))
        for name in ("cache_read_per_mtok", "cache_write_per_mtok"):
            value = getattr(self, name)
            object.__setattr__(self, name, self.input_per_mtok if value is None else _check_rate(name, value))

    @classmethod
    def free(cls) -> Price:
        """Zero for every token: for the scripted model, said out loud."""
        return cls(0.0, 0.0, 0.0, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "input_per_mtok": self.input_per_mtok,
            "output_per_mtok": self.output_per_mtok,
            "cache_read_per_mtok": self.cache_read_per_mtok,
            "cache_write_per_mtok": self.cache_write_per_mtok,
        }


@dataclass(frozen=True)
class _Tier:
    """Rates from ``start`` input tokens up (``start`` 0 is the base). Rates in nano-USD per token."""

    start: int
    input: float
    output: float
    cache_read: float
    cache_write: float


@dataclass(frozen=True)
class ModelRates:
    """A model's resolved rates, tiers included ("cliff" tiers by total input tokens, as providers
    bill: past a tier's start every token pays the tier's rate). ``source`` says where they came
    from (``genai-prices`` or ``configured``)."""

    model: str
    source: str
    tiers: tuple[_Tier, ...]

    @classmethod
    def from_price(cls, model: str, price: Price) -> ModelRates:
        per = NANO / 1_000_000  # nano-USD per token for 1 USD per million tokens
        tier = _Tier(
            0,
            price.input_per_mtok * per,
            price.output_per_mtok * per,
            float(price.cache_read_per_mtok or 0.0) * per,
            float(price.cache_write_per_mtok or 0.0) * per,
        )
        return cls(model, "configured", (tier,))

    def _tier(self, total_input: int) -> _Tier:
        chosen = self.tiers[0]
        for tier in self.tiers[1:]:
            if total_input > tier.start:
                chosen = tier
        return chosen

    def cost_nano(self, usage: TokenUsage) -> int:
        """What ``usage`` costs, in nano-dollars, rounded up."""
        total_input = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        t = self._tier(total_input)
        cost = (
            usage.input_tokens * t.input
            + usage.output_tokens * t.output
            + usage.cache_read_tokens * t.cache_read
            + usage.cache_write_tokens * t.cache_write
        )
        return math.ceil(cost - 1e-6)

    def worst_case_nano(self, input_tokens: int, max_tokens: int) -> int:
        """The most a call of at most ``input_tokens`` of prompt and ``max_tokens`` of output can
        cost: what a reservation holds.

        Every prompt token is priced at the dearest of the input, cache-read and cache-write rates
        (the provider decides how the prompt splits between them), and every token at the dearest
        rate of any tier a prompt of that size can reach. One nano-dollar more covers the rounding
        of :meth:`cost_nano`'s float sum, so the bound holds to the unit (a free call holds nothing).
        """
        reachable = [self.tiers[0], *(t for t in self.tiers[1:] if input_tokens > t.start)]
        prompt = max(max(t.input, t.cache_read, t.cache_write) for t in reachable)
        output = max(t.output for t in reachable)
        worst = input_tokens * prompt + max_tokens * output
        return math.ceil(worst) + 1 if worst > 0 else 0

    def describe(self) -> dict[str, Any]:
        base = self.tiers[0]
        per = NANO / 1_000_000
        return {
            "model": self.model,
            "source": self.source,
            "input_per_mtok": base.input / per,
            "output_per_mtok": base.output / per,
            "cache_read_per_mtok": base.cache_read / per,
            "cache_write_per_mtok": base.cache_write / per,
            "tiers": len(self.tiers),
        }


def _split(model: str) -> tuple[str | None, str]:
    provider, sep, name = model.partition(":")
    return (provider, name) if sep else (None, model)


def _rates_from_catalogue(model: str, at: datetime) -> ModelRates:
    """Look ``model`` up in the offline genai-prices data (never its online update)."""
    from genai_prices import data_snapshot, types

    provider_id, name = _split(model)
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(name, None, provider_id, None)
    except LookupError as exc:
        raise PricingError(
            f"no price known for model {model!r} ({exc}); configure one with "
            f"beamish.Price(input_per_mtok=…, output_per_mtok=…) to run it"
        ) from exc
    prices = info.get_prices(at)

    def rate_points(key: str, fallback: Any) -> Any:
        value = getattr(prices, key, None)
        return fallback if value is None else value

    input_p = rate_points("input_mtok", None)
    output_p = rate_points("output_mtok", None)
    if input_p is None or output_p is None:
        raise PricingError(f"genai-prices has no token price for model {model!r}; configure a beamish.Price")
    read_p = rate_points("cache_read_mtok", input_p)
    write_p = rate_points("cache_write_mtok", input_p)
    parts = (input_p, output_p, read_p, write_p)
    starts = sorted({0} | {t.start for p in parts if isinstance(p, types.TieredPrices) for t in p.tiers})
    per = NANO / 1_000_000

    def at_start(p: Any, start: int) -> float:
        if isinstance(p, types.TieredPrices):
            rate = p.base
            for tier in p.tiers:
                if start >= tier.start and start > 0:
                    rate = tier.price
            return float(rate) * per
        return float(p) * per

    tiers = tuple(_Tier(s, *(at_start(p, s) for p in parts)) for s in starts)
    return ModelRates(model, "genai-prices", tiers)


class PriceBook:
    """Resolves a model name to its rates: configured prices first, then the offline catalogue.

    ``prices`` maps a model name (``"openai:llama3"``) or a glob (``"scripted:*"``) to a
    :class:`Price`. Resolutions are cached, so pricing a step costs a multiplication, not a lookup.
    """

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices: dict[str, Price] = {}
        for key, price in (prices or {}).items():
            if not isinstance(key, str) or not key:
                raise SpecError(f"prices: a model name must be a non-empty string, got {key!r}")
            if not isinstance(price, Price):
                raise SpecError(f"prices[{key!r}] must be a beamish.Price, got {price!r}")
            self._prices[key] = price
        self._cache: dict[str, ModelRates] = {}

    def configured(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        for pattern, price in self._prices.items():
            if fnmatch.fnmatchcase(model, pattern):
                return price
        return None

    def rates(self, model: str, at: datetime | None = None) -> ModelRates:
        """The rates of ``model``; :class:`~beamish.errors.PricingError` when it has none (fail closed)."""
        cached = self._cache.get(model)
        if cached is not None:
            return cached
        price = self.configured(model)
        if price is not None:
            rates = ModelRates.from_price(model, price)
        elif model.startswith("scripted:"):
            raise PricingError(
                f"the scripted model {model!r} has no price: configure one, e.g. "
                f"prices={{{model!r}: beamish.Price.free()}} to run it at zero cost"
            )
        else:
            rates = _rates_from_catalogue(model, at or datetime.now(UTC))
        self._cache[model] = rates
        return rates

    def cost_usd(self, model: str, usage: TokenUsage) -> float:
        return nano_to_usd(self.rates(model).cost_nano(usage))
