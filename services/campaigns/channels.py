"""Where care messages go: adapters behind one interface.

Every channel says how it addresses a customer (``address``; ``None``
means the customer has no contact this channel can use, skipped as
``no_contact``), delivers a batch (``deliver``: each message retried with
back-off, then given up with the reason) and says, after a crash, which
messages it can prove it delivered (``delivered``).

* ``FileSink`` (the default, needs nothing outside the service) appends
  one JSON line per message to ``<data dir>/campaigns/care-messages.jsonl``
  and syncs the file before the batch counts as sent; it can read itself
  back, so a message sent but not recorded before a crash is found there.
* ``SmtpChannel`` sends mail with ``smtplib``; each message's
  ``Message-ID`` is derived from its key.
* ``WebhookChannel`` POSTs JSON to a URL with the key as the
  ``Idempotency-Key`` header, so the receiver can drop a repeat.

Neither SMTP nor a webhook can be asked afterwards what it received, so a
message of theirs cut off by a crash between sending and recording is not
sent again: it is recorded as failed (``interrupted``), at most once (see
docs/campaigns.md, "Exactly once").
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    message_key: str
    campaign_id: str
    customer_id: str
    occurrence: str
    address: str
    subject: str
    text: str

    def to_json(self) -> str:
        """What the file sink writes and the webhook posts: the message, its key and where it goes."""
        return _JSON_OBJECT % tuple(encode_basestring(getattr(self, name)) for name in self.__slots__)


# Every field is text: quoting each into a fixed layout gives json.dumps's line without building an encoder per call.
_JSON_OBJECT = "{" + ", ".join(f'"{name}": %s' for name in Outgoing.__slots__) + "}"


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: bool
    attempts: int
    reason: str | None = None


class Channel(Protocol):
    name: str
    # True if the channel can be read back (``delivered``) and ``deliver`` returns once it holds the
    # messages: a run then records a message once, by its outcome, without a ``CareMessageQueued`` first.
    readable_back: bool

    def address(self, contact: Mapping[str, Any]) -> str | None: ...

    def deliver(self, messages: Sequence[Outgoing]) -> dict[str, Outcome]: ...

    def delivered(self, keys: Iterable[str]) -> set[str]: ...


@dataclass(frozen=True)
class Retry:
    """How often a message is tried, and the first pause (doubled each time)."""

    attempts: int = 3
    backoff_seconds: float = 0.2
    sleep: Callable[[float], None] = time.sleep

    def each(self, messages: Sequence[Outgoing], send_one: Callable[[Outgoing], None]) -> dict[str, Outcome]:
        outcomes = {}
        for message in messages:
            for attempt in range(1, self.attempts + 1):
                try:
                    send_one(message)
                except Exception as error:  # noqa: BLE001 - any failure of the far side is a failed try
                    reason = f"{type(error).__name__}: {error}"[:300]
                    log.warning("care message %s: attempt %d failed: %s", message.message_key, attempt, reason)
                    if attempt < self.attempts:
                        self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
                        continue
                    outcomes[message.message_key] = Outcome(False, attempt, reason)
                else:
                    outcomes[message.message_key] = Outcome(True, attempt)
                break
        return outcomes


class FileSink:
    name = "file"
    readable_back = True

    def __init__(self, directory: Path, retry: Retry):
        self.path = Path(directory) / "campaigns" / "care-messages.jsonl"
        self.retry = retry

    def address(self, contact: Mapping[str, Any]) -> str | None:
        return contact.get("email") or contact.get("phone")

    def deliver(self, messages: Sequence[Outgoing]) -> dict[str, Outcome]:
        lines = "".join(message.to_json() + "\n" for message in messages)
        attempts = 0
        for attempts in range(1, self.retry.attempts + 1):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a+", encoding="utf-8") as sink:
                    sink.write(self._line_start(sink) + lines)
                    sink.flush()
                    os.fsync(sink.fileno())
                return {m.message_key: Outcome(True, attempts) for m in messages}
            except OSError as error:
                reason = f"{type(error).__name__}: {error}"[:300]
                if attempts < self.retry.attempts:
                    self.retry.sleep(self.retry.backoff_seconds * 2 ** (attempts - 1))
        return {m.message_key: Outcome(False, attempts, reason) for m in messages}

    @staticmethod
    def _line_start(sink) -> str:
        """A line break first if a crash cut the last line short, so the next line stays whole."""
        end = sink.seek(0, os.SEEK_END)
        if end == 0:
            return ""
        with open(sink.name, "rb") as raw:
            raw.seek(end - 1)
            return "" if raw.read(1) == b"\n" else "\n"

    def delivered(self, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        if not wanted or not self.path.exists():
            return set()
        found = set()
        with open(self.path, encoding="utf-8") as sink:
            for line in sink:
                try:
                    key = json.loads(line)["message_key"]
                except (ValueError, KeyError):
                    continue  # a line cut short by a crash: not delivered
                if key in wanted:
                    found.add(key)
        return found


class _RemoteChannel:
    """A channel beyond the service, configured by its ``CAMPAIGNS`` section; it cannot be asked what it got."""

    readable_back = False

    def __init__(self, settings: Mapping[str, Any], retry: Retry):
        self.settings = settings
        self.retry = retry

    def delivered(self, keys: Iterable[str]) -> set[str]:
        return set()


class SmtpChannel(_RemoteChannel):
    name = "smtp"

    def address(self, contact: Mapping[str, Any]) -> str | None:
        return contact.get("email")

    def deliver(self, messages: Sequence[Outgoing]) -> dict[str, Outcome]:
        connection: list[smtplib.SMTP] = []

        def send_one(message: Outgoing) -> None:
            if not connection:
                connection.append(smtplib.SMTP(self.settings["host"], self.settings["port"],
                                               timeout=self.settings["timeout_seconds"]))
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = self.settings["sender"], message.address, message.subject
            mail["Message-ID"] = make_msgid(idstring=message.message_key.replace("|", "."), domain="carecrm")
            mail.set_content(message.text)
            try:
                connection[0].send_message(mail)
            except (smtplib.SMTPServerDisconnected, OSError):
                connection.clear()  # reconnect at the next try
                raise

        try:
            return self.retry.each(messages, send_one)
        finally:
            if connection:
                try:
                    connection[0].quit()
                except (smtplib.SMTPException, OSError):
                    pass


class WebhookChannel(_RemoteChannel):
    name = "webhook"

    def address(self, contact: Mapping[str, Any]) -> str | None:
        return contact.get("phone") or contact.get("email")

    def deliver(self, messages: Sequence[Outgoing]) -> dict[str, Outcome]:
        def send_one(message: Outgoing) -> None:
            body = message.to_json().encode()
            request = urllib.request.Request(self.settings["url"], data=body, method="POST", headers={
                "Content-Type": "application/json", "Idempotency-Key": message.message_key})
            with urllib.request.urlopen(request, timeout=self.settings["timeout_seconds"]) as response:
                if not 200 <= response.status < 300:
                    raise urllib.error.HTTPError(self.settings["url"], response.status, "not accepted",
                                                 response.headers, None)

        return self.retry.each(messages, send_one)


def make_channel(name: str, data_dir: Path, settings: Mapping[str, Any], retry: Retry) -> Channel:
    """The adapter for a campaign's channel, configured from the ``CAMPAIGNS`` settings."""
    if name == "file":
        return FileSink(data_dir, retry)
    if name == "smtp":
        return SmtpChannel(settings["smtp"], retry)
    return WebhookChannel(settings["webhook"], retry)
