"""SIGit's current flow end to end: ``register`` from an ephemeral key, the code, login with no
entropy, a password change, through a real relay and SMTP with the rust-nostr client."""

from __future__ import annotations

import asyncio
import sqlite3

import nostr_sdk as rn
import pytest

from dvm.nostr import bech32
from tests.support.daemon import DVM_KEY, code_from, codes_to, make_settings, start_daemon
from tests.support.relay import RELAYS, wait_until
from tests.support.sdk_browser import SdkBrowser

pytestmark = pytest.mark.slow
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))
NEW_BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(1, 91)))


def db_rows(settings, sql, *args):
    conn = sqlite3.connect(settings.path(settings.store.path))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("relay", RELAYS, indirect=True)
async def test_register_activate_by_code_login_without_entropy_and_password_change(tmp_path, relay, smtp):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    account = rn.Keys.generate()  # the user's real key, made in the browser before signup
    pubkey = account.public_key().to_hex()
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            params = {"pubkey": pubkey, "email": "Ana@Example.org", "backup": BACKUP}
            assert (await browser.call("register", params, seal=account)).code == "ok"
            # A retry of the same signup (a new event, and a new seal: a seal is used once, and one
            # signed in the same second would be the same seal) sends nothing new.
            await asyncio.sleep(1.1)
            assert (await browser.call("register", params, seal=account)).code == "ok"
            await wait_until(lambda: len(smtp.messages) >= 1)
            assert db_rows(settings, "SELECT activated, last_seen FROM users") == [(0, None)]
            code = code_from(smtp.messages, "ana@example.org")
            reply = await browser.call("verify_code", {"code": code})
            assert (reply.code, reply.result) == ("ok", {})
            [(activated, last_seen)] = db_rows(settings, "SELECT activated, last_seen FROM users")
            assert activated == 1 and last_seen is not None
            # The address is taken now, in both flows: the client goes to login.
            browser.new_key()
            assert (await browser.call("register", params, seal=account)).code == "pubkey_taken"  # key first
            other = rn.Keys.generate()
            theirs = params | {"pubkey": other.public_key().to_hex()}
            assert (await browser.call("register", theirs, seal=other)).code == "email_taken"
            assert (await browser.call("request_account", {"email": "ana@example.org"})).code == "email_taken"

            # Login on a new device: the backup comes back, with no entropy.
            browser.new_key()
            assert (await browser.call("request_login", {"email": "ana@example.org"})).code == "ok"
            await wait_until(lambda: len(smtp.messages) >= 3)  # welcome, login code
            reply = await browser.call("verify_code", {"code": code_from(smtp.messages, "ana@example.org")})
            assert reply.result == {"pubkey": pubkey, "backup": BACKUP}
            [(seen_again,)] = db_rows(settings, "SELECT last_seen FROM users")
            assert seen_again >= last_seen

            # Password change: the key re-encrypted under the new password, sent as a new backup.
            assert (await browser.call("update_backup", {"backup": NEW_BACKUP}, keys=account)).code == "ok"
            browser.new_key()
            assert (await browser.call("request_login", {"email": "ana@example.org"})).code == "ok"
            await wait_until(lambda: len(smtp.messages) >= 6)  # login notice, backup notice, code
            reply = await browser.call("verify_code", {"code": code_from(smtp.messages, "ana@example.org")})
            assert reply.result == {"pubkey": pubkey, "backup": NEW_BACKUP}
    finally:
        await daemon.shutdown()
    subjects = [m["Subject"].split(":")[0] for m in smtp.messages]
    assert subjects[:2] == ["Your SIGit code", "Welcome to SIGit"]


async def test_a_strangers_register_never_erases_a_pending_one_and_the_mailbox_owner_decides(
    tmp_path, relay, smtp
):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            owner = rn.Keys.generate()
            params = {"pubkey": owner.public_key().to_hex(), "email": "bo@example.org", "backup": BACKUP}
            assert (await browser.call("register", params, seal=owner)).code == "ok"
            await wait_until(lambda: len(smtp.messages) >= 1)
            owner_session = browser.keys
            # A stranger registers the same address with their own key: the owner's signup stays.
            browser.new_key()
            stranger = rn.Keys.generate()
            theirs = params | {"pubkey": stranger.public_key().to_hex()}
            assert (await browser.call("register", theirs, seal=stranger)).code == "ok"
            # The owner's code (the only code mailed: the stranger joined it) activates the owner's key.
            code = code_from(smtp.messages, "bo@example.org")
            reply = await browser.call("verify_code", {"code": code}, keys=owner_session)
            assert (reply.code, reply.result) == ("ok", {})
            assert db_rows(settings, "SELECT pubkey, activated FROM users") == [
                (owner.public_key().to_hex(), 1)
            ]
            assert len(codes_to(smtp.messages, "bo@example.org")) == 1
            # The stranger's session learns nothing from the used code.
            assert (await browser.call("verify_code", {"code": code})).code == "code_invalid"
    finally:
        await daemon.shutdown()
