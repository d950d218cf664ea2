"""The customers service: the customer file (客户档案) and consent; ``SERVICE`` declares it to ``shared.discovery``."""

from shared.discovery import ServiceSpec

SERVICE = ServiceSpec(
    name="customers",
    service_class="services.customers.service:CustomersService",
    cli="services.customers.cli:app",
    contracts="contracts.customers",
    customer_record="services.customers.aggregate:CUSTOMER",
)
