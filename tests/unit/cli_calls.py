"""A service's typer app run in-process with its RPC calls answered by the test and recorded."""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any, Callable, Iterator

from typer.testing import CliRunner

from shared.cli import rpc

Answer = Callable[[str, dict[str, Any]], Any]  # (method, keyword arguments) -> what the service would return


@contextlib.contextmanager
def answered_calls(monkeypatch, cli_module: ModuleType, answer: Answer) -> Iterator[list[tuple[str, str, dict]]]:
    """Replace ``cli_module.rpc_call``; yields the ``(service, method, kwargs)`` of every call made."""
    made: list[tuple[str, str, dict]] = []

    def fake(service: str, method: str, **kwargs: Any) -> Any:
        made.append((service, method, kwargs))
        return answer(method, kwargs)

    monkeypatch.setattr(cli_module, "rpc_call", fake)
    rpc.configure()
    try:
        yield made
    finally:
        rpc.configure()


def run_app(app, *args: str):
    """Invoke ``app`` with a wide terminal, so tables are not cut."""
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))
