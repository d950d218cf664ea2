"""Field types shared by the contracts of every service."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lunar_python import Lunar
from marshmallow import ValidationError, fields, validate

PHONE_PATTERN = re.compile(r"^\+?[0-9]{6,15}$")
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"
MAX_PAGE = 1000  # deeper than anyone pages by hand; keeps the query's OFFSET small
MAX_PAGE_SIZE = 200

#: Never in any text: C0 and C1 controls (NUL included) and DEL, lone surrogates (not UTF-8), and the
#: bidirectional embeddings, overrides and isolates that reorder how a text is shown.
_NEVER = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_TEXT = re.compile(f"[{_NEVER}]")
_UNSAFE_IN_LINE = re.compile(f"[{_NEVER}\t\n\r]")


def refuse_unsafe_characters(value: str, multiline: bool = False) -> None:
    """Refuse control and bidirectional-override characters; ``multiline`` texts may hold tabs and line breaks."""
    found = (_UNSAFE_IN_TEXT if multiline else _UNSAFE_IN_LINE).search(value)
    if found:
        raise ValidationError("must not contain control or bidirectional-override characters "
                              f"(found U+{ord(found.group()):04X})")


class Text(fields.String):
    """Text of 1 to ``max_length`` characters without the characters no text may hold.

    One line unless ``multiline`` (tabs and line breaks allowed). A
    ``casefolded`` text is also stored case-folded as a search key, which
    can be longer ("ß" becomes "ss"), so it must fit that way too. ``rule``
    is one more validator (a pattern).
    """

    def __init__(self, max_length: int, *, multiline: bool = False, casefolded: bool = False,
                 rule: validate.Validator | None = None, **kwargs):
        rules = [validate.Length(min=1, max=max_length)] + ([rule] if rule is not None else [])
        super().__init__(validate=rules, **kwargs)
        self.max_length, self.multiline, self.casefolded = max_length, multiline, casefolded

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        refuse_unsafe_characters(text, self.multiline)
        if self.casefolded and len(text.casefold()) > self.max_length:
            raise ValidationError(f"longer than {self.max_length} characters once case-folded (it is searched so)")
        return text


class Email(fields.Email):
    """An e-mail address of at most 254 characters, without control or bidirectional-override characters."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Length(max=254), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        address = super()._deserialize(value, attr, data, **kwargs)
        refuse_unsafe_characters(address)
        return address


class Phone(fields.String):
    """A phone number; spaces, dashes and brackets are dropped, then 6–15 digits with an optional +."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        normalised = re.sub(r"[\s\-()]", "", text)
        if not PHONE_PATTERN.match(normalised):
            raise ValidationError("not a phone number: use 6 to 15 digits, optionally starting with +")
        return normalised


class TimeZone(Text):
    """An IANA time zone name such as ``Asia/Shanghai``."""

    def __init__(self, **kwargs):
        super().__init__(64, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValidationError("not a time zone: use an IANA name like Asia/Shanghai") from error
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


def identifier(**kwargs) -> Text:
    """An id: 1–64 letters, digits, dashes or underscores."""
    return Text(64, rule=validate.Regexp(r"^[A-Za-z0-9_\-]{1,64}$", error="not a valid id"), **kwargs)


def one_of(choices, **kwargs) -> fields.String:
    """One of ``choices`` (codes such as a category or an outcome)."""
    return fields.String(validate=validate.OneOf(choices), **kwargs)


def expected_version() -> fields.Integer:
    """The version the caller last read; a stale one is refused with ``Conflict``."""
    return fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1))


def command_id() -> Text:
    """Idempotency key: a repeated command with the same id returns the first result."""
    return Text(100, load_default=None, allow_none=True)


def locale(**kwargs) -> Text:
    """A locale like ``zh-CN``."""
    return Text(10, rule=validate.Regexp(LOCALE_PATTERN, error="use a locale like zh-CN"), **kwargs)


def page() -> fields.Integer:
    """Which page of a list, from 1 to ``MAX_PAGE``."""
    return fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=MAX_PAGE))


def page_size() -> fields.Integer:
    """Items per page, 1 to ``MAX_PAGE_SIZE``."""
    return fields.Integer(load_default=50, strict=True, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


def check_lunar_birthday(iso_date: str) -> str | None:
    """Why a lunar ``YYYY-MM-DD`` is not a real past lunar date, or None if it is."""
    year, month, day = (int(part) for part in iso_date.split("-"))
    try:
        solar = Lunar.fromYmd(year, month, day).getSolar()
    except Exception:  # lunar_python raises bare Exception for impossible dates, naming them
        return "not a lunar date: that lunar year has no such month or day"
    if date(solar.getYear(), solar.getMonth(), solar.getDay()) > date.today():
        return "must not be in the future"
    return None
