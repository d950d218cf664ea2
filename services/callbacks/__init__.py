"""The callbacks service: follow-up calls (回访); ``SERVICE`` declares it to ``shared.discovery``."""

from shared.discovery import ServiceSpec

SERVICE = ServiceSpec(
    name="callbacks",
    service_class="services.callbacks.service:CallbacksService",
    cli="services.callbacks.cli:app",
    contracts="contracts.callbacks",
)
