"""``crm customers ...``: the customers service from the shell.

Arguments are checked by the service's own schemas (one set of rules for
every caller); the CLI only shapes them and prints the answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from contracts.customers import ERASURE_REASONS
from shared.cli.rpc import emit, fail, print_table, rpc_call

app = typer.Typer(help="Customer file (客户档案): register, find, update, tiers, consent, erasure.",
                  no_args_is_help=True)
consent_app = typer.Typer(help="Give or withdraw a consent purpose.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")

LIST_COLUMNS = ["customer_id", "name", "phone", "email", "tier", "tags", "consents", "version"]


def _call(method: str, **kwargs):
    return rpc_call("customers", method, **{key: value for key, value in kwargs.items() if value is not None})


@app.command()
def register(name: str = typer.Option(..., help="Full name"),
             phone: Optional[str] = typer.Option(None), email: Optional[str] = typer.Option(None),
             birthday: Optional[str] = typer.Option(None, help="YYYY-MM-DD"),
             lunar: bool = typer.Option(False, "--lunar", help="The birthday is a lunar date"),
             locale: Optional[str] = None, timezone: Optional[str] = None,
             tier: Optional[str] = typer.Option(None, help="partner | cooperative | general | potential_competitor"),
             tag: list[str] = typer.Option([], help="Repeatable"),
             consent: list[str] = typer.Option([], help="care_messages | callbacks | marketing; repeatable"),
             command_id: Optional[str] = typer.Option(None, help="Idempotency key")):
    """Register a new customer."""
    emit(_call("register", name=name, phone=phone, email=email, birthday=birthday,
               birthday_calendar="lunar" if lunar else None, locale=locale, timezone=timezone, tier=tier,
               tags=tag or None, consents=consent or None, command_id=command_id))


@app.command()
def get(customer_id: str):
    """Show one customer (contact details unmasked for agents; the read is recorded)."""
    emit(_call("get", customer_id=customer_id))


@app.command()
def find(phone: Optional[str] = None, email: Optional[str] = None,
         name: Optional[str] = typer.Option(None, help="Name prefix"), tier: Optional[str] = None,
         tag: Optional[str] = None, page: int = 1, page_size: int = 50):
    """Search the directory; contact details are masked."""
    result = _call("find", phone=phone, email=email, name_prefix=name, tier=tier, tag=tag,
                   page=page, page_size=page_size)
    print_table(result["items"], LIST_COLUMNS,
                title=f"page {result['page']} · {len(result['items'])} of {result['total']}")


@app.command()
def update(customer_id: str, expected_version: int = typer.Option(..., help="Version you last read"),
           changes: str = typer.Option(..., help='JSON object, e.g. \'{"email": "new@example.com"}\''),
           command_id: Optional[str] = None):
    """Change details, guarded by the version you last read."""
    try:
        parsed = json.loads(changes)
    except json.JSONDecodeError as error:
        fail(f"--changes is not valid JSON: {error}", 2)
    emit(_call("update", customer_id=customer_id, changes=parsed, expected_version=expected_version,
               command_id=command_id))


@app.command("set-tier")
def set_tier(customer_id: str, tier: str, reason: str = typer.Option(...), command_id: Optional[str] = None):
    """Move a customer to another tier (伙伴型/合作型/一般型/潜在竞争型)."""
    emit(_call("set_tier", customer_id=customer_id, tier=tier, reason=reason, command_id=command_id))


@consent_app.command("give")
def give(customer_id: str, purpose: str, command_id: Optional[str] = None):
    emit(_call("give_consent", customer_id=customer_id, purpose=purpose, command_id=command_id))


@consent_app.command("withdraw")
def withdraw(customer_id: str, purpose: str, command_id: Optional[str] = None):
    emit(_call("withdraw_consent", customer_id=customer_id, purpose=purpose, command_id=command_id))


@app.command()
def erase(customer_id: str,
          reason: str = typer.Option(..., help="Why (PIPL art. 47): " + " | ".join(ERASURE_REASONS)),
          command_id: Optional[str] = None):
    """Crypto-shred a customer's PII; prints the erasure receipt."""
    emit(_call("erase", customer_id=customer_id, reason=reason, command_id=command_id))


@app.command("export")
def export_subject(customer_id: str, out: Optional[Path] = typer.Option(None, help="Write JSON here")):
    """The customer's own copy of their data (PIPL art. 45)."""
    result = _call("export_subject", customer_id=customer_id)
    if out is None:
        emit(result)
        return
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    typer.echo(f"wrote {out}")
