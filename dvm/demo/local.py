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


def write_secret(path: Path, text: str) -> None:
    """``text`` in a file only its owner reads, never readable by others for an instant (an
    older file of that name is replaced)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def write_local_config(
    directory: Path,
    relay_urls: Sequence[str],
    smtp_port: int,
    *,
    key: SecretKey | None = None,
    overrides: Mapping[str, Mapping[str, Scalar]] | None = None,
    comment: str = "",
) -> tuple[Path, SecretKey]:
    """Write ``dvm.key`` and ``code.secret`` (both 0600 from the start), ``relays.toml`` and
    ``sigit-dvm.toml``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = key or SecretKey.generate()
    write_secret(directory / "dvm.key", key.secret_bytes().hex() + "\n")
    write_secret(directory / "code.secret", os.urandom(32).hex() + "\n")
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
