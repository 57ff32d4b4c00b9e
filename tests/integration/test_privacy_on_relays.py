"""No event the flows put on a relay carries a user's key or anything derived from their email:
both signup flows, login, and every kind of account method from ephemeral keys, through a real
relay and SMTP with the rust-nostr client; then every event on the relay is read back."""

from __future__ import annotations

import asyncio
import datetime
import hashlib

import nostr_sdk as rn
import pytest

from dvm.nostr import bech32
from dvm.protocol.email_address import canonical_mailbox
from tests.support.daemon import DVM_KEY, codes_to, make_settings, start_daemon
from tests.support.relay import RELAYS, LocalRelay, wait_until
from tests.support.sdk_browser import SdkBrowser

pytestmark = pytest.mark.slow
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))
NEW_BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(1, 91)))


def traces(pubkey: str, *emails: str) -> set[str]:
    """What would identify the user: their key (hex, npub) and each address in the forms a
    careless client or server might publish (as typed, canonical, hashed, local part)."""
    found = {pubkey, rn.PublicKey.parse(pubkey).to_bech32()}
    for email in emails:
        for form in {email, email.lower(), canonical_mailbox(email)}:
            found |= {form, hashlib.sha256(form.encode()).hexdigest(), form.split("@")[0]}
    return found


def relay_storage(relay) -> bytes:
    """Every byte nostr-relay stored (events, tag indexes, its WAL); rust-nostr's keeps them in memory."""
    return b"".join(p.read_bytes() for p in relay.directory.glob("relay.sqlite3*"))


@pytest.mark.parametrize("relay", RELAYS, indirect=True)
async def test_no_event_on_the_relay_names_a_user_after_every_flow(tmp_path, relay, smtp):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    ana = rn.Keys.generate()  # register flow
    bob = rn.Keys.generate()  # seed flow

    async def code(email: str, nth: int = 1) -> str:
        await wait_until(lambda: len(codes_to(smtp.messages, email)) >= nth)
        return codes_to(smtp.messages, email)[nth - 1]

    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            # register, its code, then account methods from the same key (session).
            params = {
                "pubkey": ana.public_key().to_hex(),
                "email": "Privacy.Ana@example.org",
                "backup": BACKUP,
            }
            assert (await browser.call("register", params, seal=ana)).code == "ok"
            assert (
                await browser.call("verify_code", {"code": await code("privacy.ana@example.org")})
            ).code == "ok"
            assert (await browser.call("status")).result["email"] == "privacy.ana@example.org"

            # Login on a new device, password change and email change from that key.
            browser.new_key()
            assert (await browser.call("request_login", {"email": "privacy.ana@example.org"})).code == "ok"
            reply = await browser.call("verify_code", {"code": await code("privacy.ana@example.org", 2)})
            assert reply.result["backup"] == BACKUP
            assert (await browser.call("update_backup", {"backup": NEW_BACKUP})).code == "ok"
            assert (await browser.call("change_email", {"email": "ana.moved@example.org"})).code == "ok"
            confirm = await browser.call("confirm_email", {"code": await code("ana.moved@example.org")})
            assert confirm.result == {"email": "ana.moved@example.org"}

            # A sealed request from a key never seen before.
            browser.new_key()
            reply = await browser.call("set_notifications", {"login_notice": False}, seal=ana)
            assert reply.code == "ok"

            # The seed flow: request_account, verify_code, activate; then status from that key.
            browser.new_key()
            assert (await browser.call("request_account", {"email": "privacy.bob@example.org"})).code == "ok"
            reply = await browser.call("verify_code", {"code": await code("privacy.bob@example.org")})
            assert len(reply.result["entropy"]) == 64
            activate = {"pubkey": bob.public_key().to_hex(), "backup": BACKUP}
            assert (await browser.call("activate", activate, seal=bob)).code == "ok"
            assert (await browser.call("status")).result["activated"] is True

            kinds = [rn.Kind(k) for k in (0, 5780, 6780, 7000, 31990)]
            everything = await browser.client.fetch_events(
                rn.ReqTarget.auto([rn.Filter().kinds(kinds).limit(5000)]),
                timeout=datetime.timedelta(seconds=3),
            )
            events = [e.as_json() for e in everything]
            stored = relay_storage(relay)
            # The control: an old client's request signed by the account key names it in public.
            assert (await browser.call("status", keys=ana)).code == "ok"
            await asyncio.sleep(0.5)
            leaky = relay_storage(relay)
    finally:
        await daemon.shutdown()

    assert len(events) >= 20  # requests, replies, the announcement
    assert any('"kind":0,' in raw for raw in events)  # the DVM's profile, published on connect
    forbidden = traces(ana.public_key().to_hex(), "Privacy.Ana@example.org", "ana.moved@example.org")
    forbidden |= traces(bob.public_key().to_hex(), "privacy.bob@example.org")
    for raw in events:
        leaked = sorted(t for t in forbidden if t in raw)
        assert not leaked, f"{leaked} in {raw[:200]}"
    if isinstance(relay, LocalRelay):  # and the relay's own storage, every byte of it
        assert len(stored) > 10_000
        assert not sorted(t for t in forbidden if t.encode() in stored)
        assert ana.public_key().to_hex().encode() in leaky
