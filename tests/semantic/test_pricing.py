"""Pricing: the offline catalogue, configured prices, and failing closed."""

from __future__ import annotations

import pytest

from beamish import SpecError
from beamish.agent._messages import Usage
from beamish.agent._pricing import Price, PriceBook
from beamish.errors import PricingError

pytestmark = pytest.mark.timeout(10)


def test_catalogue_price_counts_cache_reads_and_writes_apart() -> None:
    rates = PriceBook().rates("anthropic:claude-sonnet-4-5")
    usage = Usage(input_tokens=500, output_tokens=100, cache_read_tokens=200, cache_write_tokens=300)
    # $3/M uncached input, $0.30/M cache read, $3.75/M cache write, $15/M output
    expected = 500 * 3 + 200 * 0.30 + 300 * 3.75 + 100 * 15
    assert rates.cost_nano(usage) == round(expected * 1000)
    assert rates.source == "genai-prices"


def test_catalogue_cost_agrees_with_genai_prices_itself() -> None:
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    usage = Usage(input_tokens=1200, output_tokens=340, cache_read_tokens=5000, cache_write_tokens=800)
    theirs = calc_price(
        GUsage(input_tokens=7000, output_tokens=340, cache_read_tokens=5000, cache_write_tokens=800),
        "claude-sonnet-4-5",
        provider_id="anthropic",
    )
    ours = PriceBook().cost_usd("anthropic:claude-sonnet-4-5", usage)
    assert ours == pytest.approx(float(theirs.total_price), abs=1e-9)


def test_long_context_tier_applies_to_every_token_past_its_start() -> None:
    rates = PriceBook().rates("anthropic:claude-sonnet-4-5")
    below = rates.cost_nano(Usage(input_tokens=200_000))
    above = rates.cost_nano(Usage(input_tokens=200_001))
    assert below == 200_000 * 3000
    assert above == 200_001 * 6000


def test_worst_case_prices_the_prompt_at_the_dearest_of_input_and_cache_rates() -> None:
    rates = PriceBook().rates("anthropic:claude-sonnet-4-5")
    assert rates.worst_case_nano(1000, 100) == 1000 * 3750 + 100 * 15000 + 1  # a unit for rounding
    usage = Usage(input_tokens=0, output_tokens=100, cache_write_tokens=1000)
    assert rates.cost_nano(usage) <= rates.worst_case_nano(1000, 100)


def test_unknown_model_without_a_price_fails_closed() -> None:
    with pytest.raises(PricingError, match="openai:my-local-llama"):
        PriceBook().rates("openai:my-local-llama")
    with pytest.raises(PricingError, match="configure"):
        PriceBook().rates("no-such-provider-model")


def test_scripted_model_needs_an_explicit_price_even_zero() -> None:
    with pytest.raises(PricingError, match="scripted"):
        PriceBook().rates("scripted:demo.jsonl")
    book = PriceBook({"scripted:*": Price.free()})
    assert book.rates("scripted:demo.jsonl").cost_nano(Usage(10_000, 10_000)) == 0


def test_configured_price_overrides_the_catalogue_and_prices_unknown_models() -> None:
    book = PriceBook({"openai:gpt-4o": Price(1.0, 2.0), "openai:llama3": Price(0.1, 0.2, 0.01, 0.5)})
    assert book.rates("openai:gpt-4o").cost_nano(Usage(1_000_000, 0)) == 1_000_000_000
    cost = book.rates("openai:llama3").cost_nano(Usage(0, 0, 1_000_000, 1_000_000))
    assert cost == 10_000_000 + 500_000_000


def test_cache_prices_default_to_the_input_price() -> None:
    price = Price(2.0, 8.0)
    assert price.cache_read_per_mtok == 2.0
    assert price.cache_write_per_mtok == 2.0


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "3", True])
def test_a_bad_price_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(SpecError, match="output_per_mtok"):
        Price(1.0, bad)  # type: ignore[arg-type]


def test_a_price_book_refuses_something_that_is_not_a_price() -> None:
    with pytest.raises(SpecError, match="scripted:x"):
        PriceBook({"scripted:x": 0.0})  # type: ignore[dict-item]
