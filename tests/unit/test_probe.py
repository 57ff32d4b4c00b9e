"""The probe's readers: the code in a code email, how a DVM is named, its NIP-05 document and
its announcement."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dvm.accounts.decision import MailKind
from dvm.errors import ConfigError
from dvm.mailer.templates import TemplateContext, Templates
from dvm.nostr import bech32
from dvm.nostr.keys import SecretKey
from dvm.probe.mailbox import code_of, parse
from dvm.probe.report import Report, Status, Step
from dvm.probe.target import Named, nip05_url, parse_name, read_announcement, read_nip05
from dvm.protocol.announcement import announcement, nip05_document
from dvm.protocol.intake import IntakeRules

KEY = SecretKey(bytes.fromhex("7f" * 32))


def mail(text: str) -> bytes:
    return f"To: probe@example.org\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\n{text}".encode()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("Your code is:\n\n    042137\n\nType it", "042137"),
        ("Your code is:\n\n    123456789012\n", "123456789012"),
        ("Your code is:\n    1234 5678 9012\n", "123456789012"),
        ("Open https://sigit.example/#/verify?code=654321 in the same browser", "654321"),
        ("Your account was deleted on 2026-12-01.\n    20261201\n", None),
    ],
)
def test_the_code_is_read_from_its_own_line_or_the_link(body, code):
    assert code_of(parse(mail(body))) == code


def test_the_code_is_read_from_every_built_in_code_template():
    templates = Templates(TemplateContext("https://sigit.example/#/verify?code={code}"))
    for kind in (MailKind.SIGNUP_CODE, MailKind.LOGIN_CODE, MailKind.DELETION_CODE):
        values = {"code": "093814", "expires_at": 2_000_000_000}
        rendered = templates.render(kind, "probe@example.org", values, 0)
        raw = f"To: probe@example.org\r\nContent-Type: text/plain\r\n\r\n{rendered.text}".encode()
        assert code_of(parse(raw)) == "093814", kind


def test_a_dvm_is_named_by_npub_hex_or_nip05():
    npub = bech32.npub(KEY.pubkey)
    assert parse_name(npub) == parse_name(KEY.pubkey_hex) == Named(pubkey=KEY.pubkey_hex)
    assert parse_name("dvm@sigit.example") == Named(nip05="dvm@sigit.example")
    for bad in ("npub1nope", "nobody", "@sigit.example", "dvm@"):
        with pytest.raises(ConfigError):
            parse_name(bad)
    assert nip05_url("dvm@sigit.example") == "https://sigit.example/.well-known/nostr.json?name=dvm"
    assert nip05_url("dvm@127.0.0.1:8080") == "http://127.0.0.1:8080/.well-known/nostr.json?name=dvm"


def test_the_nip05_document_gives_the_key_and_its_relays():
    document = nip05_document(KEY.pubkey_hex, ["wss://relay.example", "https://not-a-relay"])
    assert read_nip05("dvm@sigit.example", document) == (KEY.pubkey_hex, ("wss://relay.example",))
    with pytest.raises(ValueError):
        read_nip05("other@sigit.example", document)


def test_the_announcement_is_read_as_the_daemon_writes_it():
    rules = IntakeRules()
    found = read_announcement(announcement(KEY, rules, "SIGit", "about", 1_800_000_000))
    assert (found.request_kind, found.reply_kind) == (rules.request_kind, rules.reply_kind)
    assert found.bits("request_account") == 16 and found.bits("verify_code") == 12
    assert found.protocols == ("sigit-dvm/3",) and found.created_at == 1_800_000_000


def test_the_metrics_file_parses_as_prometheus_text_with_one_sample_per_step_and_status():
    report = Report(dvm="npub1x", email="probe@example.org", started_at=1_800_000_000.0, duration_ms=1234.0)
    report.steps = [
        Step("publish", Status.OK, 50.0, 40.0, "", {"relays": [{"relay": 'ws://a"b', "accepted": True}]}),
        Step("reply", Status.FAILED, 5000.0, 4950.0, "timed out"),
        Step("verify", Status.SKIPPED, None, None, "not reached"),
    ]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(report.metrics())
        for s in family.samples
    }
    assert samples[("sigit_probe_success", ())] == 0
    assert samples[("sigit_probe_step_status", (("status", "failed"), ("step", "reply")))] == 1
    assert samples[("sigit_probe_step_status", (("status", "ok"), ("step", "reply")))] == 0
    assert samples[("sigit_probe_step_seconds", (("step", "reply"),))] == 5.0
    assert ("sigit_probe_step_seconds", (("step", "verify"),)) not in samples
    assert samples[("sigit_probe_relay_accepted", (("relay", 'ws://a"b'),))] == 1
