"""The config shape of a ``WorkingCalendar``, shared by every service that keeps one.

Services nest ``WorkingHoursSchema`` in their own config schema (office
hours, a calling window, a send window) and build the calendar with
``calendar_from_hours``. Everything the calendar would refuse is refused at
load time, under the config's own field names, so a typo in ``config.yml``
names the setting to fix instead of failing at the first tick::

    working_hours: {timezone: Asia/Shanghai, day_start: "09:00", day_end: "18:00",
                    breaks: [["12:00", "13:00"]]}

Times must be quoted: YAML reads an unquoted ``18:00`` as the number 1080.
"""

from __future__ import annotations

from datetime import time
from typing import Any, Mapping

from marshmallow import Schema, ValidationError as SchemaError, fields, validate, validates_schema

from shared.errors import ValidationError
from shared.working_calendar import WorkingCalendar, time_zone


class ClockTime(fields.String):
    """``HH:MM`` on the calendar's local clock (the zone is the calendar's, never the time's own)."""

    def _deserialize(self, value, attr, data, **kwargs) -> time:
        raw = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = time.fromisoformat(raw)
        except ValueError as error:
            raise SchemaError("use HH:MM, e.g. 09:00") from error
        if moment.tzinfo is not None:
            raise SchemaError("use HH:MM without an offset; the zone is the timezone setting")
        return moment


class TimeZoneName(fields.String):
    """An IANA time zone name such as ``Asia/Shanghai`` or ``America/New_York``."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        name = super()._deserialize(value, attr, data, **kwargs)
        try:
            time_zone(name)
        except ValidationError as error:
            raise SchemaError(error.fields["timezone"]) from error
        return name


class WorkingHoursSchema(Schema):
    timezone = TimeZoneName(load_default="Asia/Shanghai")
    day_start = ClockTime(load_default=time(9))
    day_end = ClockTime(load_default=time(18))
    breaks = fields.List(fields.List(ClockTime(), validate=validate.Length(equal=2)),
                         load_default=lambda: [[time(12), time(13)]])

    @validates_schema
    def _hours_leave_working_time(self, data: dict[str, Any], **_kwargs: Any) -> None:
        """The calendar's own checks (closing after opening, breaks inside the day), named by field."""
        try:
            calendar_from_hours(data)
        except ValidationError as error:
            raise SchemaError(error.fields) from error


def calendar_from_hours(hours: Mapping[str, Any]) -> WorkingCalendar:
    """The calendar of ``WorkingHoursSchema``'s loaded data."""
    return WorkingCalendar(hours["timezone"], hours["day_start"], hours["day_end"],
                           [tuple(pair) for pair in hours["breaks"]])
