"""Masks for personal data shown to people who do not need it in full.

A masked value says that there is one and helps tell records apart, but
does not identify the customer: the first character of the name, the
ends of the phone number, the mailbox's first letter and the domain,
the year of birth.
"""

from __future__ import annotations


def mask_name(name: str | None) -> str | None:
    """Keep the first character: ``张*``, ``张**``, ``W*********``; a one-character name is ``*``."""
    if not name:
        return name
    if len(name) == 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    """Keep the first three and last four digits: ``138****5678``."""
    if not phone:
        return phone
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_email(email: str | None) -> str | None:
    """Keep the first letter of the mailbox and the domain: ``a***@example.com``."""
    if not email or "@" not in email:
        return email
    mailbox, domain = email.split("@", 1)
    return f"{mailbox[:1]}***@{domain}"


def mask_birthday(birthday: str | None) -> str | None:
    """Keep the year: ``1985-**-**``."""
    if not birthday:
        return birthday
    return birthday[:4] + "-**-**"


MASKS = {"name": mask_name, "phone": mask_phone, "email": mask_email, "birthday": mask_birthday}
