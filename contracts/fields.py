"""Field types shared by the contracts of every service."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lunar_python import Lunar
from marshmallow import ValidationError, fields, validate

PHONE_PATTERN = re.compile(r"^\+?[0-9]{6,15}$")
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"


class Phone(fields.String):
    """A phone number; spaces, dashes and brackets are dropped, then 6–15 digits with an optional +."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        normalised = re.sub(r"[\s\-()]", "", text)
        if not PHONE_PATTERN.match(normalised):
            raise ValidationError("not a phone number: use 6 to 15 digits, optionally starting with +")
        return normalised


class TimeZone(fields.String):
    """An IANA time zone name such as ``Asia/Shanghai``."""

    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValidationError(f"unknown time zone {name!r}: use an IANA name like Asia/Shanghai") from error
        return name


class PastDate(fields.Date):
    """An ISO date that is not in the future; stored as ISO text."""

    def _deserialize(self, value, attr, data, **kwargs):
        day = super()._deserialize(value, attr, data, **kwargs)
        if day > date.today():
            raise ValidationError("must not be in the future")
        if day.year < 1900:
            raise ValidationError("must be in 1900 or later")
        return day.isoformat()


def identifier(**kwargs) -> fields.String:
    """An id: 1–64 letters, digits, dashes or underscores."""
    return fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_\-]{1,64}$", error="not a valid id"), **kwargs)


def command_id() -> fields.String:
    """Idempotency key: a repeated command with the same id returns the first result."""
    return fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))


def text(max_length: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


def check_lunar_birthday(iso_date: str) -> str | None:
    """Why a lunar ``YYYY-MM-DD`` is not a real past lunar date, or None if it is."""
    year, month, day = (int(part) for part in iso_date.split("-"))
    try:
        solar = Lunar.fromYmd(year, month, day).getSolar()
    except Exception as error:  # lunar_python raises bare Exception for impossible dates
        return f"not a lunar date: {error}"
    if date(solar.getYear(), solar.getMonth(), solar.getDay()) > date.today():
        return "must not be in the future"
    return None
