"""``crm token``: sign a token for RPC calls with the configured (or generated) secret."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import typer

from shared.auth import DEFAULT_TTL_SECONDS, ROLES, issue_token
from shared.cli import rpc
from shared.cli.rpc import cli_settings, fail_invalid, print_json
from shared.errors import ValidationError


def token(
    role: str = typer.Option(..., "--role", help=f"one of {', '.join(ROLES)}"),
    actor: str = typer.Option(..., "--actor", help="who acts with this token (recorded in every event)"),
    ttl: int = typer.Option(DEFAULT_TTL_SECONDS, "--ttl", help="seconds until the token expires"),
) -> None:
    """Print a signed token for RPC calls (use it with --token or CRM_TOKEN)."""
    settings = cli_settings()
    now = time.time()
    try:
        issued = issue_token(settings.secret, role, actor, ttl, now=now)
    except ValidationError as error:
        fail_invalid(error, "invalid token request", {"role": "--role", "actor": "--actor", "ttl": "--ttl"})
    if rpc.state.json_output:
        print_json({"token": issued, "role": role, "actor": actor,
                    "expires_at": datetime.fromtimestamp(int(now) + ttl, timezone.utc).isoformat()})
    else:
        typer.echo(issued)
