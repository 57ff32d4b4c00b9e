"""What a stranger with real proof of work could still do, closed: enumeration in private mode,
mail bombing through mailbox variants, blocking someone's signup, guessing codes for ever.

The answers are checked where a client reads them (the reply events, decrypted), over the real
service and a real SQLite file; the last test goes through a real relay and SMTP server.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvm.accounts.rules import AccountRules
from dvm.nostr import bech32
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.rules import ServiceRules
from dvm.store import database
from tests.support.daemon import DVM_KEY, code_from, make_settings, start_daemon
from tests.support.flows import LOW_POW, Harness, make_service, new_client
from tests.support.sdk_browser import SdkBrowser

BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))
PRIVATE = replace(LOW_POW, accounts=AccountRules(private_mode=True))


def harness(tmp_path, name: str, rules: ServiceRules = LOW_POW) -> Harness:
    return Harness(database.connect(tmp_path / f"{name}.sqlite3"), make_service(rules))


def make_account(h: Harness, email: str, owner: Encryptor) -> None:
    browser = new_client(900)
    assert h.send(browser, "request_account", {"email": email}).ok
    assert h.send(browser, "verify_code", {"code": h.last_code(email)}).ok
    assert h.send(browser, "activate", {"pubkey": owner.key.pubkey_hex, "backup": BACKUP}, seal=owner.key).ok


def sealed(h: Harness, client: Encryptor, method: str, params: dict) -> object:
    """``method`` naming a fresh account key, sealed by it (as register and activate must be)."""
    key = SecretKey.generate()
    return h.send(client, method, {"pubkey": key.pubkey_hex, **params}, seal=key)


# --- private mode: the same answers whatever the address is ------------------------------------

X = "target@example.org"


def prepare(h: Harness, state: str) -> None:
    """Put X in one of the states a stranger must not be able to tell apart."""
    if state == "account":
        make_account(h, X, new_client(800))
    elif state == "unfinished":
        assert h.send(new_client(801), "request_account", {"email": X}).ok
    elif state == "verified_not_activated":
        browser = new_client(802)
        assert h.send(browser, "request_account", {"email": X}).ok
        assert h.send(browser, "verify_code", {"code": h.last_code(X)}).ok
    elif state == "unfinished_register":
        assert sealed(h, new_client(804), "register", {"email": X, "backup": BACKUP}).ok
    elif state == "pending_change":
        other = new_client(803)
        make_account(h, "other@example.org", other)
        assert h.send(other, "change_email", {"email": X}).ok
    h.now += 3600  # the preparation's codes leave the hourly window


def stranger_sequence(h: Harness) -> list[tuple[str, object]]:
    """Every method sequence from the attack report, answers as a client reads them."""
    answers: list[tuple[str, object]] = []

    def call(client, method, params=None):
        key = SecretKey.generate()  # register and activate name a key, and are sealed by it
        seal = key if method in ("register", "activate") else None
        if seal is not None:
            params = {"pubkey": key.pubkey_hex, **(params or {})}
        reply = h.send(client, method, params, seal=seal)
        answers.append((method, reply.code, reply.error, reply.result))

    a = new_client(1)
    call(a, "request_login", {"email": X})
    for _ in range(6):
        call(a, "verify_code", {"code": "000000"})
    b = new_client(2)
    call(b, "request_account", {"email": X})
    call(b, "activate", {"backup": BACKUP})
    call(b, "verify_code", {"code": "000000"})
    call(b, "resend_code")
    h.now += 61
    call(b, "resend_code")
    c = new_client(3)
    call(c, "request_login", {"email": X})
    call(c, "activate", {"backup": BACKUP})
    owner = new_client(4)
    make_account(h, "stranger@example.org", owner)
    call(owner, "change_email", {"email": X})
    status = h.send(owner, "status").result
    answers.append(("status", status["pending_email"], status["grace_s"]))
    call(owner, "confirm_email", {"code": "000000"})
    d = new_client(5)  # SIGit's current signup
    call(d, "register", {"email": X, "backup": BACKUP})
    call(d, "verify_code", {"code": "000000"})
    h.now += 61
    call(d, "resend_code")
    call(d, "activate", {"backup": BACKUP})
    for i in range(7):  # past every cap: still the same answers
        call(new_client(10 + i), "request_account", {"email": X})
        call(new_client(20 + i), "request_login", {"email": X})
    return answers


def test_private_mode_answers_every_method_sequence_the_same_for_used_and_unused_addresses(tmp_path):
    results = {}
    states = (
        "nothing",
        "account",
        "unfinished",
        "verified_not_activated",
        "unfinished_register",
        "pending_change",
    )
    for state in states:
        h = harness(tmp_path, state, PRIVATE)
        prepare(h, state)
        results[state] = stranger_sequence(h)
    baseline = results.pop("nothing")
    assert ("verify_code", "code_invalid") in [(a[0], a[1]) for a in baseline]
    for state, answers in results.items():
        assert answers == baseline, state


# --- no squatting ------------------------------------------------------------------------------


def test_a_pending_change_does_not_block_the_owners_signup_and_the_owner_wins(tmp_path):
    h = harness(tmp_path, "squat")
    squatter = new_client(1)
    make_account(h, "squatter@example.org", squatter)
    assert h.send(squatter, "change_email", {"email": "victim@example.org"}).ok
    victim = new_client(2)
    assert h.send(victim, "request_account", {"email": "victim@example.org"}).ok  # not email_taken
    code = h.last_code("victim@example.org")
    assert h.send(victim, "verify_code", {"code": code}).ok
    # The squatter's change is gone, and it was told.
    assert h.send(squatter, "status").result["pending_email"] is None
    assert h.count("mail", "kind = 'email_change_cancelled' AND recipient = 'squatter@example.org'") == 1
    assert sealed(h, victim, "activate", {"backup": BACKUP}).ok
    assert h.send(new_client(3), "request_login", {"email": "victim@example.org"}).ok


# --- mail bombing ------------------------------------------------------------------------------


def test_mail_to_a_mailbox_is_bounded_whatever_the_spelling_and_the_method_and_nobody_is_refused(tmp_path):
    h = harness(tmp_path, "bomb")
    owner = new_client(1)
    make_account(h, "someone@example.org", owner)
    h.now += 3600
    spellings = [
        "victim+1@example.org",
        "VICTIM+2@example.org",
        "ｖｉｃｔｉｍ@example.org",
        "Victim@Example.org",
    ]
    answers = []
    for i in range(12):  # a minute apart: past the cooldown every time
        h.now += 61
        answers.append(h.send(new_client(10 + i), "request_account", {"email": spellings[i % 4]}).code)
    assert answers == ["ok"] * 12  # past the cap, each spelling's sessions share its live code
    cap = h.service.rules.accounts.max_codes_per_email_per_hour
    to_victim = "kind LIKE '%code' AND recipient LIKE 'victim%@example.org'"
    # The canonical address (full width, upper case) has its own free codes; every other spelling
    # shares the mailbox's: at most twice the cap an hour, the rest only as fast as someone pays.
    free = h.count("mail", to_victim)
    assert cap < free <= 2 * cap
    # Another address of the same mailbox, by another method: past the cap a new code costs more.
    priced = h.send(owner, "change_email", {"email": "victim+3@example.org"})
    assert priced.code == "pow_too_low"
    bits = priced.error["required_bits"]
    assert h.send(owner, "change_email", {"email": "victim+3@example.org"}, pow_bits=bits).ok
    assert h.count("mail", to_victim) == free + 1
    # Every session that asked holds a code it can redeem: the newest one mailed.
    latest = h.last_code("victim@example.org")
    assert h.send(new_client(21), "verify_code", {"code": latest}).ok


@pytest.mark.parametrize("email", ["a\u202eb@example.org", "a\u009bb@example.org", "a\u200db@example.org"])
def test_addresses_with_control_or_format_characters_are_invalid_email(tmp_path, email):
    h = harness(tmp_path, "cc")
    assert h.send(new_client(1), "request_account", {"email": email}).code == "invalid_email"
    assert h.count("mail") == 0


# --- guessing ----------------------------------------------------------------------------------


def test_guessing_stops_at_the_budget_and_the_owner_gets_a_long_code_at_once(tmp_path):
    h = harness(tmp_path, "guess")
    make_account(h, "ana@example.org", new_client(1))
    h.now += 3600
    rules = h.service.rules.accounts
    guesses = 0
    for s in range(4):  # login sessions a guesser opens, each tried until it locks
        attacker = new_client(10 + s)
        assert h.send(attacker, "request_login", {"email": "ana@example.org"}).ok  # never refused
        for _ in range(rules.max_code_attempts):
            guesses += 1
            h.send(attacker, "verify_code", {"code": "000000"})
    assert guesses > rules.code_failures_free
    assert h.count("mail", "kind = 'code_guessing' AND recipient = 'ana@example.org'") == 1
    # The owner asks now and gets a code at once, sixteen digits long; it works.
    owner = new_client(30)
    assert h.send(owner, "request_login", {"email": "ana@example.org"}).ok
    code = h.last_code("ana@example.org")
    assert len(code) == 16
    assert h.send(owner, "verify_code", {"code": code}).ok


# --- over the wire -----------------------------------------------------------------------------


async def test_the_owner_signs_up_with_an_address_someone_asked_to_move_to(tmp_path, relay, smtp):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            import nostr_sdk as rn

            assert (await browser.call("request_account", {"email": "squat@example.org"})).code == "ok"
            await wait_for_mail(smtp, 1)
            await browser.call("verify_code", {"code": code_from(smtp.messages, "squat@example.org")})
            account = rn.Keys.generate()
            activate = {"pubkey": account.public_key().to_hex(), "backup": BACKUP}
            assert (await browser.call("activate", activate, seal=account)).code == "ok"
            move = await browser.call("change_email", {"email": "owner@example.org"}, keys=account)
            assert move.code == "ok"
            browser.new_key()
            assert (await browser.call("request_account", {"email": "owner@example.org"})).code == "ok"
            await wait_for_mail(smtp, 5)  # code, welcome, change code, change notice, owner's code
            code = code_from(smtp.messages, "owner@example.org")
            assert "entropy" in (await browser.call("verify_code", {"code": code})).result
            await wait_for_mail(smtp, 6)
            assert smtp.messages[-1]["To"] == "squat@example.org"
            assert "cancelled" in smtp.messages[-1]["Subject"]
            assert (await browser.call("status", keys=account)).result["pending_email"] is None
    finally:
        await daemon.shutdown()


async def wait_for_mail(smtp, count):
    from tests.support.relay import wait_until

    await wait_until(lambda: len(smtp.messages) >= count)


def test_past_a_domains_share_new_signups_there_cost_more_work_and_are_never_refused(tmp_path):
    rules = replace(LOW_POW, accounts=AccountRules(max_codes_per_domain_per_hour=3, max_codes_per_hour=5))
    h = harness(tmp_path, "caps", rules)
    answers = [h.send(new_client(i), "request_account", {"email": f"u{i}@one.example"}) for i in range(4)]
    assert [a.code for a in answers] == ["ok", "ok", "ok", "pow_too_low"]
    required = answers[3].error["required_bits"]
    assert required == 2 + 1  # the method's minimum and one bit
    # The same request mined to the price goes through: a real person is never refused.
    assert h.send(new_client(3), "request_account", {"email": "u3@one.example"}, pow_bits=required).ok
    other = [h.send(new_client(10 + i), "request_account", {"email": f"u{i}@two.example"}) for i in range(2)]
    assert [a.code for a in other] == ["ok", "pow_too_low"]  # five in all: everyone pays a bit more
    h.now += 3600 + 60
    assert h.send(new_client(20), "request_account", {"email": "late@one.example"}).ok


def test_a_flood_of_made_up_signups_raises_the_price_of_signups_but_never_touches_a_login(tmp_path):
    """Attack F7: thousands of signups to made-up addresses filled the overall cap for everyone."""
    rules = replace(LOW_POW, accounts=AccountRules(max_codes_per_hour=3))
    h = harness(tmp_path, "flood", rules)
    make_account(h, "ana@example.org", new_client(1))
    h.now += 3600
    for i in range(3):
        assert h.send(new_client(10 + i), "request_account", {"email": f"junk{i}@made.up"}).ok
    priced = h.send(new_client(20), "request_account", {"email": "new@example.org"})
    assert priced.code == "pow_too_low"
    bits = priced.error["required_bits"]
    assert h.send(new_client(20), "request_account", {"email": "new@example.org"}, pow_bits=bits).ok
    assert h.send(new_client(21), "request_login", {"email": "ana@example.org"}).ok


def test_a_change_email_decoy_sends_the_used_address_nothing_even_on_resend(tmp_path):
    """Attack F1: resend_code on a private-mode change_email decoy mailed the used address a code."""
    h = harness(tmp_path, "decoy-resend", PRIVATE)
    make_account(h, "owner@example.org", new_client(1))
    asker = new_client(2)
    make_account(h, "asker@example.org", asker)
    before = h.count("mail", "recipient = 'owner@example.org'")
    assert h.send(asker, "change_email", {"email": "owner@example.org"}).ok
    for _ in range(3):
        h.now += 61
        assert h.send(asker, "resend_code").ok
    assert h.count("mail", "recipient = 'owner@example.org'") == before


def test_no_address_is_left_in_clear_by_a_decoy(tmp_path):
    """Attack F5: a private-mode decoy kept the probed address in sessions.subject."""
    h = harness(tmp_path, "decoy-clear", PRIVATE)
    assert h.send(new_client(1), "request_login", {"email": "probed.person@example.org"}).ok
    h.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"probed.person" not in (tmp_path / "decoy-clear.sqlite3").read_bytes()
