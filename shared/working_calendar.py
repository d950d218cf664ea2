"""Working days and daily hours in a time zone, on China's official calendar.

Services count and schedule in working time: complaint SLA targets are
business hours, callbacks must reach customers inside their calling window,
greetings go out inside a send window. A ``WorkingCalendar`` is daily hours
(opening, closing, breaks) on working days in one IANA time zone; the same
hours in a customer's zone are ``in_zone(name)``.

Which days are working days is China's: statutory holidays (春节, 国庆节,
...) and their in-lieu days are off, and each year's State Council notice
moves working days onto weekends (调休 make-up days). All of that comes from
the maintained ``holidays`` package: in 0.109 its ``China`` calendar records
every substituted day off with the weekend day it was taken from
(``weekend_workdays``), and ``is_working_day`` is False on holidays and
in-lieu days and True on those make-up Saturdays and Sundays. No date is
written down here; for a year whose notice the package does not know yet,
only the statutory days are off until it is updated. A date is judged as
the local date in the calendar's own zone, so a customer in New York has
National Day off on 1 October New York time.

Time is always passed in and must be timezone-aware. Arithmetic runs in UTC
over whole working periods (a few per day), so a span of weeks costs a few
dozen steps, not one per minute, and daylight-saving changes cost nothing:
each opening is the local wall-clock time of that day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Iterable, Iterator, Optional
from zoneinfo import ZoneInfo

import holidays

from shared.clock import aware
from shared.errors import ValidationError

Pause = tuple[datetime, Optional[datetime]]
"""A span waiting on the customer; an end of ``None`` means still waiting."""

_ONE_DAY = timedelta(days=1)
_CHINA = holidays.country_holidays("CN")  # one table per process, shared by calendars in every zone


class WorkingCalendar:
    """Working days and hours in ``timezone``; ``breaks`` (lunch) are not working time."""

    def __init__(self, timezone: str = "Asia/Shanghai", day_start: time = time(9),
                 day_end: time = time(18), breaks: Iterable[tuple[time, time]] = ((time(12), time(13)),)):
        self.zone = time_zone(timezone)
        self.day_start, self.day_end = day_start, day_end
        self.breaks = tuple(sorted(breaks))
        self._shifts = _shifts(day_start, day_end, self.breaks)

    def in_zone(self, timezone: str) -> WorkingCalendar:
        """The same hours on the local working days of another zone (a customer's)."""
        return WorkingCalendar(timezone, self.day_start, self.day_end, self.breaks)

    def is_working_day(self, day: date | datetime) -> bool:
        """True on ordinary weekdays and 调休 make-up days, False on weekends and holidays.

        A moment is judged by its local date in the calendar's zone.
        """
        if isinstance(day, datetime):
            day = _utc(day, "day").astimezone(self.zone).date()
        return _is_china_working_day(day)

    def is_open(self, moment: datetime) -> bool:
        """Whether ``moment`` is working time: inside the hours, outside the breaks, on a working day."""
        return self.next_open(moment) == moment

    def next_open(self, moment: datetime) -> datetime:
        """The first working moment at or after ``moment``: itself while open, else the next opening.

        In the calendar's zone; a closing time (18:00) is not open, so it answers the next opening.
        """
        begin, _finish = next(self.working_periods(moment))
        return begin.astimezone(self.zone)

    def working_periods(self, start: datetime, end: datetime | None = None,
                        paused: Iterable[Pause] = ()) -> Iterator[tuple[datetime, datetime]]:
        """Working time from ``start`` (up to ``end``, if given) outside ``paused``, as UTC spans.

        An open pause stops the clock for good, so the periods end where it begins.
        """
        start = _utc(start, "start")
        horizon = None if end is None else _utc(end, "end")
        closed = []
        for pause_start, pause_end in merge_pauses(paused):
            if pause_end is None:
                horizon = pause_start if horizon is None else min(horizon, pause_start)
            else:
                closed.append((pause_start, pause_end))
        day = start.astimezone(self.zone).date()
        while horizon is None or day <= horizon.astimezone(self.zone).date():
            if self.is_working_day(day):
                for opens, closes in self._shifts:
                    begin, finish = max(self._at(day, opens), start), self._at(day, closes)
                    if horizon is not None:
                        finish = min(finish, horizon)
                    yield from _outside(begin, finish, closed)
            day += _ONE_DAY

    def add_business_time(self, start: datetime, duration: timedelta,
                          paused: Iterable[Pause] = ()) -> datetime | None:
        """The earliest moment by which ``duration`` of working time has passed since ``start``.

        A start outside working hours begins at the next opening; a budget used up
        exactly at closing time ends then (18:00), not at the next opening. Returns
        ``None`` only if an open pause stops the clock before the budget is used.
        """
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative, got {duration}")
        left = duration
        if not left:
            return _utc(start, "start").astimezone(self.zone)
        for begin, finish in self.working_periods(start, paused=paused):
            if finish - begin >= left:
                return (begin + left).astimezone(self.zone)
            left -= finish - begin
        return None

    def business_time_between(self, start: datetime, end: datetime,
                              paused: Iterable[Pause] = ()) -> timedelta:
        """Working time in [start, end) not spent waiting on the customer (``paused``)."""
        total = timedelta(0)
        for begin, finish in self.working_periods(start, end, paused):
            total += finish - begin
        return total

    def _at(self, day: date, moment: time) -> datetime:
        return datetime.combine(day, moment, tzinfo=self.zone).astimezone(timezone.utc)


def merge_pauses(paused: Iterable[Pause]) -> list[Pause]:
    """Pauses in UTC, sorted, overlaps merged; an open pause swallows all after it."""
    spans = []
    for start, end in paused:
        start = _utc(start, "pause start")
        end = None if end is None else _utc(end, "pause end")
        if end is not None and end < start:
            raise ValueError(f"pause ends ({end}) before it starts ({start})")
        spans.append((start, end))
    merged: list[Pause] = []
    for start, end in sorted(spans, key=lambda span: span[0]):
        if merged and (merged[-1][1] is None or start <= merged[-1][1]):
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, None if end is None or last_end is None else max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _outside(begin: datetime, finish: datetime, pauses: list[Pause]) -> Iterator[tuple[datetime, datetime]]:
    """The parts of [begin, finish) that no (sorted, merged, closed) pause covers."""
    for pause_start, pause_end in pauses:
        if begin >= finish or pause_start >= finish:
            break
        if pause_end <= begin:
            continue
        if pause_start > begin:
            yield begin, pause_start
        begin = max(begin, pause_end)
    if begin < finish:
        yield begin, finish


def _shifts(day_start: time, day_end: time, breaks: tuple[tuple[time, time], ...]) -> list[tuple[time, time]]:
    """The working spans of a day: opening to closing minus the breaks."""
    if day_start >= day_end:
        raise ValidationError({"day_end": [f"must be after day_start ({day_start})"]})
    shifts, opens = [], day_start
    for break_start, break_end in breaks:
        if not day_start <= break_start < break_end <= day_end:
            raise ValidationError({"breaks": [f"{break_start}-{break_end} must be a span within "
                                              f"{day_start}-{day_end}"]})
        if break_start < opens:
            raise ValidationError({"breaks": [f"{break_start}-{break_end} overlaps another break"]})
        if break_start > opens:
            shifts.append((opens, break_start))
        opens = break_end
    if opens < day_end:
        shifts.append((opens, day_end))
    if not shifts:
        raise ValidationError({"breaks": ["the breaks leave no working time in the day"]})
    return shifts


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``America/New_York``); a ``ValidationError`` on ``timezone`` if unknown."""
    try:
        return ZoneInfo(name)
    except (ValueError, LookupError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise ValidationError({"timezone": [f"unknown time zone {name!r}"]}) from error


@lru_cache(maxsize=8192)  # decades of dates: every day a calendar ever asks about, judged once
def _is_china_working_day(day: date) -> bool:
    return _CHINA.is_working_day(day)


def _utc(moment: datetime, name: str) -> datetime:
    return aware(moment, name).astimezone(timezone.utc)
