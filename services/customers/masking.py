"""Masks for contact details shown to people who do not need them in full."""

from __future__ import annotations


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
