"""When a holiday greeting is due, per year, from maintained calendars (birthdays: ``shared.birthdays``).

No date is written down here. Lunar festivals are a lunar month and day,
converted to the gregorian calendar per year by ``lunar-python``; solar
holidays are the first day of the holiday as the ``holidays`` package's
China calendar names it.

An occurrence names one greeting a customer may get once: the holiday and
its year (``spring_festival:2027``), or the birthday's date
(``birthday:2027-02-06``).
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import holidays as holiday_calendars

from shared.birthdays import lunar_to_solar

#: Lunar festivals: (lunar month, lunar day).
LUNAR_FESTIVALS = {"spring_festival": (1, 1), "lantern": (1, 15), "dragon_boat": (5, 5), "qixi": (7, 7),
                   "mid_autumn": (8, 15), "double_ninth": (9, 9)}
#: Solar holidays: the name the ``holidays`` China calendar (en_US) gives their first day.
SOLAR_HOLIDAY_NAMES = {"new_year": "New Year's Day", "qingming": "Tomb-Sweeping Day",
                       "labour_day": "Labor Day", "national_day": "National Day"}
#: How a greeting names the holiday, by the locale's language.
HOLIDAY_LABELS = {
    "zh": {"spring_festival": "春节", "lantern": "元宵节", "dragon_boat": "端午节", "qixi": "七夕",
           "mid_autumn": "中秋节", "double_ninth": "重阳节", "new_year": "元旦", "qingming": "清明节",
           "labour_day": "劳动节", "national_day": "国庆节"},
    "en": {"spring_festival": "Spring Festival", "lantern": "Lantern Festival", "dragon_boat": "Dragon Boat Festival",
           "qixi": "Qixi Festival", "mid_autumn": "Mid-Autumn Festival", "double_ninth": "Double Ninth Festival",
           "new_year": "New Year's Day", "qingming": "Qingming Festival", "labour_day": "Labour Day",
           "national_day": "National Day"},
}


def holiday_date(holiday: str, year: int) -> date:
    """The gregorian date of ``holiday`` in ``year``."""
    if holiday in LUNAR_FESTIVALS:
        return lunar_to_solar(year, *LUNAR_FESTIVALS[holiday])
    return _solar_holiday(holiday, year)


@functools.lru_cache(maxsize=256)
def _solar_holiday(holiday: str, year: int) -> date:
    name = SOLAR_HOLIDAY_NAMES[holiday]
    calendar = holiday_calendars.China(years=year, language="en_US")
    days = sorted(day for day, names in calendar.items() if name in names.split("; ") and "observed" not in names)
    if not days:
        raise LookupError(f"the China calendar has no {name} in {year}")
    return days[0]


def holiday_label(holiday: str, locale: str) -> str:
    return HOLIDAY_LABELS.get(locale.split("-")[0], HOLIDAY_LABELS["en"])[holiday]


def occurrence_of(kind: str, holiday: str | None, on: date) -> str:
    """The occurrence a run on ``on`` greets: the holiday of that year, or the birthdays of that day."""
    return f"{holiday}:{on.year}" if kind == "holiday" else f"birthday:{on.isoformat()}"


def next_days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=offset) for offset in range(count)]


