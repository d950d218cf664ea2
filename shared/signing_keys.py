"""Settings for event signing: each service's private key and every service's public keys.

* ``CRM_<SERVICE>_SIGNING_KEY``: the service's own Ed25519 private key
  (``shared.ed25519_text``: PEM, or the raw 32 bytes in base64). Only that
  service's config should hold it.
* ``CRM_SERVICE_KEYS``: every service's public key, in the same forms, as
  a mapping ``service: key`` or ``service: [key, ...]`` (the current key
  and earlier ones while a key is rotated). In a nameko config it is a
  mapping; in the environment, its JSON. The same on every service.

When ``CRM_SERVICE_KEYS`` is not set (development), each service's key
pair comes from ``<data dir>/signing/<service>.key``, generated on first
use, and every service on the machine reads the others' public keys
there; a configured private key still wins for its service. ``crm up``
hands each service its own key and everyone's public keys explicitly.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from contracts.envelope import SERVICE_NAME
from shared.discovery import discovered_services
from shared.errors import ValidationError
from shared.ed25519_text import (KEY_FORMAT, new_private_key_text, private_key_from_text, public_key_from_text,
                                 public_key_text)
from shared.signing import EventSigner, ServiceKeys

SERVICE_KEYS = "CRM_SERVICE_KEYS"
_SIGNING_KEY = re.compile(r"^CRM_(?P<service>[A-Z][A-Z0-9_]*)_SIGNING_KEY$")
_SERVICE_KEYS_SHAPE = 'must map each service to its public key(s), e.g. {"customers": "<base64 key>"}'


def signing_key_setting(service: str) -> str:
    """The setting that holds ``service``'s private key."""
    return f"CRM_{service.upper()}_SIGNING_KEY"


@dataclass(frozen=True)
class SigningKeys:
    """The signing settings, validated; development keys are read (or made) only when asked for."""

    data_dir: Path
    private_keys: Mapping[str, str]  # service -> CRM_<SERVICE>_SIGNING_KEY as configured
    public_keys: Mapping[str, tuple[str, ...]] | None  # CRM_SERVICE_KEYS; None: development keys

    def signer(self, service: str) -> EventSigner:
        """``service``'s signer; a key whose public half is not listed for ``service`` is refused."""
        signer = EventSigner(service, private_key_from_text(self._private_text(service)))
        if signer.public_key not in self.service_keys().accepted(service):
            raise ValidationError({signing_key_setting(service): [
                f"its public key is not listed for {service} in {SERVICE_KEYS}; add it there, on every service"]})
        return signer

    def service_keys(self) -> ServiceKeys:
        """Every service's accepted public keys, for checking events and logs."""
        return ServiceKeys({service: map(public_key_from_text, texts)
                            for service, texts in self.public_texts().items()})

    def public_texts(self) -> dict[str, tuple[str, ...]]:
        """``CRM_SERVICE_KEYS`` as configured, or the development keys of every service this machine runs."""
        if self.public_keys is not None:
            return dict(self.public_keys)
        services = sorted({*discovered_services(), *self.private_keys})
        return {service: (public_key_text(private_key_from_text(self._private_text(service)).public_key()),)
                for service in services}

    def nameko_config(self, service: str) -> dict[str, Any]:
        """What ``service``'s own config carries: its private key and everyone's public keys."""
        return {SERVICE_KEYS: {name: list(texts) for name, texts in self.public_texts().items()},
                signing_key_setting(service): self._private_text(service)}

    def _private_text(self, service: str) -> str:
        configured = self.private_keys.get(service)
        if configured is not None:
            return configured
        if self.public_keys is not None:
            raise ValidationError({signing_key_setting(service): [
                f"required when {SERVICE_KEYS} is set: the {service} service's Ed25519 private key, "
                f"{KEY_FORMAT}"]})
        return dev_signing_key(self.data_dir, service)


def load_signing_keys(config: Mapping[str, Any], environ: Mapping[str, str], data_dir: Path) -> SigningKeys:
    """The signing settings from ``config`` over ``environ``; a bad value raises ``ValidationError`` naming it."""
    private: dict[str, Any] = {}
    for source in (environ, config):
        for key, value in source.items():
            match = _SIGNING_KEY.match(key)
            if match and value:
                private[match["service"].lower()] = value
    problems: dict[str, list[str]] = {}
    for service, text in private.items():
        try:
            private_key_from_text(text)
        except ValueError as error:
            problems[signing_key_setting(service)] = [str(error)]
    raw_public = config.get(SERVICE_KEYS) or environ.get(SERVICE_KEYS)
    public = None
    if raw_public:
        public, public_problems = parse_service_keys(raw_public)
        if public_problems:
            problems[SERVICE_KEYS] = public_problems
    if problems:
        raise ValidationError(problems)
    return SigningKeys(data_dir, private, public)


def parse_service_keys(raw: Any) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """``CRM_SERVICE_KEYS`` (a mapping, or its JSON) as ``service -> keys``, and what is wrong with it."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}, [f"{_SERVICE_KEYS_SHAPE} (not valid JSON)"]
    if not isinstance(raw, Mapping) or not raw:
        return {}, [_SERVICE_KEYS_SHAPE]
    keys: dict[str, tuple[str, ...]] = {}
    problems = []
    for service, texts in raw.items():
        if not isinstance(service, str) or not re.match(SERVICE_NAME, service):
            problems.append(f"{service!r} is not a service name")
            continue
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts:
            problems.append(f"{service}: give a public key, or a list of them")
            continue
        for text in texts:
            try:
                public_key_from_text(text)
            except ValueError as error:
                problems.append(f"{service}: {error}")
        keys[service] = tuple(texts)
    return keys, problems


def dev_signing_key(data_dir: Path, service: str) -> str:
    """``service``'s development private key from ``<data_dir>/signing/<service>.key``, made on first use.

    The file is written under a temporary name (mode 0600) and then linked
    into place: the link is atomic, and unlike a rename it fails if another
    process put its own key there first, which is then the one used.
    """
    directory = data_dir / "signing"
    path = directory / f"{service}.key"
    if not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{service}-", suffix=".key")
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(new_private_key_text() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first
        finally:
            os.unlink(temporary)
    text = path.read_text().strip()
    try:
        private_key_from_text(text)
    except ValueError as error:
        raise ValidationError({signing_key_setting(service): [
            f"not set, and the development key in {path} is unusable ({error}); delete that file"]}) from error
    return text
