"""Decimal arithmetic: rounding half-up to the currency's minor unit, no float anywhere in money."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from sales import models
from sales.domain import approvals, customers, money, quotes, receivables
from sales.domain.errors import Invalid
from sales.schemas import ExactMoney


def test_half_up_to_the_minor_unit():
    assert money.q(Decimal("2.345"), "CNY") == Decimal("2.35")
    assert money.q(Decimal("2.335"), "CNY") == Decimal("2.34")  # half-up, not banker's
    assert money.q(Decimal("-2.345"), "USD") == Decimal("-2.35")
    assert money.q(Decimal("1500.5"), "JPY") == Decimal("1501")
    assert str(money.q(Decimal("7"), "EUR")) == "7.00"
    with pytest.raises(TypeError):
        money.q(0.1, "CNY")
    with pytest.raises(Invalid):
        money.exact(Decimal("0.001"), "CNY", "amount")
    with pytest.raises(Invalid):
        money.exact(Decimal("1.5"), "JPY", "amount")
    with pytest.raises(Invalid):
        money.check_currency("BHD")  # three decimals: refused rather than rounded


def test_quote_lines_take_decimal_only_and_sum_exactly():
    lines = [quotes.price_line("A", "A", Decimal("3"), Decimal("0.10"), Decimal("0"), "CNY") for _ in range(10)]
    assert quotes.totals(lines)["total"] == Decimal("3.00")  # 30 × 0.1 in float would not be exact
    l = quotes.price_line("A", "A", Decimal("1"), Decimal("99.99"), Decimal("33.333"), "CNY")
    assert (l.gross, l.discount, l.net) == (Decimal("99.99"), Decimal("33.33"), Decimal("66.66"))
    with pytest.raises(TypeError):
        quotes.price_line("A", "A", 1.0, Decimal("1"), Decimal("0"), "CNY")


def test_no_float_column_holds_money():
    from sqlalchemy import Float, Numeric
    for table in models.metadata.tables.values():
        for col in table.columns:
            assert not isinstance(col.type, Float), f"{table.name}.{col.name} is a float"
            if col.name in ("amount", "expected_amount", "list_price", "unit_price", "subtotal", "total", "paid",
                            "gross", "net", "discount", "discount_amount", "rate", "threshold"):
                assert isinstance(col.type, Numeric), f"{table.name}.{col.name}"


def test_exact_money_field_refuses_floats():
    f = ExactMoney()
    assert f.deserialize("0.1") == Decimal("0.1")
    assert f.deserialize(7) == Decimal(7)
    for bad in (0.1, 1e3, True, "NaN", "Infinity", "", "1" * 50, [], {}):
        with pytest.raises(Exception):
            f.deserialize(bad)


def test_pareto_tiers():
    rev = {1: Decimal("800"), 2: Decimal("150"), 3: Decimal("40"), 4: Decimal("10"), 5: Decimal("0")}
    assert customers.tiers_from_revenue(rev) == {1: "gold", 2: "silver", 3: "bronze", 4: "bronze", 5: "prospect"}
    assert customers.tiers_from_revenue({1: Decimal(50), 2: Decimal(50)}) == {1: "gold", 2: "gold"}
    assert customers.tiers_from_revenue({}) == {}


def test_policy_choice_and_business_hours():
    p = approvals.DEFAULT_POLICIES
    assert approvals.applicable(p, "quote", Decimal("10")) is None
    assert len(approvals.applicable(p, "quote", Decimal("10.01"))["steps"]) == 1
    assert len(approvals.applicable(p, "quote", Decimal("20.5"))["steps"]) == 3
    assert approvals.applicable(p, "contract", Decimal("500000")) is None
    assert approvals.applicable(p, "contract", Decimal("500000.01"))["steps"][0]["role"] == "general_manager"
    fri = datetime(2026, 3, 6, 12, tzinfo=timezone.utc)
    assert approvals.business_hours_between(fri, datetime(2026, 3, 9, 12, tzinfo=timezone.utc)) == 24
    assert approvals.business_hours_between(fri, fri) == 0


def test_aging_buckets():
    assert [receivables.aging_bucket(d) for d in (-5, 0, 1, 30, 31, 60, 61, 90, 91)] == \
        ["current", "current", "1_30", "1_30", "31_60", "31_60", "61_90", "61_90", "90_plus"]


def test_tier_shares_are_configurable():
    from types import SimpleNamespace
    assert customers.tier_shares(SimpleNamespace(extra={})) == (Decimal("0.8"), Decimal("0.95"))
    assert customers.tier_shares(SimpleNamespace(extra={"tier_gold_share": "0.5", "tier_silver_share": "0.9"})) == \
        (Decimal("0.5"), Decimal("0.9"))
    with pytest.raises(ValueError):
        customers.tier_shares(SimpleNamespace(extra={"tier_gold_share": "0.99", "tier_silver_share": "0.9"}))
    rev = {1: Decimal("60"), 2: Decimal("40")}
    assert customers.tiers_from_revenue(rev, Decimal("0.5"), Decimal("0.9")) == {1: "gold", 2: "silver"}
