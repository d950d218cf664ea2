"""The working hours config: defaults, a calling window in another zone, and refusals naming the field."""

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
from marshmallow import Schema, fields

from shared.errors import ValidationError
from shared.validation import load
from shared.working_hours import WorkingHoursSchema, calendar_from_hours


class CallbacksConfig(Schema):
    """How another service nests the same shape."""

    calling_window = fields.Nested(WorkingHoursSchema, required=True)


def refused_fields(schema: Schema, config: dict) -> dict:
    with pytest.raises(ValidationError) as refused:
        load(schema, config)
    return refused.value.fields


def test_defaults_are_office_hours_in_shanghai_with_lunch():
    calendar = calendar_from_hours(load(WorkingHoursSchema(), {}))
    assert calendar.zone == ZoneInfo("Asia/Shanghai")
    assert (calendar.day_start, calendar.day_end, calendar.breaks) == (time(9), time(18), ((time(12), time(13)),))


def test_a_calling_window_in_new_york_loads_and_opens_on_new_york_time():
    hours = load(CallbacksConfig(), {"calling_window": {
        "timezone": "America/New_York", "day_start": "09:00", "day_end": "20:00", "breaks": []}})["calling_window"]
    window = calendar_from_hours(hours)
    assert window.zone == ZoneInfo("America/New_York") and window.breaks == ()
    monday_7pm_in_new_york = datetime(2024, 3, 4, 23, tzinfo=timezone.utc)
    assert window.is_open(monday_7pm_in_new_york) is True


@pytest.mark.parametrize("config, field", [
    ({"timezone": "Asia/Beijing"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"timezone": 8}, "timezone"),
    ({"day_start": "9am"}, "day_start"),
    ({"day_end": "24:00"}, "day_end"),
    ({"day_start": "09:00+08:00"}, "day_start"),
    ({"day_end": 1080}, "day_end"),  # what YAML makes of an unquoted 18:00
    ({"breaks": [["12:00"]]}, "breaks"),
    ({"day_start": "18:00", "day_end": "09:00"}, "day_end"),
    ({"breaks": [["08:00", "10:00"]]}, "breaks"),
    ({"breaks": [["09:00", "18:00"]]}, "breaks"),
])
def test_bad_hours_are_refused_naming_the_field(config, field):
    assert list(refused_fields(WorkingHoursSchema(), config)) == [field]


def test_a_nested_window_is_refused_under_its_own_name():
    fields_refused = refused_fields(CallbacksConfig(), {"calling_window": {"timezone": "Mars/Olympus_Mons"}})
    assert fields_refused == {"calling_window": {"timezone": ["unknown time zone 'Mars/Olympus_Mons'"]}}
    fields_refused = refused_fields(CallbacksConfig(), {"calling_window": {"day_start": "20:00", "day_end": "09:00"}})
    assert list(fields_refused["calling_window"]) == ["day_end"]
