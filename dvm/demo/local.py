"""A daemon configuration for 127.0.0.1: key, code secret, relays and settings in one directory.

Used by the demo, the end-to-end benchmark and the tests that run ``sigit-dvm run`` as a process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from dvm.nostr.keys import SecretKey

Scalar = str | int | float | bool


def _toml_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string
    return repr(value)


def write_local_config(
    directory: Path,
    relay_urls: Sequence[str],
    smtp_port: int,
    *,
    key: SecretKey | None = None,
    overrides: Mapping[str, Mapping[str, Scalar]] | None = None,
    comment: str = "",
) -> tuple[Path, SecretKey]:
    """Write ``dvm.key`` (0600), ``code.secret``, ``relays.toml`` and ``sigit-dvm.toml``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = key or SecretKey.generate()
    key_file = directory / "dvm.key"
    key_file.write_text(key.secret_bytes().hex() + "\n")
    key_file.chmod(0o600)
    (directory / "code.secret").write_text(os.urandom(32).hex() + "\n")
    (directory / "relays.toml").write_text("relays = [" + ", ".join(f'"{u}"' for u in relay_urls) + "]\n")
    sections: dict[str, dict[str, Scalar]] = {
        "daemon": {"key_file": "dvm.key", "code_secret_file": "code.secret"},
        "store": {"path": "sigit-dvm.sqlite3"},
        "mail": {"host": "127.0.0.1", "port": smtp_port},
        "relays": {"relays_file": "relays.toml", "reconnect_base_s": 0.5},
    }
    for name, values in (overrides or {}).items():
        sections.setdefault(name, {}).update(values)
    lines = [f"# {comment}"] if comment else []
    for name, values in sections.items():
        lines += ["", f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in values.items())]
    config = directory / "sigit-dvm.toml"
    config.write_text("\n".join(lines).lstrip() + "\n")
    return config, key
