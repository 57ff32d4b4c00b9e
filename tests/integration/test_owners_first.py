"""A stranger cannot lock an owner out: the attack sequences of issue 23, over a real relay, a real
SMTP server and each store backend, with a rust-nostr client (docs/threat-model.md).

Each test replays what a stranger did to today's owners and checks what the owner sees now.
Settings are the defaults but for the PoW (8 bits, so a test mines fast) and, where a test needs
many codes in a few seconds, the cooldown (0: every request past it may mint).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nostr_sdk as rn
import pytest

from dvm.nostr import bech32
from tests.support.daemon import DVM_KEY, codes_to, make_settings, start_daemon
from tests.support.relay import wait_until
from tests.support.sdk_browser import SdkBrowser

pytestmark = pytest.mark.slow
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))
NEW_BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(1, 91)))
OWNER = "owner@example.org"


@contextlib.asynccontextmanager
async def service(tmp_path, relay, smtp, store_url, **settings: object) -> AsyncIterator[SdkBrowser]:
    """A daemon with these service settings on the test's store, and a browser talking to it."""
    daemon = await start_daemon(
        make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url, **settings)
    )
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            browser.daemon = daemon  # for a test that reads its metrics
            yield browser
    finally:
        await daemon.shutdown()


async def newest_code(smtp, email: str, count: int = 1) -> str:
    await wait_until(lambda: len(codes_to(smtp.messages, email)) >= count)
    return codes_to(smtp.messages, email)[-1]


async def make_owner(browser: SdkBrowser, smtp, email: str = OWNER) -> rn.Keys:
    """An activated account for ``email`` (SIGit's register flow, sealed by its key)."""
    key = rn.Keys.generate()
    params = {"pubkey": key.public_key().to_hex(), "email": email, "backup": BACKUP}
    sent = len(codes_to(smtp.messages, email))
    assert (await browser.call("register", params, seal=key)).code == "ok"
    code = await newest_code(smtp, email, sent + 1)
    assert (await browser.call("verify_code", {"code": code})).code == "ok"
    browser.new_key()
    return key


async def test_strangers_requests_never_block_the_owners_login_and_mail_stays_bounded(
    tmp_path, relay, smtp, store_url
):
    """Seen: four request_login from fresh keys plus one filled the 5-per-hour cap, and the owner's
    own request_login got rate_limited for an hour, renewed by five events an hour."""
    async with service(tmp_path, relay, smtp, store_url, resend_cooldown_s=0) as browser:
        await make_owner(browser, smtp)
        before = len(codes_to(smtp.messages, OWNER))
        for _ in range(8):  # a stranger, each request from a fresh key: past the cap
            browser.new_key()
            assert (await browser.call("request_login", {"email": OWNER})).code == "ok"
        browser.new_key()
        assert (await browser.call("request_login", {"email": OWNER})).code == "ok"  # the owner
        await wait_until(lambda: len(codes_to(smtp.messages, OWNER)) >= 5)
        # The owner's session redeems the newest code in the mailbox, whoever's request mailed it.
        reply = await browser.call("verify_code", {"code": codes_to(smtp.messages, OWNER)[-1]})
        assert reply.code == "ok" and reply.result["backup"] == BACKUP
        # The hourly cap (5 codes, the signup's among them) bounds the mail, not the owner.
        assert len(codes_to(smtp.messages, OWNER)) == 5 and before == 1


async def test_private_mode_decoys_wrong_codes_never_delay_the_owners_code(tmp_path, relay, smtp, store_url):
    """Seen: wrong codes on decoys for owner+x1@, owner+x2@... counted against the owner's mailbox,
    and the owner's next request_login answered ok but no code ever came. Now they count as any
    wrong codes would (a decoy must look like a real address, so the mailbox turns long alike),
    and the owner's code comes at once: longer, never later."""
    async with service(tmp_path, relay, smtp, store_url, private_mode=True) as browser:
        await make_owner(browser, smtp)
        for n in range(4):  # four decoys, every try wrong: 20 wrong codes
            browser.new_key()
            assert (await browser.call("request_login", {"email": f"owner+x{n}@example.org"})).code == "ok"
            for _ in range(5):
                await browser.call("verify_code", {"code": "000000"})
        browser.new_key()
        sent = len(codes_to(smtp.messages, OWNER))
        asked = await browser.call("request_login", {"email": OWNER})
        if asked.code == "pow_too_low":  # the decoys counted toward the mailbox's cap, as real
            browser.pow_bits = asked.body["error"]["required_bits"]  # requests would: a bit more
            asked = await browser.call("request_login", {"email": OWNER})
        assert asked.code == "ok" and browser.pow_bits <= 8 + 1
        code = await newest_code(smtp, OWNER, sent + 1)
        assert len(code) == 16  # past 10 wrong codes in a week: long, at once
        assert (await browser.call("verify_code", {"code": code})).code == "ok"
        assert not [m for m in smtp.messages if "guess" in str(m["Subject"]).lower()]


async def test_nobody_registers_a_key_they_do_not_hold_and_a_reclaim_ends_old_sessions(
    tmp_path, relay, smtp, store_url
):
    """Seen: register squatted someone's npub with the stranger's address; after the owner took
    the account back, the stranger's session still read and changed it."""
    async with service(tmp_path, relay, smtp, store_url) as browser:
        victim = rn.Keys.generate()
        squat = {"pubkey": victim.public_key().to_hex(), "email": "stranger@example.org", "backup": BACKUP}
        reply = await browser.call("register", squat)  # not signed by the key it names
        assert reply.code == "key_not_proven"
        browser.new_key()
        assert (await browser.call("register", squat, seal=rn.Keys.generate())).code == "bad_request"
        assert codes_to(smtp.messages, "stranger@example.org") == []
        # A session that proved the address loses its right once the key's holder acts.
        owner = await make_owner(browser, smtp)
        sent = len(codes_to(smtp.messages, OWNER))
        assert (await browser.call("request_login", {"email": OWNER})).code == "ok"
        old = browser.keys
        code = await newest_code(smtp, OWNER, sent + 1)
        assert (await browser.call("verify_code", {"code": code})).code == "ok"
        assert (await browser.call("status", keys=old)).code == "ok"
        browser.new_key()
        assert (await browser.call("update_backup", {"backup": NEW_BACKUP}, seal=owner)).code == "ok"
        assert (await browser.call("status", keys=old)).code == "unknown_account"
        assert (await browser.call("update_backup", {"backup": BACKUP}, keys=old)).code == "unknown_account"


async def test_a_strangers_register_never_erases_a_pending_signup(tmp_path, relay, smtp, store_url):
    """Seen: a stranger's register of an address with a pending signup erased it (its code then
    answered no_session), twenty times over in private mode, past the cap with no mail."""
    async with service(tmp_path, relay, smtp, store_url, private_mode=True, resend_cooldown_s=0) as browser:
        mine = rn.Keys.generate()
        params = {"pubkey": mine.public_key().to_hex(), "email": "new@example.org", "backup": BACKUP}
        assert (await browser.call("register", params, seal=mine)).code == "ok"
        victim = browser.keys
        for _ in range(20):
            browser.new_key()
            theirs = rn.Keys.generate()
            claim = params | {"pubkey": theirs.public_key().to_hex()}
            assert (await browser.call("register", claim, seal=theirs)).code == "ok"
        code = await newest_code(smtp, "new@example.org", 5)
        assert len(codes_to(smtp.messages, "new@example.org")) == 5  # the cap: then sessions share
        reply = await browser.call("verify_code", {"code": code}, keys=victim)
        assert (reply.code, reply.result) == ("ok", {})
        browser.new_key()
        assert (await browser.call("status", seal=mine)).result["email"] == "new@example.org"


async def test_private_mode_register_tells_nothing_about_a_key_it_is_not_signed_by(
    tmp_path, relay, smtp, store_url
):
    """Seen: register(P, own address) answered pubkey_taken exactly when P was an account."""
    async with service(tmp_path, relay, smtp, store_url, private_mode=True) as browser:
        owner = await make_owner(browser, smtp)
        answers = []
        for target in (owner, rn.Keys.generate()):  # an account's key, and a key nobody uses
            browser.new_key()
            probe = {"pubkey": target.public_key().to_hex(), "email": "prober@example.org", "backup": BACKUP}
            reply = await browser.call("register", probe)
            answers.append((reply.code, reply.body))
        assert answers[0] == answers[1] and answers[0][0] == "key_not_proven"


async def test_a_seal_is_used_once(tmp_path, relay, smtp, store_url):
    """Seen: the same seal in a new outer event from the same carrier was decided again."""
    async with service(tmp_path, relay, smtp, store_url) as browser:
        owner = await make_owner(browser, smtp)
        sealed = browser.seal("update_backup", {"backup": NEW_BACKUP}, owner)
        first = browser.request("update_backup", {"backup": NEW_BACKUP}, seal_event=sealed)
        again = browser.request("update_backup", {"backup": NEW_BACKUP}, seal_event=sealed)
        if first.id() == again.id():
            pytest.skip("both events mined to the same id")
        await browser.publish(first)
        assert (await browser.reply_to(first)).code == "ok"
        await browser.publish(again)
        reply = await browser.reply_to(again)
        assert reply.code == "bad_request" and "seal" in reply.body["error"]["message"]
        notices = [m for m in smtp.messages if m["To"] == OWNER and "password" in str(m["Subject"]).lower()]
        assert len(notices) == 1


async def test_a_busy_domain_costs_signups_more_work_and_refuses_nobody(
    tmp_path, relay, smtp, store_url, caplog
):
    """Seen: 305 made-up signups at one domain refused every real signup there for an hour. Now it
    costs more work, and the operator is told (a counter, and a WARNING when prices start)."""
    async with service(tmp_path, relay, smtp, store_url, max_codes_per_domain_per_hour=3) as browser:
        await make_owner(browser, smtp, "login@busy.example")  # its signup code is the domain's first
        for n in range(2):
            browser.new_key()
            assert (await browser.call("request_account", {"email": f"made-up{n}@busy.example"})).code == "ok"
        browser.new_key()
        priced = await browser.call("request_account", {"email": "real.person@busy.example"})
        assert priced.code == "pow_too_low"
        required = priced.body["error"]["required_bits"]
        assert required == browser.pow_bits + 1
        browser.pow_bits = required
        assert (await browser.call("request_account", {"email": "real.person@busy.example"})).code == "ok"
        browser.pow_bits = 8
        browser.new_key()  # a login to a proven address there pays nothing more
        assert (await browser.call("request_login", {"email": "login@busy.example"})).code == "ok"
        registry = browser.daemon.metrics.registry
        asked = registry.get_sample_value("sigit_priced_requests_total", {"method": "request_account"})
        assert asked == 1
        assert [r for r in caplog.records if r.name == "sigit.prices" and r.levelname == "WARNING"]


async def test_an_unfinished_register_holding_a_key_does_not_block_its_activation(
    tmp_path, relay, smtp, store_url
):
    """Seen: an unfinished register entry holding K answered activate(K) with pubkey_taken."""
    async with service(tmp_path, relay, smtp, store_url) as browser:
        key = rn.Keys.generate()
        params = {"pubkey": key.public_key().to_hex(), "email": "first@example.org", "backup": BACKUP}
        assert (await browser.call("register", params, seal=key)).code == "ok"  # never finished
        browser.new_key()
        assert (await browser.call("request_account", {"email": "second@example.org"})).code == "ok"
        code = await newest_code(smtp, "second@example.org")
        assert "entropy" in (await browser.call("verify_code", {"code": code})).result
        activate = {"pubkey": key.public_key().to_hex(), "backup": BACKUP}
        assert (await browser.call("activate", activate, seal=key)).code == "ok"
