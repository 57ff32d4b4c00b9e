"""Regenerate the byte-exact examples in docs/protocol.md from a real flow through the service,
and its transition table from the state machine's rows.

Keys and randomness are fixed, so the output is stable. ``--write`` replaces the blocks between
the EXAMPLES and TRANSITIONS markers in docs/protocol.md; without it the examples are printed.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

import orjson

from dvm.nostr import bech32
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.protocol.intake import open_request
from dvm.service import AccountService
from dvm.store import database
from dvm.store.sealed import ParamsSeal

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- BEGIN EXAMPLES (scripts/protocol_examples.py --write) -->", "<!-- END EXAMPLES -->"
TABLE_BEGIN = "<!-- BEGIN TRANSITIONS (scripts/protocol_examples.py --write) -->"
TABLE_END = "<!-- END TRANSITIONS -->"


def transitions() -> str:
    """The transition table, row by row as the state machine declares them."""
    from dvm.accounts.machine import TRANSITIONS

    lines = ["| method | session before | session after | outcome | when |", "|---|---|---|---|---|"]
    for row in TRANSITIONS:
        before = row.session_from.value if row.session_from else "-"
        after = row.session_to.value if row.session_to else "-"
        lines.append(f"| `{row.method}` | {before} | {after} | `{row.outcome}` | {row.note} |")
    return "\n".join(lines) + "\n"


CREATED_AT = 1795000000


def secret(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


DVM_SECRET = secret("sigit-dvm example dvm key")
BROWSER_SECRET = secret("sigit-dvm example browser key")
ACCOUNT_SECRET = secret("sigit-dvm example account key")
REGISTER_SECRET = secret("sigit-dvm example register account key")
CODE_SECRET = secret("sigit-dvm example code hmac secret")


def block(kind: str, text: str) -> str:
    return f"```json {kind}\n{text}\n```"


def event_json(event: Event) -> str:
    """One field per line, values in compact JSON: readable and exactly the signed event."""
    fields = [f'  "{name}": {orjson.dumps(value).decode()}' for name, value in event.to_dict().items()]
    return "{\n" + ",\n".join(fields) + "\n}"


def examples() -> str:
    rng = random.Random(2026).randbytes
    dvm = Encryptor(SecretKey(DVM_SECRET, rng), rng)
    browser = Encryptor(SecretKey(BROWSER_SECRET, rng), rng)
    account = SecretKey(ACCOUNT_SECRET, rng)
    service = AccountService(dvm, CODE_SECRET, rng=rng)
    out: list[str] = [
        "Test keys (never use them for anything else):",
        "",
        "| role | secret key (hex) | public key (hex) |",
        "|---|---|---|",
        f"| DVM | `{DVM_SECRET.hex()}` | `{dvm.key.pubkey_hex}` |",
        f"| browser (ephemeral) | `{BROWSER_SECRET.hex()}` | `{browser.key.pubkey_hex}` |",
        f"| account (the user's real key) | `{ACCOUNT_SECRET.hex()}` | `{account.pubkey_hex}` |",
        "",
    ]
    # Shape-valid NIP-49 bytes (version 0x02, log_n 16); real clients send real NIP-49 output.
    backup = bech32.encode("ncryptsec", b"\x02\x10" + bytes(range(89)))
    with tempfile.TemporaryDirectory() as tmp:
        conn = database.connect(Path(tmp) / "examples.sqlite3")
        now = CREATED_AT
        registering = SecretKey(REGISTER_SECRET, rng)
        registered = registering.pubkey_hex
        steps: list[tuple[str, str, dict[str, object], SecretKey | None]] = [
            ("request_account", "request_account", {"email": "ana@example.org"}, None),
            ("verify_code", "verify_code", {"code": ""}, None),
            (
                "activate (sealed by the new account key)",
                "activate",
                {"pubkey": account.pubkey_hex, "backup": backup},
                account,
            ),
            ("request_account (error)", "request_account", {"email": "ana@example.org"}, None),
            ("status (sealed by the account key)", "status", {}, account),
            (
                "register (sealed by the key it names)",
                "register",
                {"pubkey": registered, "email": "bo@example.org", "backup": backup},
                registering,
            ),
            ("verify_code (register)", "verify_code", {"code": ""}, None),
        ]
        for title, method, given, seal in steps:
            params = {"code": last_code(conn)} if method == "verify_code" else given
            bits = service.rules.intake.pow_bits.get(method, 12)  # type: ignore[call-overload]
            request = build_request(
                browser, dvm.key.pubkey_hex, method, params, now, pow_bits=bits, seal=seal
            )
            shown = dvm.decrypt(browser.key.pubkey, request.content)[0]  # a seal is signed once
            incoming = open_request(request, service.encryptor, service.rules.intake, now)
            (answer,) = service.commit(conn, [incoming], now)
            assert not isinstance(answer, Exception), answer
            reply = answer.reply
            opened = reply_text(dvm, browser, reply)
            out += [
                f"### Example: {title}",
                "",
                f"Request plaintext (encrypted with NIP-44 to the DVM; PoW {bits} bits):",
                "",
                block("plaintext", shown),
                "",
                "Request event:",
                "",
                block("event", event_json(request)),
                "",
                *(
                    ["Reply plaintext (decrypted by the browser):", "", block("plaintext", opened), ""]
                    if opened
                    else ["The reply's content is empty: success without data."]
                ),
                "",
                "Reply event:",
                "",
                block("event", event_json(reply)),
                "",
            ]
            now += 30
        conn.close()
    return "\n".join(out).rstrip() + "\n"


def last_code(conn: sqlite3.Connection) -> str:
    row = conn.execute(
        "SELECT params, message_id FROM mail WHERE kind = 'signup_code' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return str(ParamsSeal(CODE_SECRET).open(row[0], row[1])["code"])


def reply_text(dvm: Encryptor, browser: Encryptor, reply: Event) -> str:
    if not reply.content:
        return ""
    return browser.decrypt(dvm.key.pubkey, reply.content)[0]


def main() -> None:
    text = examples()
    if "--write" not in sys.argv:
        print(text)
        return
    doc = DOC.read_text()
    for begin, end, block in ((BEGIN, END, text), (TABLE_BEGIN, TABLE_END, transitions())):
        head, _, rest = doc.partition(begin)
        _, _, tail = rest.partition(end)
        doc = f"{head}{begin}\n\n{block}\n{end}{tail}"
    DOC.write_text(doc)


if __name__ == "__main__":
    main()
