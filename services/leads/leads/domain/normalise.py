"""Contact data in one canonical form, so one customer is one key whatever way it was typed:
phone numbers to E.164 (default region CN), emails lower-cased and validated, company names folded
(white space, full-width forms and legal-form suffixes removed). Also the masks shown to people who
may not see the full value."""
from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

DEFAULT_REGION = "CN"


class Invalid(ValueError):
    """A value that cannot be normalised; the message is for the person who typed it."""


def phone(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    digits = re.sub(r"\D", "", text)
    # "8613800138000": a Chinese number written with its country code but without the plus
    if not text.startswith("+") and digits.startswith("86") and len(digits) == 13:
        text = "+" + digits
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise Invalid("Not a phone number.")
    if not phonenumbers.is_valid_number(num):
        raise Invalid("Not a valid phone number.")
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    if len(_NATIONAL) >= _NATIONAL_MAX:
        _NATIONAL.clear()
    _NATIONAL[e164] = str(num.national_number)
    return e164


# E.164 number -> its national number, of the numbers `phone` normalised lately: the intake's
# answer masks the number it has just normalised, and `mask_phone` takes the national number from
# here instead of parsing the E.164 text again (what that parse gives: the country code of an E.164
# number is unambiguous). Bounded; a miss parses.
_NATIONAL: dict[str, str] = {}
_NATIONAL_MAX = 1024


def email(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(str(exc))
    return info.normalized.lower()


def email_domain(normalised_email: str | None) -> str | None:
    """The domain of a normalised address (after its last @), for filtering by organisation."""
    if not normalised_email or "@" not in normalised_email:
        return None
    return normalised_email.rsplit("@", 1)[1].lower() or None


# longest first, so "有限责任公司" is removed before "公司"
_SUFFIXES = sorted([
    "股份有限公司", "有限责任公司", "有限公司", "集团有限公司", "集团股份有限公司", "集团", "公司",
    "co.,ltd.", "co.,ltd", "co.ltd.", "co.ltd", "co.", "company", "corporation", "corp.", "corp",
    "incorporated", "inc.", "inc", "llc", "l.l.c.", "ltd.", "ltd", "limited", "gmbh", "plc", "s.a.",
], key=len, reverse=True)


def company(raw: str | None) -> str | None:
    """The company name folded for matching: NFKC (full-width to half-width), lower case, no spaces
    or punctuation between words, legal-form suffixes removed (repeatedly: "集团有限公司")."""
    if raw is None:
        return None
    s = unicodedata.normalize("NFKC", raw).lower()
    s = re.sub(r"\s+", "", s)
    s = s.replace("（", "(").replace("）", ")")
    changed = True
    while changed and s:
        changed = False
        s = s.rstrip(",.;:-_·")
        for suf in _SUFFIXES:
            if s.endswith(suf) and len(s) > len(suf):
                s = s[: -len(suf)]
                changed = True
                break
    s = re.sub(r"[\s,.;:'\"()\-_·]+", "", s)
    return s or None


def place(raw: str | None) -> str:
    if not raw:
        return ""
    s = unicodedata.normalize("NFKC", raw).strip().lower()
    return re.sub(r"(市|省)$", "", s)


def company_key(company_name: str | None, city: str | None) -> str | None:
    folded = company(company_name)
    return f"{folded}|{place(city)}" if folded else None


def keys(phone_e164: str | None, email_norm: str | None, company_name: str | None, city: str | None) -> list[tuple[str, str]]:
    out = []
    if phone_e164:
        out.append(("phone", phone_e164))
    if email_norm:
        out.append(("email", email_norm))
    ck = company_key(company_name, city)
    if ck:
        out.append(("company", ck))
    return out


def mask_phone(value: str | None) -> str | None:
    if not value:
        return value
    national = _NATIONAL.get(value)
    if national is None:
        try:
            national = str(phonenumbers.parse(value, DEFAULT_REGION).national_number)
        except phonenumbers.NumberParseException:
            national = re.sub(r"\D", "", value)
    if len(national) <= 4:
        return "*" * len(national)
    keep_head = 3 if len(national) >= 9 else 1
    return national[:keep_head] + "****" + national[-4:]


def mask_email(value: str | None) -> str | None:
    if not value or "@" not in value:
        return value
    local, domain = value.split("@", 1)
    return f"{local[:1]}***@{domain}"
