"""Small rules of the notify service, plain Python: quiet hours, business days, retry backoff, SMS
segments, subscription conditions, birthdays and holidays."""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_QUIET = ("22:00", "08:00")
LANGUAGES = ("zh-CN", "en")


def utc(dt: datetime | None) -> datetime | None:
    """Aware UTC. SQLite hands back naive datetimes; everything stored is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TZ)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TZ)


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def other_language(lang: str) -> str:
    return "en" if lang == "zh-CN" else "zh-CN"


def normalise_language(lang: str | None) -> str:
    if not lang:
        return "zh-CN"
    low = lang.lower().replace("_", "-")
    return "en" if low.startswith("en") else "zh-CN"


def parse_hhmm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


# -- quiet hours -------------------------------------------------------------------------------------

def quiet_until(now: datetime, tz: str | None, start: str | None, end: str | None) -> datetime | None:
    """If `now` falls in the quiet hours [start, end) of the recipient's time zone, the UTC instant
    they end (the message waits until then); otherwise None. start == end means no quiet hours."""
    if not start or not end or start == end:
        return None
    z = zone(tz)
    local = now.astimezone(z)
    s, e = parse_hhmm(start), parse_hhmm(end)
    t = local.time()
    if s < e:  # e.g. 12:00-14:00, same day
        inside = s <= t < e
        end_day = local.date()
    else:      # e.g. 22:00-08:00, across midnight
        inside = t >= s or t < e
        end_day = local.date() + timedelta(days=1) if t >= s else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, e, tzinfo=z).astimezone(timezone.utc)


# -- business days -----------------------------------------------------------------------------------

def add_business_day(at: datetime, tz: str | None = None) -> datetime:
    """The same local time on the next working day (Monday to Friday) after `at`."""
    z = zone(tz)
    local = at.astimezone(z)
    nxt = local + timedelta(days=1)
    while nxt.weekday() >= 5:
        nxt += timedelta(days=1)
    return nxt.astimezone(timezone.utc)


# -- retries -----------------------------------------------------------------------------------------

def next_retry(attempts: int, first_try: datetime, now: datetime, base_seconds: float, give_up_after: timedelta,
               max_attempts: int) -> datetime | None:
    """Exponential backoff: base * 2^(attempts-1), at most 6 hours apart; None when the delivery
    should give up (max_attempts used, or the next try would be past give_up_after since the first)."""
    if attempts >= max_attempts:
        return None
    delay = min(base_seconds * (2 ** (attempts - 1)), 6 * 3600)
    nxt = now + timedelta(seconds=delay)
    if nxt - first_try > give_up_after:
        return None
    return nxt


# -- SMS segments ------------------------------------------------------------------------------------

GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


def _is_gsm(text: str) -> bool:
    return all(ord(c) < 128 for c in text)


def sms_parts(text: str, rule: str = "split", max_parts: int = 5) -> list[str]:
    """One segment is 160 ASCII or 70 other characters (Chinese). Longer texts are split into
    numbered parts ("(1/3)") or trimmed to one segment with an ellipsis, by the template's rule."""
    single, multi = (GSM_SINGLE, GSM_MULTI) if _is_gsm(text) else (UCS2_SINGLE, UCS2_MULTI)
    if len(text) <= single:
        return [text]
    if rule == "trim":
        return [text[: single - 1] + "…"]
    room = multi - 6  # "(n/m) "
    n = min(math.ceil(len(text) / room), max_parts)
    parts = [text[i * room:(i + 1) * room] for i in range(n)]
    if n * room < len(text):
        parts[-1] = parts[-1][:-1] + "…"
    return [f"({i + 1}/{n}) {p}" for i, p in enumerate(parts)]


# -- subscription conditions -------------------------------------------------------------------------

OPS = ("eq", "ne", "gte", "lte", "gt", "lt", "in", "present")


def matches(condition: dict | None, payload: dict) -> bool:
    """{"days_overdue": {"gte": 30}, "decision": {"in": ["reject"]}}: every field test must hold."""
    if not condition:
        return True
    for field, tests in condition.items():
        value = payload.get(field)
        for op, arg in tests.items():
            try:
                ok = {
                    "eq": lambda: value == arg, "ne": lambda: value != arg,
                    "gte": lambda: value is not None and value >= arg, "lte": lambda: value is not None and value <= arg,
                    "gt": lambda: value is not None and value > arg, "lt": lambda: value is not None and value < arg,
                    "in": lambda: value in arg, "present": lambda: (value not in (None, "", [])) == bool(arg),
                }[op]()
            except (TypeError, KeyError):
                ok = False
            if not ok:
                return False
    return True


# -- customer care -----------------------------------------------------------------------------------

def birthday_this_year(birthday: date, year: int) -> date:
    """29 February is celebrated on 28 February in other years."""
    try:
        return birthday.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


# Lunar holidays move every year; National Day does not. NOTIFY_HOLIDAYS overrides the list.
DEFAULT_HOLIDAYS: dict[str, dict] = {
    "spring_festival": {"name": {"zh-CN": "春节", "en": "Spring Festival"},
                        "dates": ["2025-01-29", "2026-02-17", "2027-02-06", "2028-01-26", "2029-02-13", "2030-02-03"]},
    "mid_autumn": {"name": {"zh-CN": "中秋节", "en": "Mid-Autumn Festival"},
                   "dates": ["2025-10-06", "2026-09-25", "2027-09-15", "2028-10-03", "2029-09-22", "2030-09-12"]},
    "national_day": {"name": {"zh-CN": "国庆节", "en": "National Day"}, "every_year": "10-01"},
}


def holiday_today(holidays: dict, local_day: date) -> list[str]:
    out = []
    for key, h in holidays.items():
        if h.get("every_year") == local_day.strftime("%m-%d") or local_day.isoformat() in h.get("dates", ()):
            out.append(key)
    return out


GREETING_HOUR = 9


def greeting_due(now: datetime, tz: str | None, day: date) -> bool:
    """True from 09:00 on `day` in the time zone until the day ends."""
    local = now.astimezone(zone(tz))
    return local.date() == day and local.hour >= GREETING_HOUR


def next_local_time(now: datetime, tz: str | None, at: time) -> datetime:
    z = zone(tz)
    local = now.astimezone(z)
    cand = datetime.combine(local.date(), at, tzinfo=z)
    if cand <= local:
        cand = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=z)
    return cand.astimezone(timezone.utc)


def next_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
