"""Which birthdays fall on a day: gregorian and lunar (农历), converted per year.

The customers service asks it which stored birthdays are celebrated on a
day (``celebrated_on``); campaigns and tests ask on which days of a year a
birthday falls (``birthday_on``). Both follow the same rules:

* a gregorian birthday on 29 February falls on 28 February in years
  without one (``feb29="feb28"``, the default) or on 1 March (``"mar1"``);
* a lunar birthday (stored as lunar ``YYYY-MM-DD`` of a regular month) is
  converted per lunar year by ``lunar-python``: on the 30th of a month that
  has only 29 days that year it falls on the 29th, and in a year with a
  leap month of the same number it is celebrated in the regular (first)
  month, never in the leap one. A lunar year straddles two gregorian years,
  so a lunar birthday may fall twice in one gregorian year, or not at all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

from lunar_python import Lunar, LunarMonth, Solar

FEB29_RULES = ("feb28", "mar1")


@functools.lru_cache(maxsize=4096)
def lunar_to_solar(lunar_year: int, month: int, day: int) -> date:
    """The gregorian date of a regular (not leap) lunar month and day; a missing 30th is the 29th."""
    day = min(day, LunarMonth.fromYm(lunar_year, month).getDayCount())
    solar = Lunar.fromYmd(lunar_year, month, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def birthday_on(birthday: str, calendar: str, year: int, feb29: str = "feb28") -> list[date]:
    """The days of gregorian ``year`` on which a birthday is celebrated (none in the year of birth)."""
    born_year, month, day = (int(part) for part in birthday.split("-"))
    if calendar == "lunar":
        days = {lunar_to_solar(lunar_year, month, day) for lunar_year in (year - 1, year) if lunar_year > born_year}
        return sorted(found for found in days if found.year == year)
    if year <= born_year:
        return []
    if (month, day) == (2, 29) and not leap_year(year):
        return [date(year, 2, 28) if feb29 == "feb28" else date(year, 3, 1)]
    return [date(year, month, day)]


@dataclass(frozen=True)
class Celebrated:
    """The stored ``MM-DD`` of birthdays celebrated on a day, per calendar, and the birth year they must be before."""

    gregorian: tuple[str, ...]
    gregorian_year: int
    lunar: tuple[str, ...]
    lunar_year: int


def celebrated_on(day: date, feb29: str = "feb28") -> Celebrated:
    """Which stored birthdays (by month and day) fall on ``day``: the inverse of ``birthday_on``."""
    gregorian = [f"{day.month:02d}-{day.day:02d}"]
    if not leap_year(day.year) and (day.month, day.day) == ((2, 28) if feb29 == "feb28" else (3, 1)):
        gregorian.append("02-29")
    lunar_day = Solar.fromYmd(day.year, day.month, day.day).getLunar()
    month, lunar_date = lunar_day.getMonth(), lunar_day.getDay()
    lunar: list[str] = []
    if month > 0:  # in a leap month no birthday falls: they are kept in the regular month
        lunar.append(f"{month:02d}-{lunar_date:02d}")
        if lunar_date == 29 and LunarMonth.fromYm(lunar_day.getYear(), month).getDayCount() == 29:
            lunar.append(f"{month:02d}-30")
    return Celebrated(tuple(gregorian), day.year, tuple(lunar), lunar_day.getYear())


def leap_year(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
