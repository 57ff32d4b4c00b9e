"""The DVM's secret key on disk: hex or nsec, created 0600 and never overwritten."""

from __future__ import annotations

import os
from pathlib import Path

from dvm.errors import ConfigError, EncodingError, InvalidKey
from dvm.nostr import bech32
from dvm.nostr.keys import SecretKey


def parse_secret(text: str) -> SecretKey:
    """A secret key from 64 hex characters or an ``nsec1...`` string."""
    value = text.strip()
    try:
        if value.startswith("nsec1"):
            return SecretKey(bech32.decode_nsec(value))
        return SecretKey.from_hex(value)
    except (EncodingError, InvalidKey) as exc:
        raise ConfigError(f"the DVM key is not a valid secret key: {exc}") from exc


def write_new_key(path: Path) -> SecretKey:
    """Generate a key into a new 0600 file; refuse to overwrite an existing one."""
    key = SecretKey.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists; refusing to overwrite a key") from exc
    except FileNotFoundError as exc:
        raise ConfigError(f"directory {path.parent} does not exist") from exc
    with os.fdopen(fd, "w") as file:
        file.write(key.secret_bytes().hex() + "\n")
    return key
