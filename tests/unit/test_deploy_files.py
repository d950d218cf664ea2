"""The files for users' machines are valid: compose file, Dockerfile, broker and nameko config.

No docker engine runs here, so ``docker-compose.yml`` is checked against a
JSON Schema of the part of the compose specification it uses, plus the
cross-references a ``docker compose config`` would not catch (health checks
behind ``service_healthy``, the broker user, one database per service, the
database roles ``deploy/postgres-init.sql`` makes and the URLs that use them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.rpc import RPC_QUEUE_TEMPLATE, RPC_REPLY_QUEUE_TEMPLATE

from contracts.catalogue import EVENTS
from shared.config import load_settings, owner_url_key, read_config_file
from shared.discovery import installed_services
from shared.ed25519_text import new_private_key_text, private_key_from_text, public_key_text

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DEV_BROKER_PASSWORD = "crm"  # documented in deploy/runbook.md
SERVICES = installed_services()

# -- docker-compose.yml --------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(us|ms|s|m|h))+$"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_ENVIRONMENT = {"oneOf": [
    {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
    {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*(=.*)?$"}},
]}
COMPOSE_SUBSET_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["services"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "services": {"type": "object", "minProperties": 1,
                     "patternProperties": {"^[a-zA-Z0-9._-]+$": {"$ref": "#/$defs/service"}},
                     "additionalProperties": False},
        "volumes": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
        "networks": {"type": "object"},
    },
    "patternProperties": {"^x-": {}},
    "additionalProperties": False,
    "$defs": {
        "service": {
            "type": "object",
            "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "build": {"oneOf": [{"type": "string"}, {
                    "type": "object", "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"}},
                    "additionalProperties": False}]},
                "command": {"oneOf": [{"type": "string"}, _STRINGS]},
                "hostname": {"type": "string"},
                "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
                "environment": _ENVIRONMENT,
                "ports": {"type": "array", "items": {"type": "string",
                                                     "pattern": r"^((\d+\.){3}\d+:)?\d+(:\d+)?(/(tcp|udp))?$"}},
                "volumes": {"type": "array", "items": {"type": "string", "pattern": r"^[^:]+:/[^:]*(:(ro|rw))?$"}},
                "depends_on": {"oneOf": [_STRINGS, {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["condition"],
                    "properties": {"condition": {"enum": ["service_started", "service_healthy",
                                                          "service_completed_successfully"]},
                                   "restart": {"type": "boolean"}, "required": {"type": "boolean"}},
                    "additionalProperties": False}}]},
                "healthcheck": {"type": "object", "required": ["test"], "properties": {
                    "test": {"oneOf": [{"type": "string"}, {
                        "type": "array", "minItems": 2, "items": {"type": "string"},
                        "prefixItems": [{"enum": ["CMD", "CMD-SHELL", "NONE"]}]}]},
                    "interval": _DURATION, "timeout": _DURATION, "start_period": _DURATION,
                    "retries": {"type": "integer", "minimum": 1}}, "additionalProperties": False},
            },
            "patternProperties": {"^x-": {}},
            "additionalProperties": False,
        },
    },
}


def interpolate(text: str, environ: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``."""
    def substitute(match: re.Match[str]) -> str:
        value, op, arg = environ.get(match["name"]), match["op"], match["arg"]
        if op in (":-", ":?") and not value or op in ("-", "?") and value is None:
            if op.endswith("?"):
                raise AssertionError(f"{match['name']} is required: {arg}")
            return arg or ""
        return value or ""

    unresolved = re.sub(_INTERPOLATION, "", text.replace("$$", ""))
    assert "${" not in unresolved, f"malformed interpolation in: {unresolved[unresolved.index('${'):][:60]}"
    return _INTERPOLATION.sub(substitute, text)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text(), {}))


@pytest.fixture(scope="module")
def definitions() -> dict:
    return json.loads((DEPLOY / "definitions.json").read_text())


def test_compose_file_matches_the_compose_schema_subset(compose):
    jsonschema.Draft202012Validator.check_schema(COMPOSE_SUBSET_SCHEMA)
    errors = sorted(jsonschema.Draft202012Validator(COMPOSE_SUBSET_SCHEMA).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(error.absolute_path)}: {error.message}" for error in errors)


def test_compose_runs_the_broker_the_database_and_every_registered_service(compose):
    services = compose["services"]
    assert "management" in services["rabbitmq"]["image"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name in SERVICES:
        service = services[name]
        assert service["build"]["context"] == "."
        assert (ROOT / service["build"].get("dockerfile", "Dockerfile")).is_file()
        command = service["command"] if isinstance(service["command"], list) else shlex.split(service["command"])
        assert command in (["crm", "serve", name], ["nameko", "run", SERVICES[name].service_class]) or \
            command[:3] == ["nameko", "run", SERVICES[name].service_class]
    assert services["migrate"]["command"] == ["crm", "migrate"] and services["migrate"]["restart"] == "no"


def test_dependencies_wait_for_health_checks(compose):
    services = compose["services"]
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
    for name in SERVICES:
        assert set(services[name]["depends_on"]) >= {"rabbitmq", "postgres", "migrate"}
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["healthcheck"]["test"][:3] == ["CMD", "crm", "health"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@dataclass(frozen=True)
class InitSql:
    """What ``deploy/postgres-init.sql`` makes."""

    password_variables: dict[str, str]  # login role -> environment variable holding its password
    database_owners: dict[str, str]
    connect_grants: set[tuple[str, str]]  # (database, role)
    closed_to_public: set[str]  # databases PUBLIC may not connect to
    members_of: dict[str, set[str]]  # role -> roles granted to it


@pytest.fixture(scope="module")
def init_sql() -> InitSql:
    text = (DEPLOY / "postgres-init.sql").read_text()
    environment_of = dict(re.findall(r"^\\getenv (\w+) (\w+)$", text, re.MULTILINE))
    return InitSql(
        {role: environment_of[variable]
         for role, variable in re.findall(r"^CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)';$", text, re.MULTILINE)},
        dict(re.findall(r"^CREATE DATABASE (\w+) OWNER (\w+);$", text, re.MULTILINE)),
        set(re.findall(r"^GRANT CONNECT ON DATABASE (\w+) TO (\w+);$", text, re.MULTILINE)),
        {name for names in re.findall(r"^REVOKE ALL ON DATABASE ([\w, ]+) FROM PUBLIC;$", text, re.MULTILINE)
         for name in names.split(", ")},
        {member: set(roles.split(", ")) for roles, member in re.findall(r"^GRANT ([\w, ]+) TO (\w+);$", text,
                                                                          re.MULTILINE) if " ON " not in roles},
    )


def test_each_service_has_its_own_database_and_reaches_the_broker(compose, definitions, init_sql, tmp_path):
    services = compose["services"]
    databases = set()
    for name in SERVICES:
        env = services[name]["environment"]
        amqp = urlsplit(env["AMQP_URI"])
        assert amqp.hostname == "rabbitmq" and (amqp.port or 5672) == 5672
        assert amqp.username == f"crm-{name}", "each service reaches the broker as its own user"
        user = next(user for user in definitions["users"] if user["name"] == amqp.username)
        assert _rabbit_hash_matches(user["password_hash"], amqp.password)
        database = urlsplit(env[f"CRM_{name.upper()}_DATABASE_URL"])
        assert database.scheme == "postgresql" and database.hostname == "postgres"
        databases.add(database.path.lstrip("/"))
        assert env["CRM_DATA_DIR"].startswith("/")
        # the container's data dir holds its generated secrets; here a temporary one stands in for it
        loaded = {**{key: value for key, value in env.items() if value}, "CRM_DATA_DIR": str(tmp_path)}
        settings = load_settings(loaded, environ={})
        assert settings.database_url(name) == env[f"CRM_{name.upper()}_DATABASE_URL"]
    assert len(databases) == len(SERVICES) and databases <= set(init_sql.database_owners)


def test_each_service_connects_as_a_role_of_its_own_and_only_the_owner_migrates(compose, init_sql, tmp_path):
    services = compose["services"]
    postgres_env = services["postgres"]["environment"]
    migrate = load_settings({"CRM_DATA_DIR": str(tmp_path), **services["migrate"]["environment"]}, environ={})
    assert postgres_env["POSTGRES_USER"] not in init_sql.password_variables  # the superuser is no CRM role
    for name in SERVICES:
        env = services[name]["environment"]
        assert owner_url_key(name) not in env  # a service is never given the owner's URL
        service = urlsplit(env[f"CRM_{name.upper()}_DATABASE_URL"])
        database, role = service.path.lstrip("/"), service.username
        owner = init_sql.database_owners[database]
        assert role not in (owner, postgres_env["POSTGRES_USER"])
        assert postgres_env[init_sql.password_variables[role]] == service.password
        assert (database, role) in init_sql.connect_grants and database in init_sql.closed_to_public

        owner_url = urlsplit(migrate.owner_database_url(name))
        assert (owner_url.username, owner_url.hostname, owner_url.path) == (owner, "postgres", service.path)
        assert postgres_env[init_sql.password_variables[owner]] == owner_url.password
        assert urlsplit(migrate.database_url(name)).username == role  # whom the owner grants the rights
        assert role in init_sql.members_of[owner]  # so the owner may hand it its working tables


def test_bind_mounts_exist_and_named_volumes_are_declared(compose):
    rabbit_conf = _conf(DEPLOY / "rabbitmq.conf")
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (ROOT / source).is_file(), source
                if source.endswith("definitions.json"):
                    assert rabbit_conf["definitions.local.path"] == target
            else:
                assert source in compose["volumes"], f"undeclared volume {source}"


def test_secrets_are_never_written_into_the_compose_file(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    for key in ("CRM_MASTER_KEY", "CRM_TOKEN_PUBLIC_KEY", "CRM_SERVICE_KEYS",
                *(f"CRM_{name.upper()}_SIGNING_KEY" for name in SERVICES)):
        assert re.search(rf"{key}: \$\{{{key}:-\}}", text), f"{key} must come from the environment"
    for name in SERVICES:
        assert re.search(rf"CRM_SERVICE_TOKEN: \$\{{CRM_{name.upper()}_SERVICE_TOKEN:-\}}", text), name
    assert "CRM_TOKEN_PRIVATE_KEY" not in yaml.safe_dump(compose)  # no service container gets the issuer's key


# -- Dockerfile -----------------------------------------------------------------

def test_dockerfile_installs_the_project_on_python_3_11():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    text = "\n".join(lines)
    assert re.search(r"\bpip install \.(\s|$)", text)
    copied = {part for line in lines if line.startswith("COPY") for part in line.split()[1:-1]}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in packages["include"]:
        assert pattern.rstrip("*") in copied
    assert {"pyproject.toml", "README.md", "LICENSE"} <= copied
    assert any(line.startswith("USER ") and line != "USER root" for line in lines)


# -- RabbitMQ ---------------------------------------------------------------------

def _rabbit_hash_matches(password_hash: str, password: str | None) -> bool:
    """rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + password))."""
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return password is not None and hashlib.sha256(salt + password.encode()).digest() == digest


def _conf(path: Path) -> dict[str, str]:
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        assert equals and re.match(r"^[a-z_][a-z0-9_.]*$", key.strip()), f"rabbitmq.conf line {number}: {line}"
        entries[key.strip()] = value.strip()
    return entries


def test_definitions_have_the_expected_shape(definitions):
    for key in ("users", "vhosts", "permissions", "policies", "queues", "exchanges", "bindings"):
        assert isinstance(definitions[key], list), key
    user = definitions["users"][0]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert _rabbit_hash_matches(user["password_hash"], DEV_BROKER_PASSWORD)
    service_users = {f"crm-{name}" for name in SERVICES}
    for service_user in definitions["users"][1:]:
        assert service_user["name"] in service_users and service_user["tags"] == []  # no management access
        assert _rabbit_hash_matches(service_user["password_hash"], service_user["name"])  # development password
    vhosts = {vhost["name"]: vhost for vhost in definitions["vhosts"]}
    assert vhosts["/"]["default_queue_type"] == "quorum"
    assert vhosts["/"]["metadata"]["default_queue_type"] == "quorum"
    assert {(p["user"], p["vhost"]) for p in definitions["permissions"]} == \
        {(user["name"], "/"), *((name, "/") for name in service_users)}
    for item in definitions["queues"] + definitions["exchanges"] + definitions["bindings"] + definitions["policies"]:
        assert item["vhost"] in vhosts


def test_service_queues_are_quorum_queues_that_dead_letter(definitions):
    exchanges = {exchange["name"]: exchange for exchange in definitions["exchanges"]}
    queues = {queue["name"]: queue for queue in definitions["queues"]}

    def policy_for(queue_name: str) -> dict | None:
        matching = [policy for policy in definitions["policies"]
                    if policy["apply-to"] in ("queues", "quorum_queues", "all")
                    and re.search(policy["pattern"], queue_name)]
        return max(matching, key=lambda policy: policy["priority"], default=None)

    for nameko_queue in ("rpc-customers", "evt-customers-CustomerRegistered--campaigns.on_registered"):
        policy = policy_for(nameko_queue)
        assert policy is not None and policy["apply-to"] == "quorum_queues", nameko_queue
        rules = policy["definition"]
        assert rules["dead-letter-exchange"] in exchanges
        assert rules["delivery-limit"] > 0
        assert rules["dead-letter-strategy"] == "at-least-once" and rules["overflow"] == "reject-publish"
    assert policy_for("rpc.reply-standalone_rpc_proxy-1234") is None  # client reply queues stay as declared

    dlx = next(iter(exchanges.values()))
    bound = [binding for binding in definitions["bindings"] if binding["source"] == dlx["name"]]
    assert bound and all(binding["destination"] in queues for binding in bound)
    for binding in bound:
        dead_letters = queues[binding["destination"]]
        assert dead_letters["durable"] and dead_letters["arguments"]["x-queue-type"] == "quorum"
        policy = policy_for(dead_letters["name"])
        assert policy is None or "dead-letter-exchange" not in policy["definition"]  # no loop


def _permissions(definitions: dict, user: str) -> dict[str, str]:
    return next(p for p in definitions["permissions"] if p["user"] == user and p["vhost"] == "/")


def _names_a_service_uses(name: str) -> dict[str, list[str]]:
    """The exchanges and queues ``name``'s nameko container declares, publishes to and consumes from."""
    upstreams = sorted(SERVICES[name].load_class().log.followed_services() - {name})
    handler_queues = [f"evt-{upstream}-#--{name}.on_upstream_event" for upstream in upstreams]
    own_queues = [RPC_QUEUE_TEMPLATE.format(name), RPC_REPLY_QUEUE_TEMPLATE.format(name, uuid.uuid4()),
                  RPC_REPLY_QUEUE_TEMPLATE.format("standalone_rpc_proxy", uuid.uuid4()), *handler_queues]
    return {"configure": ["nameko-rpc", f"{name}.events", *(f"{upstream}.events" for upstream in upstreams),
                          *own_queues],
            "write": ["nameko-rpc", f"{name}.events", *own_queues],  # publish: RPC, replies, its events; bind
            "read": ["nameko-rpc", *(f"{upstream}.events" for upstream in upstreams), *own_queues]}


def test_each_service_user_may_do_what_its_service_does_and_publish_events_only_on_its_own_exchange(definitions):
    for name in SERVICES:
        permissions = _permissions(definitions, f"crm-{name}")
        for kind, resources in _names_a_service_uses(name).items():
            for resource in resources:
                assert re.search(permissions[kind], resource), f"crm-{name} may not {kind} {resource}"
        for other in set(SERVICES) - {name}:
            for forbidden in (f"{other}.events", RPC_QUEUE_TEMPLATE.format(other), f"evt-{name}-#--{other}.handle"):
                assert not re.search(permissions["write"], forbidden), f"crm-{name} may write {forbidden}"
            assert not re.search(permissions["read"], RPC_QUEUE_TEMPLATE.format(other))


def test_topic_permissions_let_each_service_publish_event_types_only_on_its_own_exchange(definitions):
    topics = {(topic["user"], topic["exchange"]): topic for topic in definitions["topic_permissions"]}
    event_types = sorted({event_type for service_events in EVENTS.values() for event_type in service_events})
    for name in SERVICES:
        for exchange_of in SERVICES:
            topic = topics[(f"crm-{name}", f"{exchange_of}.events")]
            assert topic["vhost"] == "/" and re.search(topic["read"], "#")
            published = [event_type for event_type in event_types if re.search(topic["write"], event_type)]
            assert published == (event_types if exchange_of == name else []), (name, exchange_of)


def test_rabbitmq_conf_loads_the_definitions():
    conf = _conf(DEPLOY / "rabbitmq.conf")
    assert conf["definitions.import_backend"] == "local_filesystem"
    assert conf["definitions.local.path"] == "/etc/rabbitmq/definitions.json"
    assert conf["management.tcp.port"] == "15672"


# -- nameko config example ---------------------------------------------------------

def test_example_config_loads_through_shared_config(monkeypatch, tmp_path):
    database_keys = [key for name in SERVICES for key in (f"CRM_{name.upper()}_DATABASE_URL", owner_url_key(name))]
    for key in ("AMQP_URI", "CRM_MASTER_KEY", "CRM_TOKEN_PUBLIC_KEY", "CRM_TOKEN_PRIVATE_KEY", "CRM_SERVICE_TOKEN",
                "CRM_MAX_WORKERS", "CRM_LOG_LEVEL", "CRM_SERVICE_KEYS", *database_keys,
                *(f"CRM_{name.upper()}_SIGNING_KEY" for name in SERVICES)):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path / "data"))
    config = read_config_file(DEPLOY / "config.yml")
    for key in ("AMQP_URI", "CRM_DATA_DIR", "CRM_MASTER_KEY", "CRM_TOKEN_PUBLIC_KEY", "CRM_SERVICE_TOKEN",
                "CRM_SERVICE_KEYS", *database_keys):
        assert key in config, key
    assert "CRM_TOKEN_PRIVATE_KEY" not in config  # the example is a service's config
    assert not any(key.endswith("_SIGNING_KEY") for key in config)  # a private key belongs to one service
    settings = load_settings(config)
    assert settings.amqp_uri == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.data_dir == tmp_path / "data"
    assert settings.database_url("customers") == f"sqlite:///{tmp_path / 'data' / 'customers.db'}"
    assert settings.owner_database_url("customers") is None
    assert len(settings.master_key) == 32 and (tmp_path / "data" / "secrets.json").exists()
    assert settings.token_private_key is None and settings.service_token is None
    assert config["max_workers"] == 10 and config["LOGGING"]["root"]["level"] == "INFO"


def test_example_config_takes_values_from_the_environment(monkeypatch, tmp_path):
    master_key = base64.b64encode(b"k" * 32).decode()
    public_key = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    monkeypatch.setenv("AMQP_URI", "amqp://crm:crm@rabbit:5672/")
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_MASTER_KEY", master_key)
    monkeypatch.setenv("CRM_TOKEN_PUBLIC_KEY", public_key)
    monkeypatch.setenv("CRM_SERVICE_TOKEN", "header.claims.signature")
    monkeypatch.setenv("CRM_CUSTOMERS_DATABASE_URL", "postgresql://crm@db:5432/customers")
    signing_key = new_private_key_text()
    signing_public_key = public_key_text(private_key_from_text(signing_key).public_key())
    monkeypatch.setenv("CRM_SERVICE_KEYS", json.dumps({"customers": signing_public_key,
                                                       "complaints": signing_public_key}))
    monkeypatch.setenv("CRM_CUSTOMERS_SIGNING_KEY", signing_key)
    settings = load_settings(read_config_file(DEPLOY / "config.yml"))
    assert public_key_text(settings.signing.signer("customers").public_key) == signing_public_key
    assert settings.amqp_uri == "amqp://crm:crm@rabbit:5672/"
    assert settings.master_key == b"k" * 32
    assert settings.nameko_config()["CRM_TOKEN_PUBLIC_KEY"] == public_key
    assert settings.service_token == "header.claims.signature"
    assert settings.database_url("customers") == "postgresql://crm@db:5432/customers"
    assert not (tmp_path / "secrets.json").exists()


def test_nameko_reads_the_example_config_the_same_way(monkeypatch, tmp_path):
    from nameko.cli.main import setup_yaml_parser

    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AMQP_URI", raising=False)
    setup_yaml_parser()
    assert yaml.safe_load((DEPLOY / "config.yml").read_text()) == read_config_file(DEPLOY / "config.yml")


# -- the two commands --------------------------------------------------------------

def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[dev]' && crm up" in readme
    assert re.search(r"^\s+pytest$", readme, re.MULTILINE)
    assert re.search(r"^pip install -e '\.\[dev\]'$", ci, re.MULTILINE)
    assert re.search(r"^pytest$", ci, re.MULTILINE)
    for key in ("AMQP_URI", "CRM_DATA_DIR", "CRM_<SERVICE>_DATABASE_URL", "CRM_<SERVICE>_OWNER_DATABASE_URL",
                "CRM_MASTER_KEY", "CRM_TOKEN_PUBLIC_KEY", "CRM_TOKEN_PRIVATE_KEY", "CRM_SERVICE_TOKEN", "CRM_TOKEN",
                "CRM_TEST_POSTGRES_URL"):
        assert f"| `{key}` |" in readme, key


def test_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_prometheus_scrapes_every_installed_service_on_its_metrics_port(compose):
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    port = compose["x-crm-environment"]["CRM_METRICS_PORT"]
    assert sorted(job["static_configs"][0]["targets"]) == sorted(f"{name}:{port}" for name in SERVICES)
    assert all(name in compose["services"] for name in SERVICES)
