# One image for every CareCRM service; the container's command picks the
# service: `crm serve customers` (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CRM_DATA_DIR=/var/lib/crm

WORKDIR /srv/carecrm
COPY pyproject.toml README.md LICENSE ./
COPY shared ./shared
COPY services ./services
COPY contracts ./contracts
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/crm --create-home crm

USER crm
VOLUME ["/var/lib/crm"]
CMD ["crm", "--help"]
