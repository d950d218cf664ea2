"""Settings from env vars and a nameko ``config.yml``, validated by a schema.

The same flat keys serve everywhere (``AMQP_URI``, ``CRM_DATA_DIR``,
``CRM_<SERVICE>_DATABASE_URL``, ``CRM_SECRET``, ``CRM_MASTER_KEY``): a value
in the nameko config wins over the environment, which wins over defaults.
Secrets missing from both are generated once into the data dir, so a
developer never needs to invent one and none is ever committed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml
from marshmallow import Schema, ValidationError as SchemaError, fields, validate

from shared.discovery import installed_services
from shared.errors import ValidationError

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
_ENV_PATTERN = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::(?P<default>[^}]*))?\}")


class _SettingsSchema(Schema):
    AMQP_URI = fields.String(required=True, validate=validate.Regexp(r"^amqps?://"))
    CRM_DATA_DIR = fields.String(required=True, validate=validate.Length(min=1))
    CRM_SECRET = fields.String(load_default=None, validate=validate.Length(min=32))
    CRM_MASTER_KEY = fields.String(load_default=None)
    CRM_DATABASE_URLS = fields.Dict(keys=fields.String(),
                                    values=fields.String(validate=validate.Regexp(r"^(sqlite|postgresql)")))


@dataclass(frozen=True)
class Settings:
    amqp_uri: str
    data_dir: Path
    secret: bytes
    master_key: bytes
    database_urls: Mapping[str, str]

    def database_url(self, service: str) -> str:
        """The store of ``service``: configured URL, else an SQLite file in the data dir."""
        return self.database_urls.get(service) or f"sqlite:///{self.data_dir / (service + '.db')}"

    def nameko_config(self) -> dict[str, Any]:
        """A nameko container config carrying these settings."""
        config: dict[str, Any] = {
            "AMQP_URI": self.amqp_uri,
            "CRM_DATA_DIR": str(self.data_dir),
            "CRM_SECRET": base64.b64encode(self.secret).decode(),
            "CRM_MASTER_KEY": base64.b64encode(self.master_key).decode(),
        }
        for service, url in self.database_urls.items():
            config[f"CRM_{service.upper()}_DATABASE_URL"] = url
        return config


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:default}`` as nameko's config loader does."""
    environ = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        return environ.get(match["name"], match["default"] or "")

    return _ENV_PATTERN.sub(substitute, text)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Load a nameko-style YAML config with env substitution."""
    try:
        loaded = yaml.safe_load(expand_env(Path(path).read_text()))
    except (OSError, yaml.YAMLError) as error:
        raise ValidationError({"config": [f"cannot read {path}: {error}"]}) from error
    if not isinstance(loaded, dict):
        raise ValidationError({"config": [f"{path} must hold a mapping"]})
    return loaded


def load_settings(config: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Merge config over env over defaults, validate, and fill in dev secrets.

    A database URL is read for each installed service, so a new service's
    ``CRM_<SERVICE>_DATABASE_URL`` needs no change here; the extra services
    of a development run use SQLite in the data dir.
    """
    config = dict(config or {})
    environ = os.environ if environ is None else environ

    def pick(key: str, default: Any = None) -> Any:
        return config.get(key) or environ.get(key) or default

    urls = {service: pick(f"CRM_{service.upper()}_DATABASE_URL") for service in installed_services()}
    raw = {
        "AMQP_URI": pick("AMQP_URI", DEFAULT_AMQP_URI),
        "CRM_DATA_DIR": pick("CRM_DATA_DIR", str(Path.cwd() / ".crm-data")),
        "CRM_SECRET": pick("CRM_SECRET"),
        "CRM_MASTER_KEY": pick("CRM_MASTER_KEY"),
        "CRM_DATABASE_URLS": {name: url for name, url in urls.items() if url},
    }
    try:
        valid = _SettingsSchema().load(raw)
    except SchemaError as error:
        raise ValidationError(error.messages) from error
    data_dir = Path(valid["CRM_DATA_DIR"]).expanduser()
    dev_secrets = _dev_secrets(data_dir) if not (valid["CRM_SECRET"] and valid["CRM_MASTER_KEY"]) else {}
    return Settings(
        amqp_uri=valid["AMQP_URI"],
        data_dir=data_dir,
        secret=_key_bytes(valid["CRM_SECRET"] or dev_secrets["secret"], "CRM_SECRET", 32),
        master_key=_key_bytes(valid["CRM_MASTER_KEY"] or dev_secrets["master_key"], "CRM_MASTER_KEY", 32),
        database_urls=valid["CRM_DATABASE_URLS"],
    )


def _key_bytes(value: str, field: str, length: int) -> bytes:
    """Keys are base64 text; the signing secret may also be any long passphrase."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    if len(raw) == length:
        return raw
    if field == "CRM_SECRET" and len(value) >= length:
        return value.encode()
    raise ValidationError({field: [f"must be {length} bytes, base64-encoded"]})


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    """Read or create the data dir's generated secrets (mode 0600)."""
    path = data_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    generated = {name: base64.b64encode(secrets.token_bytes(32)).decode() for name in ("secret", "master_key")}
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated them first
        return json.loads(path.read_text())
    with os.fdopen(descriptor, "w") as handle:
        json.dump(generated, handle)
    return generated
