"""The peer: the ``eventsourcing`` library (9.5.6) doing the same job as our store.

One new aggregate saved per command (one transaction each), with the same
attributes our registration event carries. It is optional: without it the
bench reports no peer figures and says why.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlalchemy.engine import make_url

PEER_VERSION = "9.5.6"

try:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate
except ImportError as error:  # not a runtime dependency of CareCRM
    UNAVAILABLE: str | None = (f"eventsourcing is not importable ({error}); "
                               f"pip install 'eventsourcing[postgres]=={PEER_VERSION}' for the peer ratios")
else:
    UNAVAILABLE = None

    class PeerCustomer(Aggregate):
        """A customer with the attributes of our ``CustomerRegistered`` event."""

        def __init__(self, name: str, phone: str, email: str | None, birthday: str | None, birthday_calendar: str,
                     locale: str, timezone: str, tier: str, tags: list[str], consents: list[str]):
            self.name, self.phone, self.email, self.birthday = name, phone, email, birthday
            self.birthday_calendar, self.locale, self.timezone = birthday_calendar, locale, timezone
            self.tier, self.tags, self.consents = tier, tags, consents

    class PeerCustomerFile(Application):
        def register(self, attributes: Mapping[str, Any]) -> Any:
            customer = PeerCustomer(**attributes)
            self.save(customer)
            return customer.id


def installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eventsourcing")
    except PackageNotFoundError:
        return None


def postgres_driver() -> str | None:
    """The peer's PostgreSQL driver and its libpq binding (``python``, ``binary`` or ``c``)."""
    try:
        import psycopg
    except ImportError:
        return None
    return f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__})"


class PeerStore:
    """``Registrar`` over an eventsourcing ``Application``."""

    def __init__(self, env: Mapping[str, str]):
        if UNAVAILABLE:
            raise RuntimeError(UNAVAILABLE)
        self.app = PeerCustomerFile(env=dict(env))

    def register_all(self, payloads: Sequence[dict[str, Any]]) -> None:
        register = self.app.register
        for attributes in payloads:
            register(attributes)

    def sqlite_synchronous(self) -> int | None:
        """The peer's ``PRAGMA synchronous`` on SQLite (None elsewhere or if it cannot be read)."""
        datastore = getattr(self.app.recorder, "datastore", None)
        try:
            with datastore.transaction(commit=False) as cursor:  # type: ignore[union-attr]
                cursor.execute("PRAGMA synchronous")
                return cursor.fetchone()[0]
        except Exception:  # noqa: BLE001 - an internal of the peer; only a detail of the report
            return None

    def close(self) -> None:
        self.app.close()


def sqlite_env(path: str) -> dict[str, str]:
    """A SQLite file; the library switches a file database to WAL itself."""
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}


def postgres_env(url: str) -> dict[str, str]:
    """The library's POSTGRES_* settings for the database at ``url``."""
    parsed = make_url(url)
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": parsed.database or "postgres",
            "POSTGRES_HOST": parsed.host or "127.0.0.1", "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": parsed.username or "postgres",
            "POSTGRES_PASSWORD": parsed.password or ""}
