"""A service's own token: what it sends when it calls other services.

Its role is ``service``, its actor the service's name, and its audience the
services whose events the service follows, itself included: the upstreams
it pulls events from (``events_since``), and itself, so a container's
health check can send it to its own service. The issuer (``crm up``,
``crm serve``, the bench) writes it into the service's config as
``CRM_SERVICE_TOKEN``; the service cannot make one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import issue_token
from shared.discovery import ServiceSpec

SERVICE_TOKEN_TTL_SECONDS = 30 * 24 * 3600  # a service runs for long; crm up and crm serve issue anew when they start


def service_audience(spec: ServiceSpec) -> list[str]:
    """The services ``spec``'s service may call: those its event log follows, and itself."""
    from shared.event_log import EventLog

    log = getattr(spec.load_class(), "log", None)
    followed = log.followed_services() if isinstance(log, EventLog) else set()
    return sorted(followed | {spec.name})


def issue_service_token(private_key: Ed25519PrivateKey, spec: ServiceSpec,
                        ttl_seconds: int = SERVICE_TOKEN_TTL_SECONDS) -> str:
    return issue_token(private_key, "service", spec.name, service_audience(spec), ttl_seconds)
