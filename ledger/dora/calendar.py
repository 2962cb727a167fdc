"""Belgian working days for the DORA reporting deadlines.  Pure.

Belgian public holidays (Law of 4 January 1974 on public holidays): New Year's Day, Easter Monday, 1 May,
Ascension Day, Whit Monday, 21 July, 15 August, 1 November, 11 November and 25 December.  Saturdays and Sundays
are not working days.  Dates are local to Europe/Brussels; deadlines are stored in UTC.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["BRUSSELS", "belgian_holidays", "easter_sunday", "holiday_name", "is_working_day", "next_working_day"]

BRUSSELS = ZoneInfo("Europe/Brussels")


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm, also known as Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_offset = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_offset) // 451
    month, day = divmod(h + weekday_offset - 7 * m + 114, 31)
    return date(year, month, day + 1)


def belgian_holidays(year: int) -> dict[date, str]:
    easter = easter_sunday(year)
    return {
        date(year, 1, 1): "New Year's Day",
        easter + timedelta(days=1): "Easter Monday",
        date(year, 5, 1): "Labour Day",
        easter + timedelta(days=39): "Ascension Day",
        easter + timedelta(days=50): "Whit Monday",
        date(year, 7, 21): "Belgian National Day",
        date(year, 8, 15): "Assumption Day",
        date(year, 11, 1): "All Saints' Day",
        date(year, 11, 11): "Armistice Day",
        date(year, 12, 25): "Christmas Day",
    }


def holiday_name(day: date) -> str | None:
    return belgian_holidays(day.year).get(day)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and holiday_name(day) is None


def next_working_day(day: date) -> date:
    """The first working day after ``day``."""
    candidate = day + timedelta(days=1)
    while not is_working_day(candidate):
        candidate += timedelta(days=1)
    return candidate


def noon_brussels(day: date) -> datetime:
    """12:00 Europe/Brussels on ``day``, as an aware datetime in Brussels time."""
    return datetime.combine(day, time(12, 0), tzinfo=BRUSSELS)
