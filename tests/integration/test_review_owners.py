"""An attacker's review of the owners-first rules (docs/threat-model.md, protocol version 3).

Each ``xfail(strict=True)`` test is a hole found in this round: it fails today and passes once
the hole is closed (then drop the mark). The plain tests are claims that were attacked hard and
held; they stay as regression tests. Everything runs over the real service and a real SQLite
file (``tests.support.flows.Harness``), its clock moved by hand; answers are read as a client
reads them (the reply events, decrypted).

Who is who: ``owner`` reads the victim's mailbox (and, when said, holds the account key); every
other key is a stranger's, with real (here: low, for speed) proof of work.
"""

from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace

from dvm.accounts.machine import Context
from dvm.accounts.rules import AccountRules
from dvm.admin import actions
from dvm.health import mail_counts
from dvm.metrics import Metrics
from dvm.nostr import bech32, nip13
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import sign_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import sealed_plaintext
from dvm.protocol.intake import IntakeRules
from dvm.protocol.methods import Method
from dvm.rules import ServiceRules
from dvm.store import database, retention
from tests.support.flows import CODE_SECRET, LOW_POW, Harness, mail_params, make_service, new_client

BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))
NEW_BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(1, 91)))
OWNER = "ana@example.org"
HOUR = 3600


def harness(tmp_path, name: str, rules: ServiceRules = LOW_POW) -> Harness:
    return Harness(database.connect(tmp_path / f"{name}.sqlite3"), make_service(rules))


def with_accounts(**changes) -> ServiceRules:
    return replace(LOW_POW, accounts=AccountRules(**changes))


PRIVATE = with_accounts(private_mode=True)
_seeds = iter(range(10_000, 10**9))


def fresh() -> Encryptor:
    """A stranger's (or a new device's) ephemeral key, never used before."""
    return new_client(next(_seeds))


def make_account(h: Harness, email: str) -> SecretKey:
    """An activated account for ``email`` by SIGit's register flow (sealed by its key), which
    then leaves the hourly window: its signup code no longer counts anywhere."""
    key = SecretKey.generate()
    browser = fresh()
    assert h.send(
        browser, "register", {"pubkey": key.pubkey_hex, "email": email, "backup": BACKUP}, seal=key
    ).ok
    assert h.send(browser, "verify_code", {"code": h.last_code(email)}).ok
    h.now += HOUR + 60
    return key


def code_mails(h: Harness, recipient: str) -> int:
    return h.count("mail", "recipient = ? AND kind LIKE '%code'", recipient)


def newest_code_in(h: Harness, recipients: tuple[str, ...], kind: str = "%code") -> tuple[str, str]:
    """The newest code mail (of ``kind``) among those sent to ``recipients`` (one inbox)."""
    marks = ", ".join("?" * len(recipients))
    row = h.conn.execute(
        f"SELECT kind, params, message_id FROM mail WHERE kind LIKE ? AND recipient IN ({marks}) "
        "ORDER BY id DESC LIMIT 1",
        (kind, *recipients),
    ).fetchone()
    return str(row[0]), str(mail_params(row[1], row[2])["code"])


def admin_ctx(h: Harness) -> Context:
    return Context(h.now, random.Random(next(_seeds)).randbytes, h.service.rules.accounts, CODE_SECRET)


def guess_until_long(h: Harness, email: str) -> None:
    """A stranger's wrong codes on ``email``'s real login codes, past the weekly budget."""
    for _ in range(2):
        guesser = fresh()
        assert h.send(guesser, "request_login", {"email": email}).ok
        for _ in range(h.service.rules.accounts.max_code_attempts):
            h.send(guesser, "verify_code", {"code": "000000"})
    assert h.count("code_failures") >= h.service.rules.accounts.code_failures_free


# =================================================================================================
# Holes
# =================================================================================================

# --- H1. Codes prove a canonical mailbox, not the address: two mailboxes that fold together --------


def test_a_login_code_mailed_to_the_strangers_own_address_never_opens_the_owners_account(tmp_path):
    """normalise_email keeps ``straße@`` and ``strasse@`` apart (two accounts, two mailboxes on a
    server that takes UTF-8 local parts), canonical_mailbox folds both to ``strasse@``. The
    stranger owns ``straße@example.org``; the owner ``strasse@example.org``. Cost: one account
    of the stranger's own and two requests. The owner sees a login notice, after the fact. The
    same holds for ``οδος@``/``οδοσ@`` (final sigma), and for ``ana+x@``/``ana@`` at a server
    where ``+`` is part of a mailbox's name rather than a tag."""
    h = harness(tmp_path, "fold")
    make_account(h, "strasse@example.org")
    make_account(h, "straße@example.org")  # the stranger's own, honestly signed up
    theirs = fresh()
    assert h.send(theirs, "request_login", {"email": "straße@example.org"}).ok
    code = h.last_code("straße@example.org")  # mailed to the stranger
    into_owner = fresh()
    assert h.send(into_owner, "request_login", {"email": "strasse@example.org"}).ok  # joins it: no mail
    reply = h.send(into_owner, "verify_code", {"code": code})
    assert reply.code != "ok", "the stranger got the owner's key backup and a session acting for the account"
    assert h.send(into_owner, "status").code == "unknown_account"


def test_a_signup_code_mailed_to_another_address_never_activates_a_register_of_the_owners(tmp_path):
    h = harness(tmp_path, "fold-squat")
    squatter = SecretKey.generate()
    claim = fresh()
    params = {"pubkey": squatter.pubkey_hex, "email": "strasse@example.org", "backup": BACKUP}
    assert h.send(claim, "register", params, seal=squatter).ok  # the owner gets a signup code
    h.now += 61
    assert h.send(fresh(), "request_account", {"email": "straße@example.org"}).ok
    code = h.last_code("straße@example.org")  # the stranger's own inbox
    reply = h.send(claim, "verify_code", {"code": code})
    assert reply.code != "ok"
    assert h.count("users", "email = 'strasse@example.org' AND activated = 1") == 0


# --- H8. confirm_email switches to the pending address whatever address its code proved ----------


def test_an_email_change_switches_only_to_the_address_its_code_proved(tmp_path):
    """A stranger with an account asks, from one key, a change to x@ (their own mailbox), then from
    another key a change to the victim's address (which has a pending signup: not taken). The
    first key's session redeems x@'s codes, but confirm_email moves the account to
    ``pending_email``. Cost: one account, three requests. The owner sees their code answer
    ``no_session``, then ``email_taken`` on a new signup."""
    h = harness(tmp_path, "switch")
    stranger = make_account(h, "stranger@evil.example")
    owner_key, owner = SecretKey.generate(), fresh()
    params = {"pubkey": owner_key.pubkey_hex, "email": "victim@example.org", "backup": BACKUP}
    assert h.send(owner, "register", params, seal=owner_key).ok
    owners_code = h.last_code("victim@example.org")
    first, second = fresh(), fresh()
    assert h.send(first, "change_email", {"email": "x@evil.example"}, seal=stranger).ok
    assert h.send(second, "change_email", {"email": "victim@example.org"}, seal=stranger).ok
    reply = h.send(first, "confirm_email", {"code": h.last_code("x@evil.example")}, seal=stranger)
    assert reply.result != {"email": "victim@example.org"}, "switched to an address nobody proved"
    assert h.send(owner, "verify_code", {"code": owners_code}).ok  # the owner's signup is intact


# --- H2. A confirmed email change does not end a login started on the old address ---------------


def test_a_confirmed_email_change_ends_a_login_started_on_the_old_address(tmp_path):
    """The owner moves away from old@ because a stranger reads it. The stranger, warned by the
    change notice mailed to old@, asked for a login code there and keeps it unused; once the move
    is confirmed (its "email changed" notice also goes to old@) the stranger types the code."""
    h = harness(tmp_path, "move")
    key = make_account(h, "old@example.org")
    stranger = fresh()
    assert h.send(stranger, "request_login", {"email": "old@example.org"}).ok
    stolen = h.last_code("old@example.org")
    device = fresh()
    assert h.send(device, "change_email", {"email": "new@example.org"}, seal=key).ok
    assert h.send(device, "confirm_email", {"code": h.last_code("new@example.org")}, seal=key).ok
    h.now += 60
    reply = h.send(stranger, "verify_code", {"code": stolen})
    assert reply.code != "ok"
    assert h.send(stranger, "status").code == "unknown_account"  # today: the new address, and a session


# --- H3. Private mode: prices and metrics tell accounts apart ----------------------------------


def _price_probe(h: Harness, method: str) -> list[str]:
    """Two made-up signups fill the domain's share but one (3); then the probed address, then a
    made-up signup that pays the minimum: refused iff the probe counted toward the share."""
    prober = make_account(h, "prober@elsewhere.example") if method == "change_email" else None
    answers = [h.send(fresh(), "request_account", {"email": f"made{i}@small.example"}).code for i in range(2)]
    answers.append(h.send(fresh(), method, {"email": "t@small.example"}, seal=prober).code)
    answers.append(h.send(fresh(), "request_account", {"email": "made9@small.example"}).code)
    return answers


def test_private_mode_prices_tell_nothing_about_an_address(tmp_path):
    """The domain's share is 3 codes an hour to unproven addresses. Two made-up signups, then the
    probe, then a made-up signup at the minimum price. ``request_account`` for an account opens a
    login session whose code goes to a proven address (not counted), for nothing or an
    unfinished signup a signup code (counted); ``request_login`` for nothing is a decoy (not
    counted), for an unfinished signup a signup code (counted); ``change_email`` (from the
    stranger's own account) to another account's address is a decoy (not counted), to anything
    else a real code (counted). Cost: four requests and an hour's wait per probe; on a real
    domain the stranger first measures its traffic (the share is 300)."""
    rules = with_accounts(private_mode=True, max_codes_per_domain_per_hour=3)
    seen: dict[tuple[str, str], list[str]] = {}
    for method in ("request_account", "request_login", "change_email"):
        for state in ("nothing", "account", "unfinished"):
            h = harness(tmp_path, f"price-{method}-{state}", rules)
            if state == "account":
                make_account(h, "t@small.example")
            elif state == "unfinished":
                assert h.send(fresh(), "request_account", {"email": "t@small.example"}).ok
                h.now += HOUR + 60
            seen[method, state] = _price_probe(h, method)
    # Today: request_account: nothing and unfinished [..., 'pow_too_low'], account [..., 'ok'];
    # request_login: unfinished [..., 'pow_too_low'], the others [..., 'ok']; change_email: account
    # [..., 'ok'], the others [..., 'pow_too_low'].
    for method in ("request_account", "request_login", "change_email"):
        assert seen[method, "account"] == seen[method, "nothing"] == seen[method, "unfinished"], seen


def _outbox(h: Harness) -> dict[str, float]:
    metrics = Metrics()
    metrics.mail_rows(mail_counts(h.conn), private=True)
    sample = metrics.registry.get_sample_value
    return {
        kind: sample("sigit_mail_outbox", {"kind": kind, "status": "queued"}) or 0.0
        for kind in ("code", "notice")
    }


def test_private_mode_mail_metrics_tell_nothing_about_an_address(tmp_path):
    rises = {}
    for state in ("nothing", "account"):
        h = harness(tmp_path, f"metrics-{state}", PRIVATE)
        make_account(h, "someone@example.org")  # the scrape shows some mail either way
        if state == "account":
            make_account(h, "t@example.org")
        before = _outbox(h)
        assert h.send(fresh(), "request_login", {"email": "t@example.org"}).ok
        after = _outbox(h)
        rises[state] = {kind: after[kind] - before[kind] for kind in after}
    assert rises["account"] == rises["nothing"], rises


def test_private_mode_a_later_suspension_does_not_show_to_a_strangers_session(tmp_path):
    seen = {}
    for state in ("nothing", "account"):
        h = harness(tmp_path, f"suspend-{state}", PRIVATE)
        if state == "account":
            make_account(h, "target@example.org")
        stranger = fresh()
        answers = [h.send(stranger, "request_login", {"email": "target@example.org"}).code]
        if state == "account":
            actions.suspend_user(h.conn, "target@example.org", admin_ctx(h), "op")
        answers.append(h.send(stranger, "verify_code", {"code": "000000"}).code)
        h.now += 61
        answers.append(h.send(stranger, "resend_code").code)
        seen[state] = answers
    assert seen["account"] == seen["nothing"], seen


# --- H4. The owner's code can stop working before they type it ----------------------------------


def test_an_owner_who_joins_a_code_about_to_expire_is_still_in_at_once(tmp_path):
    """A stranger fills the mailbox's hourly cap (5 requests a minute apart, 16-bit PoW each) and
    then asks again as each code expires: the live code is always 0-15 min old. An owner who
    comes in its last seconds gets no mail and a code that dies before it is typed."""
    h = harness(tmp_path, "expiring")
    make_account(h, OWNER)
    for _ in range(5):
        assert h.send(fresh(), "request_login", {"email": OWNER}).ok
        minted = h.now
        h.now += 61
    h.now = minted + h.service.rules.accounts.code_ttl_s - 20  # the newest code's last 20 s
    owner = fresh()
    sent = code_mails(h, OWNER)
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    assert code_mails(h, OWNER) == sent  # nothing new in the owner's inbox
    h.now += 30  # the owner reads the newest mail and types its code
    reply = h.send(owner, "verify_code", {"code": h.last_code(OWNER)})
    assert reply.code == "ok", reply.error


def test_the_code_mailed_for_the_owners_request_works_for_its_fifteen_minutes(tmp_path):
    h = harness(tmp_path, "pushed")
    make_account(h, OWNER)
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    mine = h.last_code(OWNER)
    for _ in range(2):  # within the hourly cap, past the 60 s cooldown: each mints a new code
        h.now += 61
        assert h.send(fresh(), "request_login", {"email": OWNER}).ok
    h.now += 10
    reply = h.send(owner, "verify_code", {"code": mine})
    assert reply.code == "ok", reply.error
    assert h.count("code_failures") == 0


def test_the_newest_code_in_the_owners_inbox_logs_the_owner_in(tmp_path):
    h = harness(tmp_path, "kinds")
    make_account(h, OWNER)
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    h.now += 5
    assert h.send(fresh(), "request_account", {"email": "ana+x@example.org"}).ok  # same inbox
    kind, code = newest_code_in(h, (OWNER, "ana+x@example.org"))
    assert kind == "signup_code"
    reply = h.send(owner, "verify_code", {"code": code})
    assert reply.code == "ok" or h.count("code_failures") == 0, (reply.code, "counted as guessing")


# --- H5. An operator's resend or unlock during guessing mails a dead six-digit code ----------------


def test_an_operators_resend_during_guessing_mails_a_code_that_works(tmp_path):
    h = harness(tmp_path, "admin-long")
    make_account(h, OWNER)
    guess_until_long(h, OWNER)
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    assert len(h.last_code(OWNER)) == 16
    h.now += 120  # the owner asks support, who resends
    actions.resend_code(h.conn, owner.key.pubkey_hex, admin_ctx(h), "op")
    code = h.last_code(OWNER)
    reply = h.send(owner, "verify_code", {"code": code})
    assert reply.code == "ok", (len(code), reply.error)


# --- H6. resend_code is never priced: a busy domain's price is paid once per address -------------


def test_resends_to_made_up_addresses_never_raise_a_busy_domains_price_and_stay_in_their_caps(tmp_path):
    """H6, as settled: a resend does not pay a domain's price again (the request that opened its
    session paid it) and does not count toward the domain's share, so keeping paid sessions
    alive never raises what real signups there pay; and past its mailbox's hourly cap a resend
    that would mint pays the mailbox's price."""
    rules = with_accounts(max_codes_per_domain_per_hour=3, resend_cooldown_s=0)
    h = harness(tmp_path, "resend-price", rules)
    sessions = [fresh() for _ in range(2)]
    for i, session in enumerate(sessions):
        assert h.send(session, "request_account", {"email": f"made{i}@busy.example"}).ok
    h.now += h.service.rules.accounts.code_ttl_s + 1  # the codes expired: a resend mints anew
    answers = [h.send(session, "resend_code").code for session in sessions for _ in range(2)]
    assert answers == ["ok"] * 4
    assert h.send(fresh(), "request_account", {"email": "real@busy.example"}).ok  # the 3rd: no price
    one = sessions[0]
    for _ in range(3):  # made0@'s mailbox: 1 + 2 + 3 = 6 codes this hour, past its cap of 5
        h.send(one, "resend_code")
    mailed = h.count("mail")
    assert h.send(one, "resend_code").ok and h.count("mail") == mailed  # capped: joins the live code
    h.now += h.service.rules.accounts.code_ttl_s + 1  # no live code: a new one costs more past the cap
    priced = h.send(one, "resend_code")
    assert priced.code == "pow_too_low" and priced.error["required_bits"] > 2


# --- H7. Private mode: a change_email decoy is bypassed by an earlier change session's resend ------


def test_private_mode_no_change_session_mails_a_code_to_a_used_address(tmp_path):
    h = harness(tmp_path, "decoy-bypass", PRIVATE)
    make_account(h, "owner@example.org")
    asker = make_account(h, "asker@example.org")
    first, second = fresh(), fresh()
    assert h.send(first, "change_email", {"email": "free@example.org"}, seal=asker).ok
    assert h.send(second, "change_email", {"email": "owner@example.org"}, seal=asker).ok  # a decoy
    before = h.count("mail", "recipient = 'owner@example.org'")
    h.now += 61
    # The first change was replaced: its session has nothing to resend (whatever the second
    # address is, so this tells nothing), and nothing goes to the used address.
    assert h.send(first, "resend_code").code == "no_session"
    assert h.count("mail", "recipient = 'owner@example.org'") == before


def test_resend_after_a_cancelled_change_mails_nothing(tmp_path):
    h = harness(tmp_path, "cancelled")
    key = make_account(h, "t@example.org")
    session = fresh()
    assert h.send(session, "change_email", {"email": "x@example.org"}, seal=key).ok
    assert h.send(fresh(), "change_email", {"email": "t@example.org"}, seal=key).ok  # cancelled
    h.now += 61
    h.send(session, "resend_code")
    assert h.count("mail", "recipient = ''") == 0


# =================================================================================================
# Claims attacked that held (regression tests)
# =================================================================================================


def test_decoys_of_unknown_and_suspended_addresses_never_delay_the_owner(tmp_path):
    """Private mode: 40 wrong codes on decoys (owner+N@ with no account, and a suspended account's
    address) count as any wrong codes would (a mailbox must turn long alike whether it has an
    account: the second review's R3), and the owner's next code comes at once and works: longer,
    never later, and nobody is told of a decoy's guesses."""
    h = harness(tmp_path, "decoys", PRIVATE)
    make_account(h, OWNER)
    make_account(h, "frozen@example.org")
    actions.suspend_user(h.conn, "frozen@example.org", admin_ctx(h), "op")
    for address in ("ana+1@example.org", "ana+2@example.org", "ANA+3@example.org", "frozen@example.org") * 2:
        stranger = fresh()
        assert h.send(stranger, "request_login", {"email": address}).ok
        for _ in range(5):
            h.send(stranger, "verify_code", {"code": "000000"})
    assert h.count("code_failures") == 40
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    code = h.last_code(OWNER)
    assert len(code) == 16 and h.send(owner, "verify_code", {"code": code}).ok
    assert h.count("mail", "kind = 'code_guessing'") == 0


def carry(h: Harness, carrier: Encryptor, plaintext: str, *, pow_bits: int = 2):
    """A request event from ``carrier`` whose decrypted content is ``plaintext`` (a seal, say)."""
    dvm = h.service.pubkey
    content = carrier.encrypt(bytes.fromhex(dvm), plaintext)
    tags = list(nip13.mine(carrier.key.pubkey_hex, h.now, 5780, [("p", dvm)], content, target=pow_bits))
    return sign_event(carrier.key, 5780, content, h.now, tags)


def test_a_seal_is_used_once_whatever_the_first_answer_and_until_its_window_closes(tmp_path):
    """A seal dated 600 s ahead (the most the window allows) is refused by the price; carried
    again in a new event at the last second its own created_at allows, after a retention pass,
    and mined to the price, it is still refused as used."""
    h = harness(tmp_path, "seal", with_accounts(max_codes_per_domain_per_hour=1))
    key = make_account(h, "a@busy.example")
    assert h.send(fresh(), "request_account", {"email": "made@busy.example"}).ok  # the share is used
    carrier = fresh()
    window = h.service.rules.intake.created_at_window_s
    plaintext = sealed_plaintext(
        key,
        h.service.pubkey,
        carrier.key.pubkey_hex,
        "change_email",
        {"email": "b@busy.example"},
        h.now + window,
    )
    priced = h.send_event(carrier, carry(h, carrier, plaintext))[1]
    assert priced.code == "pow_too_low"
    h.now += 2 * window  # the seal's created_at is exactly at the window's edge: still valid
    retention.prune_seals(h.conn, SimpleNamespace(seal_until=h.now), 1000)
    again = h.send_event(carrier, carry(h, carrier, plaintext, pow_bits=priced.error["required_bits"]))[1]
    assert again.code == "bad_request" and "seal" in again.error["message"]
    assert h.send(fresh(), "status", seal=key).result["pending_email"] is None


def test_a_seal_carried_by_another_key_is_refused_and_stays_unused(tmp_path):
    h = harness(tmp_path, "seal-carrier")
    key = make_account(h, OWNER)
    mine, thief = fresh(), fresh()
    plaintext = sealed_plaintext(
        key, h.service.pubkey, mine.key.pubkey_hex, "update_backup", {"backup": NEW_BACKUP}, h.now
    )
    stolen = h.send_event(thief, carry(h, thief, plaintext))[1]
    assert stolen.code == "bad_request" and "client" in stolen.error["message"]
    assert h.send_event(mine, carry(h, mine, plaintext))[1].ok


def test_one_key_registered_for_two_addresses_becomes_one_account_and_only_its_holder_hears(tmp_path):
    h = harness(tmp_path, "two-addresses")
    key = SecretKey.generate()
    first, second = fresh(), fresh()
    for browser, email in ((first, "one@example.org"), (second, "two@example.org")):
        params = {"pubkey": key.pubkey_hex, "email": email, "backup": BACKUP}
        assert h.send(browser, "register", params, seal=key).ok
    assert h.send(first, "verify_code", {"code": h.last_code("one@example.org")}).ok
    assert h.send(second, "verify_code", {"code": h.last_code("two@example.org")}).code == "pubkey_taken"
    assert h.count("users", "activated = 1") == 1
    # Nobody but the key's holder can name it: unsealed or sealed by another key.
    stranger = fresh()
    params = {"pubkey": key.pubkey_hex, "email": "three@example.org", "backup": BACKUP}
    assert h.send(stranger, "register", params).code == "key_not_proven"
    assert h.send(stranger, "register", params, seal=SecretKey.generate()).code == "bad_request"
    signup = fresh()
    assert h.send(signup, "request_account", {"email": "four@example.org"}).ok
    assert h.send(signup, "verify_code", {"code": h.last_code("four@example.org")}).ok
    assert h.send(signup, "activate", {"pubkey": key.pubkey_hex, "backup": BACKUP}).code == "key_not_proven"


def test_a_strangers_sessions_lose_every_right_when_the_owner_changes_the_backup(tmp_path):
    """A stranger who once got a login code holds a session, and opened from it an email change
    and a deletion. The owner's sealed update_backup ends all of it; an activation repeated from
    the owner's old activation session gives no right back."""
    h = harness(tmp_path, "revoke")
    key = SecretKey.generate()
    signup = fresh()
    assert h.send(signup, "request_account", {"email": OWNER}).ok
    assert h.send(signup, "verify_code", {"code": h.last_code(OWNER)}).ok
    assert h.send(signup, "activate", {"pubkey": key.pubkey_hex, "backup": BACKUP}, seal=key).ok
    stranger, mover, remover = fresh(), fresh(), fresh()
    for session in (stranger, mover, remover):
        assert h.send(session, "request_login", {"email": OWNER}).ok
        assert h.send(session, "verify_code", {"code": h.last_code(OWNER)}).ok
        h.now += 61
    assert h.send(mover, "change_email", {"email": "thief@example.org"}).ok
    assert h.send(remover, "request_deletion").ok
    assert h.send(fresh(), "update_backup", {"backup": NEW_BACKUP}, seal=key).ok
    assert h.send(stranger, "status").code == "unknown_account"
    assert (
        h.send(mover, "confirm_email", {"code": h.last_code("thief@example.org")}).code == "unknown_account"
    )
    assert h.send(remover, "delete_account", {"code": h.last_code(OWNER)}).code == "unknown_account"
    assert h.send(signup, "activate", {"pubkey": key.pubkey_hex, "backup": NEW_BACKUP}, seal=key).ok  # no-op
    assert h.send(signup, "status").code == "unknown_account"
    assert h.send(fresh(), "status", seal=key).result["email"] == OWNER


def test_operator_moves_and_restores_end_every_session(tmp_path):
    h = harness(tmp_path, "admin-revoke")
    key = make_account(h, OWNER)
    sessions = []
    for _ in range(2):
        session = fresh()
        assert h.send(session, "request_login", {"email": OWNER}).ok
        assert h.send(session, "verify_code", {"code": h.last_code(OWNER)}).ok
        sessions.append(session)
        h.now += 61
    assert h.send(sessions[0], "update_backup", {"backup": NEW_BACKUP}).ok  # keeps its own right
    actions.restore_backup(h.conn, OWNER, admin_ctx(h), "op")
    assert h.send(sessions[0], "status").code == "unknown_account"
    session = fresh()
    assert h.send(session, "request_login", {"email": OWNER}).ok
    assert h.send(session, "verify_code", {"code": h.last_code(OWNER)}).ok
    actions.change_email(h.conn, OWNER, "moved@example.org", admin_ctx(h), "op")
    assert h.send(session, "status").code == "unknown_account"
    assert h.send(fresh(), "status", seal=key).result["email"] == "moved@example.org"


def test_no_request_changes_or_erases_a_pending_signup(tmp_path):
    """The owner's register waits for its code while strangers register the address with their
    keys, ask request_account and request_login for it (private mode: all open sessions), and a
    stranger's account asks to move there. The owner's code activates the owner's key."""
    h = harness(tmp_path, "pending", PRIVATE)
    mover = make_account(h, "mover@example.org")
    key = SecretKey.generate()
    owner = fresh()
    assert h.send(
        owner, "register", {"pubkey": key.pubkey_hex, "email": OWNER, "backup": BACKUP}, seal=key
    ).ok
    for _ in range(6):
        theirs = SecretKey.generate()
        claim = {"pubkey": theirs.pubkey_hex, "email": OWNER, "backup": NEW_BACKUP}
        assert h.send(fresh(), "register", claim, seal=theirs).ok
        assert h.send(fresh(), "request_account", {"email": OWNER}).ok
        assert h.send(fresh(), "request_login", {"email": OWNER}).ok
        h.now += 20
    assert h.send(fresh(), "change_email", {"email": OWNER}, seal=mover).ok
    _, code = newest_code_in(h, (OWNER,), kind="signup_code")
    assert h.send(owner, "verify_code", {"code": code}).ok
    assert h.send(fresh(), "status", seal=key).result["email"] == OWNER
    assert h.send(fresh(), "status", seal=mover).result["pending_email"] is None  # cancelled


def test_mail_to_one_mailbox_stays_bounded_when_a_stranger_mixes_three_kinds_of_code(tmp_path):
    """A stranger with an account of their own asks, every minute for four hours, a login code
    (ana@), a signup code (ana+1@) and an email-change code (ana+2@) for one inbox. Bounded: at
    most the hourly cap plus one code per kind per expiry. (Measured: 14 in the first hour, then
    12 an hour; docs/threat-model.md says "up to about 5 codes an hour, more for a few minutes".)"""
    h = harness(tmp_path, "mixed")
    make_account(h, OWNER)
    own = make_account(h, "stranger@evil.example")
    rules = h.service.rules.accounts
    bound = rules.max_codes_per_email_per_hour + 3 * (HOUR // rules.code_ttl_s + 1)
    inbox = "kind LIKE '%code' AND recipient LIKE 'ana%@example.org' AND created_at >= ? AND created_at < ?"
    for _ in range(4):
        start = h.now
        for _ in range(60):
            h.send(fresh(), "request_login", {"email": OWNER})
            h.send(fresh(), "request_account", {"email": "ana+1@example.org"})
            h.send(fresh(), "change_email", {"email": "ana+2@example.org"}, seal=own)
            h.now += 60
        assert h.count("mail", inbox, start, h.now) <= bound
    # And the owner, at the end of it, is in with the newest login code.
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    assert h.send(owner, "verify_code", {"code": h.last_code(OWNER)}).ok


def test_a_request_below_its_methods_minimum_costs_no_row_and_a_decoy_leaves_what_a_real_one_does(
    tmp_path,
):
    rules = replace(
        PRIVATE, intake=IntakeRules(pow_bits=dict.fromkeys(Method, 4) | {Method.REQUEST_LOGIN: 8})
    )
    h = harness(tmp_path, "cost", rules)
    tables = ("requests", "sessions", "users", "codes", "code_sends", "code_send_minutes", "mail", "seals")
    before = {t: h.count(t) for t in tables}
    cheap = h.event(fresh(), "request_login", {"email": "nobody@example.org"}, pow_bits=4)
    incoming = h.open(cheap)
    assert incoming.refusal is not None and incoming.refusal.code == "pow_too_low"
    answer = h.service.refuse(incoming, h.now)
    assert not answer.stored
    assert {t: h.count(t) for t in tables} == before
    # A paid decoy leaves what a real request leaves (its session, its request, a code row that
    # matches nothing, and its counts), and no mail.
    assert h.send(fresh(), "request_login", {"email": "nobody@example.org"}, pow_bits=8).ok
    after = {t: h.count(t) for t in tables}
    grew = {t: after[t] - before[t] for t in tables}
    assert grew == {t: 0 for t in tables} | {
        "requests": 1,
        "sessions": 1,
        "codes": 1,
        "code_sends": 1,
        "code_send_minutes": 2,
    }
    assert h.conn.execute("SELECT code_hmac FROM codes").fetchone()[0] == "-"


# --- A third review (2026-12-07): codes of another step at the canonical address -------------------


def test_email_changes_aimed_at_the_canonical_address_cost_the_owners_signup_one_price_step(tmp_path):
    """docs/threat-model.md, second row: codes a stranger's own account sends to ``owner@`` for an
    email change count under ``owner@``'s cap. Past it the owner's first signup code costs what
    the stranger's next new code costs (here one bit more); the owner is never refused, and the
    owner's next request joins that code at the minimum."""
    h = harness(tmp_path, "crosskind")
    stranger = make_account(h, "stranger@evil.example")
    for _ in range(h.service.rules.accounts.max_codes_per_email_per_hour):
        assert h.send(fresh(), "change_email", {"email": OWNER}, seal=stranger).ok
        h.now += 61
    owner = fresh()
    minimum = h.service.rules.intake.pow_bits[Method.REQUEST_ACCOUNT]
    refused = h.send(owner, "request_account", {"email": OWNER}, pow_bits=minimum)
    assert refused.error is not None
    assert (refused.error["code"], refused.error["required_bits"]) == ("pow_too_low", minimum + 1)
    assert h.send(owner, "request_account", {"email": OWNER}, pow_bits=minimum + 1).ok
    h.now += 61
    assert h.send(fresh(), "request_account", {"email": OWNER}, pow_bits=minimum).ok  # joins it
    assert h.send(owner, "verify_code", {"code": h.last_code(OWNER)}).ok
