"""``crm contracts export``: it calls the exporter, or says it is missing."""

from __future__ import annotations

import json
import sys
import types

from shared.cli.contracts_export import CONTRACTS_EXPORTER


def test_contracts_export_calls_the_exporter(invoke, tmp_path, monkeypatch):
    written = [tmp_path / "out" / "a.json", tmp_path / "out" / "b.json"]
    exporter = types.ModuleType(CONTRACTS_EXPORTER)
    exporter.export = lambda out: written if out == tmp_path / "out" else []
    monkeypatch.setitem(sys.modules, CONTRACTS_EXPORTER, exporter)
    result = invoke("--json", "contracts", "export", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [str(path) for path in written]


def test_contracts_export_says_when_it_is_unavailable(invoke, monkeypatch):
    monkeypatch.setitem(sys.modules, CONTRACTS_EXPORTER, None)
    result = invoke("contracts", "export")
    assert result.exit_code == 1
    assert "not available" in result.stderr
