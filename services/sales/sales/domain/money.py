"""Exact money: Decimal only, rounded half-up to the currency's minor unit (ISO 4217)."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select

from .. import models
from .errors import Invalid

# ISO 4217 minor units of the currencies we accept. Columns hold two places, so currencies with three
# (BHD, KWD...) are refused rather than silently rounded.
MINOR_UNITS = {
    "CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "SGD": 2, "AUD": 2, "CAD": 2, "CHF": 2, "TWD": 2,
    "MOP": 2, "THB": 2, "MYR": 2, "INR": 2, "RUB": 2, "NZD": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "JPY": 0, "KRW": 0, "VND": 0, "IDR": 2, "CLP": 0, "ISK": 0,
}
BASE_CURRENCY = "CNY"
ZERO = Decimal("0")


def check_currency(code: str, field: str = "currency") -> str:
    if code not in MINOR_UNITS:
        raise Invalid(field, f"Unsupported currency {code!r}; use one of {', '.join(sorted(MINOR_UNITS))}.")
    return code


def exponent(currency: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def q(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, not {type(amount).__name__}")
    return amount.quantize(exponent(currency), rounding=ROUND_HALF_UP)


def exact(amount: Decimal, currency: str, field: str) -> Decimal:
    """An amount a person entered: it must already fit the currency's minor unit (no silent rounding)."""
    if amount != q(amount, currency):
        raise Invalid(field, f"{currency} amounts have at most {MINOR_UNITS[currency]} decimal places.")
    if amount.copy_abs() >= Decimal("1e16"):
        raise Invalid(field, "Amount too large.")
    return q(amount, currency)


def rates(session) -> dict[str, Decimal]:
    r = {c: Decimal(v) for c, v in session.execute(select(models.exchange_rates.c.currency,
                                                            models.exchange_rates.c.rate)).all()}
    r[BASE_CURRENCY] = Decimal(1)
    return r


def to_base(amount: Decimal, currency: str, table: dict[str, Decimal]) -> Decimal | None:
    """The amount in the base currency, or None when no rate is known."""
    if currency == BASE_CURRENCY:
        return q(amount, BASE_CURRENCY)
    rate = table.get(currency)
    return None if rate is None else q(amount * rate, BASE_CURRENCY)


def plain(value) -> Decimal:
    """A quantity or percentage without trailing zeros and without an exponent ("10", "12.5")."""
    d = Decimal(value).normalize()
    return d.quantize(Decimal(1)) if d.as_tuple().exponent > 0 else d
