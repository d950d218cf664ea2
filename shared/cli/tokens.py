"""``crm token``: sign a token for RPC calls with the issuer's private key (configured, or generated for development)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import typer

from shared.auth import DEFAULT_TTL_SECONDS, ROLES, issue_token
from shared.cli import rpc
from shared.cli.rpc import cli_settings, fail_invalid, issuer_key, print_json
from shared.cli.service_choice import chosen_services
from shared.errors import ValidationError


def token(
    role: str = typer.Option(..., "--role", help=f"one of {', '.join(ROLES)}"),
    actor: str = typer.Option(..., "--actor", help="who acts with this token (recorded in every event)"),
    audience: list[str] = typer.Option(None, "--audience", help="a service the token may call; repeat for "
                                                                 "more (default: every service)"),
    ttl: int = typer.Option(DEFAULT_TTL_SECONDS, "--ttl", help="seconds until the token expires"),
) -> None:
    """Print a signed token for RPC calls (use it with --token or CRM_TOKEN)."""
    services = list(chosen_services(audience or [], "--audience"))
    key = issuer_key(cli_settings())
    now = time.time()
    try:
        issued = issue_token(key, role, actor, services, ttl, now=now)
    except ValidationError as error:
        fail_invalid(error, "invalid token request", {"role": "--role", "actor": "--actor", "ttl": "--ttl",
                                                      "audience": "--audience"})
    if rpc.state.json_output:
        print_json({"token": issued, "role": role, "actor": actor, "audience": services,
                    "expires_at": datetime.fromtimestamp(int(now) + ttl, timezone.utc).isoformat()})
    else:
        typer.echo(issued)
