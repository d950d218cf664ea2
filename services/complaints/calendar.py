"""The China working calendar that complaint SLA clocks run on.

An agent team works office hours on working days, so SLA targets count
business time, not clock time. In China the working days are not simply
Monday to Friday: statutory holidays (春节, 国庆节, ...) and their in-lieu days
are off, and each year's State Council notice moves working days onto
weekends (调休 make-up days). All of that comes from the maintained
``holidays`` package: in 0.109 its ``China`` calendar has no separate
"workday" category; instead every substituted day off records the weekend
day it was taken from in ``weekend_workdays``, and ``is_working_day`` is
False on holidays and in-lieu days and True on those make-up Saturdays and
Sundays. No date is written down here; for a year whose notice the package
does not know yet, only the statutory days are off until it is updated.

Time is always passed in and must be timezone-aware. Arithmetic runs in UTC
over whole working periods (a few per day), so a span of weeks costs a few
dozen steps, not one per minute.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Iterator, Optional
from zoneinfo import ZoneInfo

import holidays

from shared.errors import ValidationError

Pause = tuple[datetime, Optional[datetime]]
"""A span waiting on the customer; an end of ``None`` means still waiting."""

_ONE_DAY = timedelta(days=1)


class WorkingCalendar:
    """Working days and hours; ``breaks`` (lunch) are not working time."""

    def __init__(self, timezone: str = "Asia/Shanghai", day_start: time = time(9),
                 day_end: time = time(18), breaks: Iterable[tuple[time, time]] = ((time(12), time(13)),)):
        self.zone = _zone(timezone)
        self.day_start, self.day_end = day_start, day_end
        self.breaks = tuple(sorted(breaks))
        self._shifts = _shifts(day_start, day_end, self.breaks)
        self._holidays = holidays.country_holidays("CN")
        self._working: dict[date, bool] = {}

    def is_working_day(self, day: date) -> bool:
        """True on ordinary weekdays and 调休 make-up days, False on weekends and holidays."""
        if isinstance(day, datetime):
            day = _utc(day, "day").astimezone(self.zone).date()
        if day not in self._working:
            self._working[day] = self._holidays.is_working_day(day)
        return self._working[day]

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


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, LookupError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise ValidationError({"timezone": [f"unknown time zone {name!r}"]}) from error


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    return moment.astimezone(timezone.utc)
