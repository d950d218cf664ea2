"""``crm health``: ask services for ``health()`` over RPC, as a person or a container health check would.

``probe_health`` is also how ``crm up`` learns that a service it started
is up: answering ``health()`` means it is listening and its store opens.
"""

from __future__ import annotations

import socket
from typing import Any, Mapping

import typer

from shared.auth import issue_token
from shared.cli import rpc
from shared.cli.rpc import cli_settings, fail, print_json
from shared.cli.service_choice import chosen_services
from shared.config import Settings
from shared.token_keys import PRIVATE_KEY_SETTING

HEALTH_TOKEN_TTL_SECONDS = 60


def probe_health(amqp_uri: str, token_value: str, service: str, timeout: float) -> tuple[bool, Any]:
    """``(True, health)`` if ``service.health()`` answers, else ``(False, why not)``."""
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    try:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout,
                             context_data={"authorization": token_value}) as proxy:
            return True, proxy[service].health()
    except UnknownService:
        return False, "not listening yet"
    except RpcTimeout:
        return False, f"no answer within {timeout:g}s"
    except RemoteError as error:
        return False, f"health() failed: {rpc.remote_error_message(error.exc_type, error.value)}"
    except Exception as error:  # noqa: BLE001 - broker trouble is a reason to wait, not to crash
        return False, f"broker: {type(error).__name__}: {error}"


def health(
    names: list[str] = typer.Argument(None, help="services to ask (default: all registered)"),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="seconds to wait for each answer"),
) -> None:
    """Ask services for health() over RPC; exit 1 if one does not answer.

    Without --token/CRM_TOKEN a short-lived `service` token is signed with
    the issuer's private key, or, where there is none (a service's
    container), the service's own CRM_SERVICE_TOKEN is sent, so this also
    serves as a container health check.
    """
    chosen = chosen_services(names or [], "NAMES")
    settings = cli_settings(generate_secrets=not rpc.state.token)
    token_value = rpc.state.token or _own_token(settings, list(chosen))
    rows = []
    for name in chosen:
        ok, answer = probe_health(settings.amqp_uri, token_value, name, timeout)
        row = {"service": name, "status": "up" if ok else "down"}
        if ok and isinstance(answer, Mapping):
            row.update(answer)
            row["problem"] = "; ".join(filter(None, (refused_upstreams(answer), stalled_consumers(answer),
                                                     refused_events(answer))))
        elif not ok:
            row["problem"] = answer
        rows.append(row)
    if rpc.state.json_output:
        print_json(rows)
    else:
        rpc.print_table([{**row, "lag": _max_lag(row)} for row in rows],
                        ["service", "status", ("log_position", "log"), ("relay_backlog", "unpublished"),
                         ("dead_letters", "dead letters"), ("lag", "lag"), "problem"])
    if any(row["status"] != "up" for row in rows):
        raise typer.Exit(1)


def _own_token(settings: Settings, services: list[str]) -> str:
    """What to ask with when no token is given: one signed here, else the service token of this container."""
    if settings.token_private_key is not None:
        return issue_token(settings.token_private_key, "service", f"crm-health@{socket.gethostname()}", services,
                           HEALTH_TOKEN_TTL_SECONDS)
    if settings.service_token:
        return settings.service_token
    fail(f"no token to ask with: pass --token or set {rpc.TOKEN_ENV}, or run where {PRIVATE_KEY_SETTING} "
         f"or CRM_SERVICE_TOKEN is set", 2)


def refused_upstreams(answer: Mapping[str, Any]) -> str:
    """What a healthy answer still reports: projections refusing a replaced upstream log."""
    refused = sorted({f"{name} refuses {upstream}" for name, view in _consumers(answer)
                      for upstream in view.get("forked") or {}})
    return "; ".join(refused) + " (its log was replaced: crm rebuild)" if refused else ""


def stalled_consumers(answer: Mapping[str, Any]) -> str:
    """Consumers retrying an event they may not park (an erasure, a reaction), with the error."""
    stalled = sorted(f"{name} retries {upstream} {stall.get('type')} at {stall.get('position')} "
                     f"({stall.get('attempts')} attempts: {stall.get('error')})"
                     for name, view in _consumers(answer)
                     for upstream, stall in (view.get("stalled") or {}).items() if isinstance(stall, Mapping))
    return "; ".join(stalled)


def refused_events(answer: Mapping[str, Any]) -> str:
    """Consumers that refused events as not genuine (forged, or not signed by their producer)."""
    refused = sorted(f"{name} refused {entry.get('count')} {upstream} event(s) (last: {entry.get('last_reason')})"
                     for name, view in _consumers(answer)
                     for upstream, entry in (view.get("refused") or {}).items() if isinstance(entry, Mapping))
    return "; ".join(refused)


def _consumers(answer: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(name, view)`` of every projection and reaction in a ``health()`` answer."""
    return [(name, view) for kind in ("projections", "reactions")
            if isinstance(answer.get(kind), Mapping)
            for name, view in answer[kind].items() if isinstance(view, Mapping)]


def _max_lag(row: Mapping[str, Any]) -> Any:
    consumers = _consumers(row)
    return max((view.get("lag", 0) for _name, view in consumers), default=0) if consumers else None
