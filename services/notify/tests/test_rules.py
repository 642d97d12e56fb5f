"""The small rules, without database or HTTP."""
from datetime import date, datetime, timedelta, timezone

import pytest

from notify.domain.rules import (add_business_day, birthday_this_year, holiday_today, matches, next_retry,
                                 quiet_until, sms_parts, DEFAULT_HOLIDAYS)
from notify.channels.net import BlockedAddress, check_url, resolve

UTC = timezone.utc


@pytest.mark.parametrize("local_hhmm,held_until_utc", [
    ("21:59", None),
    ("22:00", "2026-03-11T00:00"),
    ("23:30", "2026-03-11T00:00"),
    ("03:00", "2026-03-10T00:00"),
    ("07:59", "2026-03-10T00:00"),
    ("08:00", None),
])
def test_quiet_hours_across_midnight_in_shanghai(local_hhmm, held_until_utc):
    h, m = map(int, local_hhmm.split(":"))
    local_day = 10
    now = datetime(2026, 3, local_day, h, m, tzinfo=timezone(timedelta(hours=8))).astimezone(UTC)
    got = quiet_until(now, "Asia/Shanghai", "22:00", "08:00")
    assert (got.strftime("%Y-%m-%dT%H:%M") if got else None) == held_until_utc


def test_quiet_hours_within_a_day_and_none():
    now = datetime(2026, 3, 10, 4, 30, tzinfo=UTC)  # 12:30 Shanghai
    assert quiet_until(now, "Asia/Shanghai", "12:00", "14:00") == datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
    assert quiet_until(now, "Asia/Shanghai", "08:00", "08:00") is None


def test_backoff_gives_at_least_eight_tries_within_24_hours_then_stops():
    first = now = datetime(2026, 3, 10, tzinfo=UTC)
    tries = 1
    while True:
        nxt = next_retry(tries, first, now, 60, timedelta(hours=24), 12)
        if nxt is None:
            break
        assert nxt > now
        now, tries = nxt, tries + 1
    assert tries >= 8 and now - first <= timedelta(hours=24)
    gaps = [next_retry(n, first, first, 60, timedelta(hours=24), 99) - first for n in (1, 2, 3)]
    assert gaps == [timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=240)]


def test_sms_segments_split_or_trim():
    assert sms_parts("hello") == ["hello"]
    zh = "中" * 150
    parts = sms_parts(zh)
    assert len(parts) == 3 and parts[0].startswith("(1/3) ") and all(len(p) <= 67 for p in parts)
    assert "".join(p.split(" ", 1)[1] for p in parts) == zh
    trimmed = sms_parts(zh, "trim")
    assert len(trimmed) == 1 and len(trimmed[0]) == 70 and trimmed[0].endswith("…")
    assert len(sms_parts("a" * 160)) == 1 and len(sms_parts("a" * 161)) == 2


def test_conditions():
    assert matches({"days_overdue": {"gte": 30}}, {"days_overdue": 30})
    assert not matches({"days_overdue": {"gte": 30}}, {"days_overdue": 29})
    assert not matches({"days_overdue": {"gte": 30}}, {})
    assert matches({"decision": {"in": ["reject", "return"]}}, {"decision": "reject"})
    assert matches({"owner_id": {"present": True}}, {"owner_id": "u1"})
    assert matches(None, {})


def test_business_day_skips_the_weekend():
    fri = datetime(2026, 3, 13, 2, 0, tzinfo=UTC)
    assert add_business_day(fri, "Asia/Shanghai") == datetime(2026, 3, 16, 2, 0, tzinfo=UTC)
    tue = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    assert add_business_day(tue, "Asia/Shanghai") == datetime(2026, 3, 11, 2, 0, tzinfo=UTC)


def test_leap_day_birthdays_and_holidays():
    assert birthday_this_year(date(2000, 2, 29), 2026) == date(2026, 2, 28)
    assert birthday_this_year(date(2000, 2, 29), 2028) == date(2028, 2, 29)
    assert holiday_today(DEFAULT_HOLIDAYS, date(2026, 2, 17)) == ["spring_festival"]
    assert holiday_today(DEFAULT_HOLIDAYS, date(2031, 10, 1)) == ["national_day"]
    assert holiday_today(DEFAULT_HOLIDAYS, date(2026, 3, 1)) == []


@pytest.mark.parametrize("url", ["ftp://x/y", "javascript:alert(1)", "http:///nohost", "http://u:p@example.com/"])
def test_only_plain_http_urls(url):
    with pytest.raises(BlockedAddress):
        check_url(url)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                  "::1", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "100.64.0.1"])
def test_private_addresses_are_refused_after_resolution(host):
    with pytest.raises(BlockedAddress):
        resolve(host, 80, allow_private=False)
    assert resolve(host, 80, allow_private=True)
