"""Business-time arithmetic on a working calendar: working hours per weekday in a time zone,
Chinese public holidays and weekend make-up workdays, and custom closed days. Pure: no database,
no clock of its own.

Holidays and make-up workdays come from `chinese_calendar` (the State Council's yearly
announcements). For a year it does not cover yet, the statutory holidays come from
`holidays.China` and the make-up workdays from the calendar's own `makeup_days` list, which an
administrator fills in once the year's arrangement is announced."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_DAY = ((9, 0), (18, 0))
DEFAULT_HOURS = {wd: DEFAULT_DAY for wd in range(5)}  # Monday=0 .. Friday=4; weekend closed


@functools.lru_cache(maxsize=64)
def _fallback_holidays(year: int) -> frozenset[date]:
    import holidays
    return frozenset(holidays.China(years=year).keys())


@functools.lru_cache(maxsize=4096)
def official_status(day: date) -> str | None:
    """'holiday' (a statutory day off), 'makeup' (a weekend day worked instead) or None (an
    ordinary day: the weekday's own hours apply)."""
    try:
        import chinese_calendar
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # year not covered by chinese_calendar's data
        return "holiday" if day in _fallback_holidays(day.year) else None
    if is_holiday and name is not None:
        return "holiday"
    if not is_holiday and day.weekday() >= 5:
        return "makeup"
    return None


def _t(hm) -> time:
    if isinstance(hm, str):
        h, m = hm.split(":")
        return time(int(h), int(m))
    if isinstance(hm, time):
        return hm
    return time(int(hm[0]), int(hm[1]))


@dataclass(frozen=True)
class BusinessCalendar:
    tz: str = DEFAULT_TZ
    hours: dict = field(default_factory=lambda: dict(DEFAULT_HOURS))  # weekday -> (start, end)
    chinese_holidays: bool = True
    closed_days: frozenset = frozenset()      # custom days off (company events, ...)
    makeup_days: frozenset = frozenset()      # extra workdays (make-up days not known to the data)
    makeup_hours: tuple = DEFAULT_DAY         # hours of a make-up day that is normally closed

    @classmethod
    def from_config(cls, cfg: dict | None) -> "BusinessCalendar":
        """From the stored JSON form: {"timezone", "hours": {"0": ["09:00","18:00"], ...},
        "chinese_holidays", "closed_days": ["2026-12-24"], "makeup_days": [...]}"""
        if not cfg:
            return cls()
        hours = {int(k): (v[0], v[1]) for k, v in (cfg.get("hours") or {}).items() if v}
        if cfg.get("hours") is None:
            hours = dict(DEFAULT_HOURS)
        mk = next((hours[d] for d in range(7) if d in hours), DEFAULT_DAY)
        return cls(tz=cfg.get("timezone") or DEFAULT_TZ, hours=hours,
                   chinese_holidays=cfg.get("chinese_holidays", True),
                   closed_days=frozenset(date.fromisoformat(str(d)) for d in cfg.get("closed_days") or ()),
                   makeup_days=frozenset(date.fromisoformat(str(d)) for d in cfg.get("makeup_days") or ()),
                   makeup_hours=mk)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    # -- days -------------------------------------------------------------------------------------
    def day_hours(self, day: date) -> tuple[time, time] | None:
        """The working hours of a local date, or None when it is closed."""
        if day in self.closed_days:
            return None
        wd_hours = self.hours.get(day.weekday())
        if day in self.makeup_days:
            span = wd_hours or self.makeup_hours
            return _t(span[0]), _t(span[1])
        if self.chinese_holidays:
            status = official_status(day)
            if status == "holiday":
                return None
            if status == "makeup":
                span = wd_hours or self.makeup_hours
                return _t(span[0]), _t(span[1])
        if wd_hours is None:
            return None
        return _t(wd_hours[0]), _t(wd_hours[1])

    def is_workday(self, day: date) -> bool:
        return self.day_hours(day) is not None

    def _interval(self, day: date) -> tuple[datetime, datetime] | None:
        span = self.day_hours(day)
        if span is None or span[1] <= span[0]:
            return None
        z = self.zone
        return datetime.combine(day, span[0], z), datetime.combine(day, span[1], z)

    def _intervals_from(self, local: datetime, limit_days: int = 800, exhaust_ok: bool = False):
        """Working intervals from `local` on, clipped to start no earlier than it."""
        day = local.date()
        for _ in range(limit_days):
            iv = self._interval(day)
            if iv is not None:
                s, e = iv
                if e > local:
                    yield max(s, local), e
            day += timedelta(days=1)
        if exhaust_ok:
            return
        raise ValueError("no working time within the calendar's horizon (is every day closed?)")

    # -- instants ---------------------------------------------------------------------------------
    def is_open(self, at: datetime) -> bool:
        local = _aware(at).astimezone(self.zone)
        iv = self._interval(local.date())
        return iv is not None and iv[0] <= local < iv[1]

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when inside working hours, else the start of the next working period (UTC)."""
        local = _aware(at).astimezone(self.zone)
        start, _ = next(self._intervals_from(local))
        return start.astimezone(timezone.utc)

    def add(self, at: datetime, minutes: float) -> datetime:
        """The instant `minutes` of working time after `at` (UTC)."""
        remaining = timedelta(minutes=minutes)
        local = _aware(at).astimezone(self.zone)
        if remaining <= timedelta(0):
            return self.next_open(at) if remaining == timedelta(0) and not self.is_open(at) else _aware(at).astimezone(timezone.utc)
        for s, e in self._intervals_from(local):
            if e - s >= remaining:
                return (s + remaining).astimezone(timezone.utc)
            remaining -= e - s
        raise AssertionError("unreachable")

    def minutes_between(self, a: datetime, b: datetime) -> float:
        """Working minutes from a to b (negative when b is before a)."""
        a, b = _aware(a), _aware(b)
        if b < a:
            return -self.minutes_between(b, a)
        total = timedelta(0)
        b_local = b.astimezone(self.zone)
        for s, e in self._intervals_from(a.astimezone(self.zone), limit_days=(b - a).days + 3, exhaust_ok=True):
            if s >= b_local:
                break
            total += min(e, b_local) - s
            if e >= b_local:
                break
        return total.total_seconds() / 60

    def day_minutes(self) -> float:
        """Length of a business day: the working hours of a typical weekday (Monday)."""
        span = self.hours.get(0) or self.makeup_hours
        s, e = _t(span[0]), _t(span[1])
        return (e.hour * 60 + e.minute) - (s.hour * 60 + s.minute)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)
