"""The audit service: one tamper-evident ledger of every service's events; ``SERVICE`` declares it to ``shared.discovery``."""

from shared.discovery import ServiceSpec

SERVICE = ServiceSpec(
    name="audit",
    service_class="services.audit.service:AuditService",
    cli="services.audit.cli:app",
    contracts="contracts.audit",
    bench="services.audit.bench:audit_figures",
)
