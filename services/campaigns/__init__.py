"""The campaigns service: birthday and holiday care messages; ``SERVICE`` declares it to ``shared.discovery``."""

from shared.discovery import ServiceSpec

SERVICE = ServiceSpec(
    name="campaigns",
    service_class="services.campaigns.service:CampaignsService",
    cli="services.campaigns.cli:app",
    contracts="contracts.campaigns",
)
