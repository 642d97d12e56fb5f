"""Business-time arithmetic (pure: no database)."""
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from service_desk.domain.calendar import BusinessCalendar, official_status

SH = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar()


def sh(*a):
    return datetime(*a, tzinfo=SH)


def test_friday_1730_plus_four_business_hours_is_monday_1230():
    due = CAL.add(sh(2026, 11, 20, 17, 30), 4 * 60)
    assert due.astimezone(SH) == sh(2026, 11, 23, 12, 30)
    assert due.tzinfo is not None and due.utcoffset().total_seconds() == 0  # answers in UTC
    assert CAL.minutes_between(sh(2026, 11, 20, 17, 30), due) == 240


def test_opened_on_the_eve_of_national_day_is_due_after_the_holiday():
    # 2026-09-30 is the last workday before National Day (Oct 1-7)
    due = CAL.add(sh(2026, 9, 30, 17, 0), 4 * 60)
    assert due.astimezone(SH) == sh(2026, 10, 8, 12, 0)
    assert all(not CAL.is_workday(date(2026, 10, d)) for d in range(1, 8))


def test_a_make_up_saturday_counts_as_a_workday():
    assert date(2026, 10, 10).weekday() == 5 and CAL.is_workday(date(2026, 10, 10))
    assert official_status(date(2026, 10, 10)) == "makeup"
    assert CAL.is_workday(date(2026, 9, 20))  # a make-up Sunday before National Day
    # Friday 17:00 + 4h: 1h on Friday, 3h on the make-up Saturday
    assert CAL.add(sh(2026, 10, 9, 17, 0), 240).astimezone(SH) == sh(2026, 10, 10, 12, 0)
    assert not CAL.is_workday(date(2026, 10, 17))  # an ordinary Saturday


def test_outside_hours_starts_at_the_next_opening():
    assert CAL.is_open(sh(2026, 11, 23, 9, 0)) and not CAL.is_open(sh(2026, 11, 23, 18, 0))
    assert CAL.next_open(sh(2026, 11, 21, 11, 0)).astimezone(SH) == sh(2026, 11, 23, 9, 0)
    assert CAL.next_open(sh(2026, 11, 23, 8, 0)).astimezone(SH) == sh(2026, 11, 23, 9, 0)
    assert CAL.add(sh(2026, 11, 23, 20, 0), 60).astimezone(SH) == sh(2026, 11, 24, 10, 0)


def test_custom_closed_days_hours_and_time_zone():
    cal = BusinessCalendar.from_config({"timezone": "Europe/Berlin", "hours": {"0": ["08:00", "12:00"],
                                                                              "2": ["10:00", "16:00"]},
                                        "chinese_holidays": False, "closed_days": ["2026-11-25"]})
    be = ZoneInfo("Europe/Berlin")
    # Monday 11:00 + 3h: 1h Monday, Wednesday closed, next Monday 08:00 + 2h
    assert cal.add(datetime(2026, 11, 23, 11, 0, tzinfo=be), 180).astimezone(be) == datetime(2026, 11, 30, 10, 0, tzinfo=be)
    assert cal.minutes_between(datetime(2026, 11, 23, 11, 0, tzinfo=be), datetime(2026, 11, 30, 10, 0, tzinfo=be)) == 180


def test_a_year_without_chinese_calendar_data_falls_back_to_holidays_and_configured_make_up_days():
    # chinese_calendar 1.11 stops at 2026: New Year 2027 comes from holidays.China
    cal = BusinessCalendar.from_config({"makeup_days": ["2027-01-09"]})
    assert not cal.is_workday(date(2027, 1, 1))
    assert cal.is_workday(date(2027, 1, 9))  # a Saturday made a workday by configuration
    assert not BusinessCalendar().is_workday(date(2027, 1, 9))
    assert cal.add(sh(2026, 12, 31, 17, 0), 120).astimezone(SH) == sh(2027, 1, 4, 10, 0)


def test_naive_datetimes_are_taken_as_utc_and_zero_or_negative_spans():
    naive = datetime(2026, 11, 23, 2, 0)  # 10:00 in Shanghai
    assert CAL.add(naive, 60) == datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
    assert CAL.minutes_between(sh(2026, 11, 23, 12, 0), sh(2026, 11, 23, 10, 0)) == -120
    with pytest.raises(ValueError):
        BusinessCalendar(hours={}, chinese_holidays=False).add(sh(2026, 11, 23, 10, 0), 60)
