"""Calling services from the shell: errors, tokens and how answers are printed."""

from __future__ import annotations

import json

import pytest
import typer

from shared.cli import rpc
from tests.unit.cli import CLOSED_BROKER


def test_remote_validation_errors_become_one_line_per_field():
    value = "invalid input: {'phone': ['not a phone number'], 'changes': {'email': ['Not a valid email.']}}"
    assert rpc.remote_error_message("ValidationError", value) == \
        "ValidationError: phone: not a phone number; changes.email: Not a valid email."
    assert rpc.remote_error_message("NotFound", "customer c-1\n does not exist") == \
        "NotFound: customer c-1 does not exist"
    assert rpc.remote_error_message("ValidationError", "something else") == "ValidationError: something else"


def test_rpc_call_without_a_token_exits_2(capsys):
    rpc.configure(token=None)
    with pytest.raises(typer.Exit) as raised:
        rpc.rpc_call("customers", "get", "c-1")
    assert raised.value.exit_code == 2
    assert "no token" in capsys.readouterr().err


def test_rpc_call_to_an_unreachable_broker_exits_1(capsys, monkeypatch):
    monkeypatch.setenv("AMQP_URI", CLOSED_BROKER)
    rpc.configure(token="t", timeout=2)
    with pytest.raises(typer.Exit) as raised:
        rpc.rpc_call("customers", "get", "c-1")
    assert raised.value.exit_code == 1
    err = capsys.readouterr().err
    assert "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/" in err
    assert "guest:guest" not in err


def test_json_output_of_records_and_tables(capsys):
    rpc.configure(json_output=True)
    rpc.print_record({"customer_id": "c-1", "version": 2})
    rpc.print_table([{"name": "张三", "tier": "general"}], ["name", "tier"])
    rpc.emit([1, 2])
    first, second, third = _json_documents(capsys.readouterr().out)
    assert first == {"customer_id": "c-1", "version": 2}
    assert second == [{"name": "张三", "tier": "general"}]
    assert third == [1, 2]


def test_terminal_output_of_records_and_tables(capsys):
    rpc.configure(json_output=False)
    rpc.print_record({"customer_id": "c-1", "tags": ["vip"], "erased": False})
    rpc.print_table([{"name": "[bold]张三", "tier": None}], [("name", "Name"), "tier"])
    out = capsys.readouterr().out
    assert "customer_id" in out and "c-1" in out and '["vip"]' in out and "no" in out
    assert "Name" in out and "[bold]张三" in out  # values are never read as markup


def _json_documents(text: str) -> list:
    decoder, position, documents = json.JSONDecoder(), 0, []
    while position < len(text.rstrip()):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


def test_redact_hides_passwords_only():
    assert rpc.redact("amqp://crm:s3cret@rabbit:5672/vh") == "amqp://crm:***@rabbit:5672/vh"
    assert rpc.redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
