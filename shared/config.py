"""Settings from env vars and a nameko ``config.yml``, validated by a schema.

The same flat keys serve everywhere (``AMQP_URI``, ``CRM_DATA_DIR``,
``CRM_<SERVICE>_DATABASE_URL``, ``CRM_<SERVICE>_OWNER_DATABASE_URL``,
``CRM_MASTER_KEY``, ``CRM_TOKEN_PUBLIC_KEY``, ``CRM_SERVICE_TOKEN``, and the
event signing keys of ``shared.signing_keys``):
a value in the nameko config wins over the environment, which wins over
defaults. Secrets missing from both are generated once into the data dir, so
a developer never needs to invent one and none is ever committed. The token
issuer's private key (``CRM_TOKEN_PRIVATE_KEY``) is read only by the issuer,
the ``crm`` command; a service refuses to start with it.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from marshmallow import Schema, ValidationError as SchemaError, fields, validate

from shared.discovery import discovered_services, installed_services
from shared.ed25519_text import new_key_pair
from shared.errors import ValidationError
from shared.signing_keys import SigningKeys, load_signing_keys
from shared.token_keys import PRIVATE_KEY_SETTING, PUBLIC_KEY_SETTING, private_key, public_keys, public_keys_text

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
_ENV_PATTERN = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::(?P<default>[^}]*))?\}")
_JWT = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


class _SettingsSchema(Schema):
    AMQP_URI = fields.String(required=True, validate=validate.Regexp(r"^amqps?://"))
    CRM_DATA_DIR = fields.String(required=True, validate=validate.Length(min=1))
    CRM_MASTER_KEY = fields.String(load_default=None)
    CRM_TOKEN_PUBLIC_KEY = fields.String(load_default=None)
    CRM_TOKEN_PRIVATE_KEY = fields.String(load_default=None)
    CRM_SERVICE_TOKEN = fields.String(load_default=None, validate=validate.Regexp(
        _JWT, error="must be a token issued by crm token (three base64url parts separated by dots)"))
    CRM_DATABASE_URLS = fields.Dict(keys=fields.String(),
                                    values=fields.String(validate=validate.Regexp(r"^(sqlite|postgresql)")))


@dataclass(frozen=True)
class Settings:
    amqp_uri: str
    data_dir: Path
    master_key: bytes
    database_urls: Mapping[str, str]
    owner_database_urls: Mapping[str, str]
    token_public_keys: tuple[Ed25519PublicKey, ...]
    signing: SigningKeys  # event signing keys (shared/signing_keys.py)
    token_private_key: Ed25519PrivateKey | None = field(default=None, compare=False, repr=False)
    service_token: str | None = field(default=None, repr=False)

    def database_url(self, service: str) -> str:
        """The store of ``service``: configured URL, else an SQLite file in the data dir."""
        return self.database_urls.get(service) or f"sqlite:///{self.data_dir / (service + '.db')}"

    def owner_database_url(self, service: str) -> str | None:
        """The same PostgreSQL database as the role that owns it: only ``crm migrate`` connects so."""
        return self.owner_database_urls.get(service)

    def nameko_config(self) -> dict[str, Any]:
        """A nameko container config carrying these settings (never the issuer's private key)."""
        config: dict[str, Any] = {
            "AMQP_URI": self.amqp_uri,
            "CRM_DATA_DIR": str(self.data_dir),
            "CRM_MASTER_KEY": base64.b64encode(self.master_key).decode(),
            PUBLIC_KEY_SETTING: public_keys_text(self.token_public_keys),
        }
        if self.service_token:
            config["CRM_SERVICE_TOKEN"] = self.service_token
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
                  environ: Mapping[str, str] | None = None, issuer: bool = False) -> Settings:
    """Merge config over env over defaults, validate, and fill in dev secrets.

    A database URL is read for each installed service and each extra one of
    a development run (``CRM_EXTRA_SERVICES``), so a new service's
    ``CRM_<SERVICE>_DATABASE_URL`` needs no change here. ``issuer`` is for the
    ``crm`` command, which signs tokens: only then is the private key read.
    """
    config = dict(config or {})
    environ = os.environ if environ is None else environ

    def pick(key: str, default: Any = None) -> Any:
        return config.get(key) or environ.get(key) or default

    services = _services(environ)
    urls = {service: pick(f"CRM_{service.upper()}_DATABASE_URL") for service in services}
    owner_urls = {service: pick(owner_url_key(service)) for service in services}
    raw = {
        "AMQP_URI": pick("AMQP_URI", DEFAULT_AMQP_URI),
        "CRM_DATA_DIR": pick("CRM_DATA_DIR", str(Path.cwd() / ".crm-data")),
        "CRM_MASTER_KEY": pick("CRM_MASTER_KEY"),
        PUBLIC_KEY_SETTING: pick(PUBLIC_KEY_SETTING),
        PRIVATE_KEY_SETTING: pick(PRIVATE_KEY_SETTING),
        "CRM_SERVICE_TOKEN": pick("CRM_SERVICE_TOKEN"),
        "CRM_DATABASE_URLS": {name: url for name, url in urls.items() if url},
    }
    try:
        valid = _SettingsSchema().load(raw)
    except SchemaError as error:
        raise ValidationError(error.messages) from error
    owner_database_urls = _owner_database_urls({name: url for name, url in owner_urls.items() if url},
                                               valid["CRM_DATABASE_URLS"])
    data_dir = Path(valid["CRM_DATA_DIR"]).expanduser()
    dev_secrets = functools.cache(lambda: _dev_secrets(data_dir))
    public, private = _token_keys(valid[PUBLIC_KEY_SETTING], valid[PRIVATE_KEY_SETTING], issuer, dev_secrets)
    return Settings(
        amqp_uri=valid["AMQP_URI"],
        data_dir=data_dir,
        master_key=_key_bytes(valid["CRM_MASTER_KEY"] or dev_secrets()["master_key"], "CRM_MASTER_KEY", 32),
        database_urls=valid["CRM_DATABASE_URLS"],
        owner_database_urls=owner_database_urls,
        token_public_keys=public,
        signing=load_signing_keys(config, environ, data_dir),
        token_private_key=private,
        service_token=valid["CRM_SERVICE_TOKEN"],
    )


def _token_keys(public_text: str | None, private_text: str | None, issuer: bool,
                dev_secrets: Callable[[], dict[str, str]]
                ) -> tuple[tuple[Ed25519PublicKey, ...], Ed25519PrivateKey | None]:
    """The public keys tokens are verified with, and the private key where tokens are issued.

    With neither key configured both come from the generated development
    secrets. Without a public key setting the private key's own is used.
    """
    if private_text and not issuer:
        raise ValidationError({PRIVATE_KEY_SETTING: [
            "only the token issuer (the crm command) may hold it: remove it from this service's "
            f"config and environment and give the service {PUBLIC_KEY_SETTING} instead"]})
    if not (public_text or private_text):
        public_text = dev_secrets()["token_public_key"]
        private_text = dev_secrets()["token_private_key"] if issuer else None
    private = private_key(private_text) if private_text else None
    public = public_keys(public_text) if public_text else (private.public_key(),)  # type: ignore[union-attr]
    if private is not None and private.public_key() not in public:
        raise ValidationError({PRIVATE_KEY_SETTING: [f"is not the private key of any key in {PUBLIC_KEY_SETTING}"]})
    return public, private


def _services(environ: Mapping[str, str]) -> Mapping[str, Any]:
    """The services whose database URLs are read: installed and extra, or installed only while
    ``CRM_EXTRA_SERVICES`` is malformed (the commands that list services name that error)."""
    try:
        return discovered_services(environ)
    except ValidationError:
        return installed_services()


def _key_bytes(value: str, field_name: str, length: int) -> bytes:
    """A key as base64 text of exactly ``length`` bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != length:
        raise ValidationError({field_name: [f"must be {length} bytes, base64-encoded"]})
    return raw


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    """Read the data dir's generated secrets, creating (or completing) them first if needed.

    The file is written whole to a temporary file before it gets its name,
    so a process starting at the same time never reads half of it. A new
    file gets its name with a hard link, which, unlike a rename, fails if
    another process created the file first; then that one's secrets are
    used. A file from an older version keeps its values and gets the missing ones.
    """
    path = data_dir / "secrets.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    if {"master_key", "token_private_key", "token_public_key"} <= current.keys():
        return current
    data_dir.mkdir(parents=True, exist_ok=True)
    token_private_key, token_public_key = new_key_pair()
    wanted = {"master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
              "token_private_key": token_private_key, "token_public_key": token_public_key, **current}
    descriptor, temporary = tempfile.mkstemp(dir=data_dir, prefix=".secrets-", suffix=".json")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(wanted, handle)
        if current:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:  # another process generated them first
                pass
    finally:
        Path(temporary).unlink(missing_ok=True)
    return json.loads(path.read_text())


def owner_url_key(service: str) -> str:
    """The setting holding the URL of ``service``'s database as the role that owns it."""
    return f"CRM_{service.upper()}_OWNER_DATABASE_URL"


def is_owner_url_key(key: str) -> bool:
    """Whether ``key`` is an owner URL setting: a service process is never given one."""
    return key.startswith("CRM_") and key.endswith("_OWNER_DATABASE_URL")


def _owner_database_urls(owner_urls: Mapping[str, str], database_urls: Mapping[str, str]) -> dict[str, str]:
    """Owner URLs, each of the PostgreSQL database its service connects to as a role of its own.

    The owner migrates the database and grants that role its rights, so
    both URLs must name one database, and the service's must name the role.
    """
    problems: dict[str, list[str]] = {}
    for service, owner_url in owner_urls.items():
        service_key = f"CRM_{service.upper()}_DATABASE_URL"
        service_url = database_urls.get(service, "")
        if not owner_url.startswith("postgresql"):
            problem = "must be a postgresql:// URL (SQLite has no roles: a service migrates its own file)"
        elif not service_url.startswith("postgresql") or _database_of(owner_url) != _database_of(service_url):
            problem = f"must name the same PostgreSQL database as {service_key}, as the role that owns it"
        elif not urlsplit(service_url).username:
            problem = f"needs the service's role named in {service_key} (postgresql://ROLE@host/database)"
        else:
            continue
        problems[owner_url_key(service)] = [problem]
    if problems:
        raise ValidationError(problems)
    return dict(owner_urls)


def _database_of(url: str) -> tuple[str | None, int, str]:
    """Host, port and database name of a PostgreSQL URL."""
    parts = urlsplit(url)
    return parts.hostname, parts.port or 5432, parts.path.lstrip("/")
