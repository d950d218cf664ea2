"""The complaints service: record, classify, assign, track and confirm complaints; ``SERVICE`` declares it to ``shared.discovery``."""

from shared.discovery import ServiceSpec

SERVICE = ServiceSpec(
    name="complaints",
    service_class="services.complaints.service:ComplaintsService",
    cli="services.complaints.cli:app",
    contracts="contracts.complaints",
)
