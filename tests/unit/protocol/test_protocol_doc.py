"""docs/protocol.md is complete and its examples are real: parsed, verified and decrypted here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dvm.accounts.machine import TRANSITIONS
from dvm.errors import error_codes
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import parse_event_json, verify_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.intake import DEFAULT_POW_BITS
from dvm.protocol.methods import Method

DOC = (Path(__file__).resolve().parents[3] / "docs" / "protocol.md").read_text()
BLOCK = re.compile(r"```json (plaintext|event)\n(.*?)\n```", re.DOTALL)
KEYS = re.compile(
    r"^\| (DVM|browser \(ephemeral\)|account[^|]*) \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|$", re.M
)


def section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_error_code_is_in_the_error_table():
    table = section("Error codes")
    for code in error_codes():
        assert f"| `{code}` |" in table, code


def test_every_method_has_its_section_and_pow_minimum():
    for method in Method:
        assert f"### `{method}`" in DOC, method
        assert f"`{method}`" in section("Proof of work")
    assert "| `request_account`, `register`, `request_login` | 16 |" in DOC
    assert DEFAULT_POW_BITS[Method.REQUEST_ACCOUNT] == 16 and DEFAULT_POW_BITS[Method.VERIFY_CODE] == 12


def test_transition_table_matches_the_state_machine():
    table = section("Transitions")
    for row in TRANSITIONS:
        before = row.session_from.value if row.session_from else "-"
        after = row.session_to.value if row.session_to else "-"
        line = f"| `{row.method}` | {before} | {after} | `{row.outcome}` | {row.note} |"
        assert line in table, line
    assert table.count("\n| `") == len(TRANSITIONS)


def example_pairs() -> list[tuple[str | None, str]]:
    """(plaintext or None, event JSON) for every event in the examples section."""
    pairs, pending = [], None
    for kind, body in BLOCK.findall(section("Examples")):
        if kind == "plaintext":
            pending = body
        else:
            pairs.append((pending, body))
            pending = None
    return pairs


def test_examples_exist_for_requests_and_replies():
    assert len(example_pairs()) >= 8


@pytest.mark.parametrize("pair", example_pairs(), ids=lambda p: p[1][12:30])
def test_each_example_event_verifies_and_decrypts_to_its_plaintext(pair):
    plaintext, raw = pair
    keys = {role.split()[0]: (bytes.fromhex(sec), pub) for role, sec, pub in KEYS.findall(DOC)}
    dvm_secret, dvm_pub = keys["DVM"]
    browser_secret, browser_pub = keys["browser"]
    event = parse_event_json(raw)
    assert verify_event(event).hex() == event.id
    if not event.content:
        assert plaintext is None
        return
    if event.pubkey == dvm_pub:  # a reply: the browser decrypts it
        assert event.tag_values("p") == [browser_pub]
        text, _ = Encryptor(SecretKey(browser_secret)).decrypt(bytes.fromhex(dvm_pub), event.content)
    else:  # a request: the DVM decrypts it
        assert event.pubkey == browser_pub and event.tag_values("p") == [dvm_pub]
        text, _ = Encryptor(SecretKey(dvm_secret)).decrypt(bytes.fromhex(event.pubkey), event.content)
    assert text == plaintext


def test_examples_are_what_the_generator_produces_today():
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "scripts" / "protocol_examples.py"
    spec = importlib.util.spec_from_file_location("protocol_examples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    begin, end = module.BEGIN, module.END
    in_doc = DOC.split(begin, 1)[1].split(end, 1)[0].strip()
    assert in_doc == module.examples().strip(), "run scripts/protocol_examples.py --write"


def discovery_block(name: str) -> str:
    return section("Discovery").split(f"```json {name}\n", 1)[1].split("\n```", 1)[0]


def test_the_discovery_examples_are_what_the_code_publishes_and_prints():
    from dvm.config import DaemonSettings, ServiceSettings
    from dvm.protocol.announcement import announcement, nip05_document, profile

    secret = bytes.fromhex(KEYS.findall(DOC)[0][1])
    key, daemon, when = SecretKey(secret), DaemonSettings(), 1767225600
    rules = ServiceSettings().rules().intake
    made = {
        "announcement": announcement(key, rules, daemon.name, daemon.about, when),
        "profile": profile(key, daemon.name, daemon.about, "sigit.example", when),
    }
    for name, event in made.items():
        shown = parse_event_json(discovery_block(name))
        assert verify_event(shown).hex() == shown.id == event.id, name
        assert {k: v for k, v in shown.to_dict().items() if k != "sig"} == {
            k: v for k, v in event.to_dict().items() if k != "sig"
        }
    content = json.loads(made["announcement"].content)
    table = section("Discovery")
    for member in content:
        assert f"| `{member}` |" in table, member
    for tag in made["announcement"].tags:
        assert f'`["{tag[0]}", ' in table, tag
    assert set(content["pow_bits"]) == {str(m) for m in Method}
    relays = ["wss://relay.sigit.example", "wss://nos.lol"]
    assert json.loads(discovery_block("nostr.json")) == nip05_document(key.pubkey_hex, relays)
