"""A second attacker's review of the owners-first rules, as reworked after the first one (codes
bound to the exact address, joins that refresh the newest code, per-kind caps, prices past them,
sessions void once the account's epoch moves, decoys that mint, join, count and pay).

The tests of the first part were holes found in this review (R1-R11), written as strict xfails;
all are closed now and the tests keep them closed (R6 and R10 restate the settled rule: in
private mode a price depends on the address alone, so the owner pays what the stranger's next
new code pays, never more). The plain tests are claims that were attacked hard and
held; they stay as regression tests. Everything runs over the real service and a real SQLite
file (``tests.support.flows.Harness``), its clock moved by hand; answers are read as a client
reads them (the reply events, decrypted).

Who is who: ``owner`` reads the victim's mailbox (and, when said, holds the account key); every
other key is a stranger's, with real (here: low, for speed) proof of work that pays any price
asked unless the test says otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dvm.accounts.decision import RecordCodeFailure, RecordCodeSend
from dvm.admin import actions
from dvm.config import ServiceSettings, Settings
from dvm.errors import AdminError
from dvm.nostr.keys import SecretKey
from dvm.protocol.intake import DEFAULT_POW_BITS
from dvm.protocol.methods import Method
from dvm.store import database, repository, retention
from tests.integration.test_review_owners import (
    BACKUP,
    HOUR,
    NEW_BACKUP,
    OWNER,
    PRIVATE,
    admin_ctx,
    code_mails,
    fresh,
    harness,
    make_account,
    with_accounts,
)
from tests.support.flows import LOW_POW, Harness

TAGGED = "ana+me@example.org"
MINIMUM = 2  # every method's minimum under LOW_POW (the harness's rules)
RETENTION = Settings(
    service=ServiceSettings(pow_request_account_bits=2, pow_request_login_bits=2, pow_other_bits=2)
)
JS_CLIENT = Path(__file__).resolve().parents[2] / "clients" / "js" / "src" / "client.js"


def paying(h: Harness, method: str, params: dict, *, seal: SecretKey | None = None, client=None):
    """A request (from ``client``, else a fresh key) that pays whatever price is asked: the reply
    and the bits it paid."""
    client = client or fresh()
    reply = h.send(client, method, params, seal=seal)
    if reply.code != "pow_too_low":
        return reply, MINIMUM
    bits = reply.error["required_bits"]
    return h.send(client, method, params, seal=seal, pow_bits=bits), bits


def prune_codes(h: Harness) -> int:
    """One retention pass over ``codes``, with the daemon's cut-offs for the harness's rules."""
    with database.immediate(h.conn):
        return retention.prune_codes(h.conn, retention.Cutoffs.at(RETENTION, h.now), 10_000)


# =================================================================================================
# Holes
# =================================================================================================

# --- R1. Only a mailbox's 20 newest code rows are loaded: newer rows of other addresses hide the
#         owner's live code, and the owner's right code counts as a guess ------------------------


def test_private_mode_decoys_at_other_addresses_never_hide_the_owners_live_code(tmp_path):
    """load_view reads at most ``CODES_LOADED`` (20) of the mailbox's newest code rows, every
    address and kind and decoys included, dead or used ones too. In private mode a stranger sends
    20 ``request_login`` for ``ana+1@`` ... ``ana+20@`` (no accounts: decoys, no mail, and no
    mailbox price then, since login codes were capped per exact address; now they pay it,
    R2) between the owner's request
    and the owner's typing. The owner's code is then not among the rows compared: ``code_invalid``
    and a wrong code counted against the owner's mailbox (ten of them: sixteen-digit codes and a
    "someone is guessing" mail). Cost: 20 requests at the method's minimum; kept up at about
    20 a minute (1,200 an hour: +1 to +3 bits of domain price) the owner never gets in."""
    h = harness(tmp_path, "window-private", PRIVATE)
    make_account(h, OWNER)
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    mine = h.last_code(OWNER)
    for i in range(20):
        assert paying(h, "request_login", {"email": f"ana+{i}@example.org"})[0].ok  # the mailbox's price
    assert code_mails(h, OWNER) == 2  # the register code an hour ago, and the owner's login code
    h.now += 30
    reply = h.send(owner, "verify_code", {"code": mine})
    assert reply.code == "ok", (reply.error, h.count("code_failures"))


def test_signups_at_other_addresses_never_hide_the_owners_live_code(tmp_path):
    """The same in default mode, with 20 ``request_account`` for ``ana+N@`` (the first 4 free,
    then +1 to +3 bits of mailbox price): the owner's inbox gets 20 signup codes for addresses
    they never asked, and the login code they asked for fails as a wrong code."""
    h = harness(tmp_path, "window-default")
    make_account(h, OWNER)
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    mine = h.last_code(OWNER)
    paid = [paying(h, "request_account", {"email": f"ana+{i}@example.org"})[1] for i in range(20)]
    assert max(paid) - MINIMUM <= 3
    h.now += 30
    reply = h.send(owner, "verify_code", {"code": mine})
    assert reply.code == "ok", (reply.error, h.count("code_failures"))


# --- R2. Private mode: login codes are capped per address, signup codes per mailbox, and which
#         one a request mints depends on the address's state: the price tells it -----------------


def _cap_probe(h: Harness, method: str) -> list[str]:
    """Five decoy logins at t+N@ (free: a decoy's login codes count per exact address) fill the
    mailbox's hourly cap; then ``method`` for t@ at the minimum: priced iff it mints a code
    capped per mailbox (a signup code), free if it mints one capped per address (a login code)."""
    answers = [h.send(fresh(), "request_login", {"email": f"t+{i}@example.org"}).code for i in range(5)]
    params: dict = {"email": "t@example.org"}
    seal = None
    if method == "register":
        seal = SecretKey.generate()
        params |= {"pubkey": seal.pubkey_hex, "backup": BACKUP}
    answers.append(h.send(fresh(), method, params, seal=seal).code)
    return answers


def test_private_mode_per_kind_caps_tell_nothing_about_an_address(tmp_path):
    """Today: ``request_account`` and ``register`` for t@ answer ``ok`` when t@ has an account
    (a login code, capped by the exact address: 0 this hour) and ``pow_too_low`` when it has
    nothing or an unfinished signup (a signup code, capped by the mailbox: 5); ``request_login``
    answers ``pow_too_low`` only for an unfinished signup. Cost: six requests at the minimum, no
    mail to anyone (the five fillers are decoys), no wait, no knowledge of the domain's traffic.
    The same split shows on ``resend_code`` (a decoy's login session vs a signup session)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for method in ("request_account", "register", "request_login"):
        for state in ("nothing", "account", "unfinished"):
            h = harness(tmp_path, f"cap-{method}-{state}", PRIVATE)
            if state == "account":
                make_account(h, "t@example.org")
            elif state == "unfinished":
                assert h.send(fresh(), "request_account", {"email": "t@example.org"}).ok
                h.now += HOUR + 60
            seen[method, state] = _cap_probe(h, method)
    for method in ("request_account", "register", "request_login"):
        assert seen[method, "account"] == seen[method, "nothing"] == seen[method, "unfinished"], seen


# --- R3. Private mode: a decoy's wrong codes never make its codes long, a real address's do; the
#         switch shows as a price ------------------------------------------------------------------


def test_private_mode_wrong_codes_tell_nothing_about_an_address(tmp_path):
    """Five logins for t@ a minute apart (its hourly cap), ten wrong codes from two sessions,
    one more login at the minimum. An account's codes are now long: its live six-digit code no
    longer serves, a new one is minted past the cap, ``pow_too_low``. A decoy never turns long:
    it joins its live code, ``ok``. Cost: 18 requests; the owner gets 5 codes and a guessing
    notice (so it is noisy, but it answers)."""
    seen = {}
    for state in ("nothing", "account"):
        h = harness(tmp_path, f"long-{state}", PRIVATE)
        if state == "account":
            make_account(h, "t@example.org")
        answers = []
        for _ in range(5):
            answers.append(h.send(fresh(), "request_login", {"email": "t@example.org"}).code)
            h.now += 61
        for _ in range(2):
            guesser = fresh()
            answers.append(h.send(guesser, "request_login", {"email": "t@example.org"}).code)
            answers += [h.send(guesser, "verify_code", {"code": "000000"}).code for _ in range(5)]
        answers.append(h.send(fresh(), "request_login", {"email": "t@example.org"}).code)
        seen[state] = answers
    assert seen["account"] == seen["nothing"], seen


# --- R4. Private mode: the owner's revocation ends a stranger's pending session, a decoy lives on --


def test_private_mode_an_owners_revocation_does_not_show_to_a_strangers_pending_session(tmp_path):
    """A stranger keeps pending login sessions on addresses it probes; when an owner changes the
    password (or revokes sessions, or confirms a move) while one is pending, its next
    ``verify_code`` answers ``no_session`` where a decoy's answers ``code_invalid``. A passive
    signal (it waits for the owner to act), not listed among "private mode's last signals"."""
    seen = {}
    for state in ("nothing", "account"):
        h = harness(tmp_path, f"epoch-{state}", PRIVATE)
        key = make_account(h, "someone@example.org")
        if state == "account":
            key = make_account(h, "t@example.org")
        probe = fresh()
        assert h.send(probe, "request_login", {"email": "t@example.org"}).ok
        h.now += 120
        assert h.send(fresh(), "update_backup", {"backup": NEW_BACKUP}, seal=key).ok  # an owner acts
        h.now += 120
        seen[state] = h.send(probe, "verify_code", {"code": "000000"}).error
    assert seen["account"] == seen["nothing"], seen


# --- R5. Private mode: a real session checks slips, a decoy does not -------------------------------


def test_private_mode_a_code_of_a_folded_address_tells_nothing(tmp_path):
    """``straße@`` and ``strasse@`` are two addresses (two mailboxes on a server taking UTF-8
    local parts) but one mailbox to the DVM. The stranger reads ``straße@``: a signup there
    mails them a live code. Typed into a login session for ``strasse@``, it is a slip for an
    account (``attempts_left`` 5, "another address or another step") and a counted wrong code
    for a decoy (``attempts_left`` 4). Cost: two requests and a ``verify_code``; needs an address
    that folds into the target's mailbox (``ß``/``ss``, final sigma, ``+`` where it is no tag)."""
    seen = {}
    for state in ("nothing", "account"):
        h = harness(tmp_path, f"slip-{state}", PRIVATE)
        if state == "account":
            make_account(h, "strasse@example.org")
        assert h.send(fresh(), "request_account", {"email": "straße@example.org"}).ok
        known = h.last_code("straße@example.org")  # the stranger's own inbox
        probe = fresh()
        assert h.send(probe, "request_login", {"email": "strasse@example.org"}).ok
        seen[state] = h.send(probe, "verify_code", {"code": known}).error
    assert seen["account"] == seen["nothing"], seen


# --- R6. Private mode: decoy logins at +tag addresses cost the stranger no mailbox price, yet
#         count toward the mailbox's cap: the owner's signup pays what the stranger never did -----


def test_private_mode_the_owners_signup_never_pays_more_than_the_stranger_paid(tmp_path):
    """320 ``request_login`` for ``ana+N@`` (decoys) within the hour. Seen: each paid at most the
    domain's price (+1 bit past its share of 300), none a mailbox price (each was the first code
    of its exact address), yet each counted toward ana's mailbox, so the owner's own signup at
    ``ana@`` was asked +7 bits while the stranger paid +1. Now private mode prices every request
    naming an address by its mailbox's count (one rule for every kind, R2): the stranger paid the
    rising price all along, and the owner pays what the stranger's next request would."""
    h = harness(tmp_path, "asymmetric", PRIVATE)
    stranger_paid = MINIMUM
    for i in range(320):
        reply, bits = paying(h, "request_login", {"email": f"ana+{i}@example.org"})
        assert reply.ok
        stranger_paid = max(stranger_paid, bits)
        if i % 12 == 0:
            h.now += 10
    assert h.count("mail") == 0
    owner = h.send(fresh(), "request_account", {"email": "ana@example.org"})
    asked = owner.error["required_bits"] if owner.code == "pow_too_low" else MINIMUM
    following = h.send(fresh(), "request_login", {"email": "ana+next@example.org"})
    next_price = following.error["required_bits"] if following.code == "pow_too_low" else MINIMUM
    assert asked <= next_price and asked <= stranger_paid + 1, (asked, stranger_paid, next_price)


# --- R7. The price ceiling is above the reference client's: "never a refusal" is one there ---------


def js_ceiling_bits() -> int:
    match = re.search(r"maxPowBits: opts\.maxPowBits \?\? (\d+)", JS_CLIENT.read_text(encoding="utf-8"))
    assert match is not None, "the JS client's default maxPowBits moved: update this test"
    return int(match.group(1))


def test_the_owners_signup_price_stays_within_the_js_clients_ceiling(tmp_path):
    """Prices stop at ``MAX_PRICE_EXTRA_BITS`` (8) above the minimum: 24 bits for a signup with
    the default 16. The JS client (clients/js) gives up past ``maxPowBits`` 22 (+6). A stranger
    sends 320 signups for ``ana+N@`` within the hour (paying up to +6 themselves: about 2^30
    hashes in all, minutes of one CPU core); the owner's own signup at ``ana@`` is then asked +7,
    and the reference client answers the owner ``pow_too_low`` with its ceiling: a refusal."""
    h = harness(tmp_path, "ceiling")
    for i in range(320):
        assert paying(h, "request_account", {"email": f"ana+{i}@example.org"})[0].ok
        if i % 12 == 0:
            h.now += 10
    owner = h.send(fresh(), "request_account", {"email": "ana@example.org"})
    asked = owner.error["required_bits"] - MINIMUM if owner.code == "pow_too_low" else 0
    assert asked <= js_ceiling_bits() - DEFAULT_POW_BITS[Method.REQUEST_ACCOUNT], asked


# --- R8. Retention prunes codes by minted_at, and joins keep a code alive past that -------------


def test_retention_never_deletes_a_live_code(tmp_path):
    """The owner starts a signup (one code mailed). A stranger keeps the mailbox at its cap (a
    paid signup for ``ana+N@`` every 10 minutes) and joins the owner's code every 10 minutes:
    it lives on, and stays the newest of its address. 80 minutes on, the owner asks again (a new
    session: the first one's deadline passed): it joins that code, nothing is mailed, and the
    owner types the newest code in the inbox. Retention (``codes`` older than the window and a
    code's life by ``minted_at``) deleted it meanwhile: ``code_invalid``, counted as a guess.
    Cost: 20 requests, the 8 paid signups at +1 or +2 bits."""
    h = harness(tmp_path, "retention")
    # An owner whose address is a +tag of the mailbox (the canonical one has its own cap).
    owner = fresh()
    assert h.send(owner, "request_account", {"email": TAGGED}).ok
    code = h.last_code(TAGGED)
    tag = iter(range(100))
    for _ in range(4):
        assert paying(h, "request_account", {"email": f"ana+{next(tag)}@example.org"})[0].ok
    for _ in range(8):
        h.now += 600
        assert paying(h, "request_account", {"email": f"ana+{next(tag)}@example.org"})[0].ok
        assert h.send(fresh(), "request_account", {"email": TAGGED}).ok  # joins the owner's code
    owner = fresh()
    sent = code_mails(h, TAGGED)
    assert h.send(owner, "request_account", {"email": TAGGED}).ok
    assert code_mails(h, TAGGED) == sent and h.last_code(TAGGED) == code  # joined: nothing new
    h.now += 60
    prune_codes(h)
    h.now += 30
    reply = h.send(owner, "verify_code", {"code": code})
    assert reply.code == "ok", (reply.error, h.count("code_failures"))


# --- R9. A request's work grows with the mailbox's wrong codes and sends: a cheap, lasting DoS ----


def _vm_steps(h: Harness, email: str) -> int:
    """SQLite VM steps (in tens) of one request_login for ``email``: the store's work."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    h.conn.set_progress_handler(tick, 10)
    try:
        h.send(fresh(), "request_login", {"email": email})
    finally:
        h.conn.set_progress_handler(None, 10)
    return steps[0]


def _record(h: Harness, rows: str, n: int) -> None:
    """What ``n`` wrong codes (or ``n`` paid codes minted) on ana's mailbox leave in the store:
    the rows the requests themselves write, through the store's own writer."""
    if rows == "failures":
        writes = [RecordCodeFailure("ana@example.org", h.now - 60)] * n
    else:
        writes = [RecordCodeSend("ana@example.org", h.now - 60, False, "ana+x@example.org")] * n
    with database.immediate(h.conn):
        repository.apply_writes(h.conn, writes)


@pytest.mark.parametrize("rows", ["failures", "sends"])
def test_a_requests_work_does_not_grow_with_its_mailboxs_wrong_codes_or_sends(tmp_path, rows):
    """``code_failures_since`` and ``code_sends_since`` load every row of the mailbox in their
    window, though only a count up to a threshold matters (10 failures; 5 << 8 sends). Wrong
    codes are never priced (12 bits a try, 16 a session of 5: about 2^14 hashes each) and stay
    a week: 100,000 of them (minutes of one CPU core) make every request naming that mailbox
    take 50-100 ms in process (measured: 2 ms with none), the stranger's own guesses included,
    so about 20 guesses a second keep the daemon's single event loop busy for everyone. Sends
    need the mailbox's price (+8 at most: a GPU) for the same effect within an hour (100,000
    sends: about 105 ms a request)."""
    h = harness(tmp_path, f"work-{rows}")
    make_account(h, OWNER)
    _record(h, rows, 2_000)
    before = _vm_steps(h, OWNER)
    _record(h, rows, 18_000)
    h.now += 61
    after = _vm_steps(h, OWNER)
    assert after <= 1.5 * before, (before, after)


# --- R10. Private mode: email-change decoys to the owner's address count toward its login cap ----


def test_private_mode_mailless_decoys_raise_the_owners_login_price_no_more_than_the_strangers(tmp_path):
    """A stranger's own account asks, five times a minute apart, to move to the owner's address
    (a decoy: nothing is mailed, not even to the owner). Seen: each counted toward the exact
    address's hourly cap, which login codes use, so the owner's next login was asked +1 bit for
    codes the owner never got. Settled (R2): in private mode a request's price cannot depend on
    whether its address has an account, so every request naming the mailbox counts toward one
    cap and pays one price, decoys included (a real change would have mailed the owner). What
    holds for the owner: a new code costs the owner what the stranger's next new code at that
    mailbox costs (here one bit, once), and the owner gets in."""
    h = harness(tmp_path, "ec-decoys", PRIVATE)
    make_account(h, OWNER)
    own = make_account(h, "stranger@evil.example")
    before = code_mails(h, OWNER)
    for _ in range(5):
        assert h.send(fresh(), "change_email", {"email": OWNER}, seal=own).ok
        h.now += 61
    assert code_mails(h, OWNER) == before
    # The stranger's next new code there (a further change would only join the live decoy code).
    following = h.send(fresh(), "request_login", {"email": "ana+next@example.org"})
    stranger_next = following.error["required_bits"] if following.code == "pow_too_low" else MINIMUM
    owner = fresh()
    reply, paid = paying(h, "request_login", {"email": OWNER}, client=owner)
    assert reply.ok and paid <= stranger_next, (paid, stranger_next)
    assert h.send(owner, "verify_code", {"code": h.last_code(OWNER)}).ok


# --- R11. The owner's own revocation voids the owner's sealed change and deletion ----------------


def test_a_sealed_change_or_deletion_survives_the_owners_revocation(tmp_path):
    """protocol.md (``revoke_sessions``): "A pending email change or deletion asked with a seal
    is not a session's right: its confirmation is sealed again, and still works." Today both
    answer ``no_session`` ("the account changed since this session began") after the key's own
    ``revoke_sessions`` or ``update_backup``: the epoch check in ``redeem`` voids every pending
    session. Either the code or the sentence is wrong; nothing here for a stranger."""
    h = harness(tmp_path, "sealed")
    key = make_account(h, OWNER)
    device = fresh()
    assert h.send(device, "change_email", {"email": "new@example.org"}, seal=key).ok
    change_code = h.last_code("new@example.org")
    assert h.send(fresh(), "revoke_sessions", seal=key).ok
    confirmed = h.send(device, "confirm_email", {"code": change_code}, seal=key)
    h.now += 61
    remover = fresh()
    assert h.send(remover, "request_deletion", seal=key).ok
    deletion_code = h.last_code(confirmed.result["email"] if confirmed.ok else OWNER)
    assert h.send(fresh(), "update_backup", {"backup": NEW_BACKUP}, seal=key).ok
    deleted = h.send(remover, "delete_account", {"code": deletion_code}, seal=key)
    assert (confirmed.code, deleted.code) == ("ok", "ok")


# =================================================================================================
# Claims attacked that held (regression tests)
# =================================================================================================


def test_slips_and_used_codes_give_no_uncounted_guesses(tmp_path):
    """Wrong codes spread over a login session (ana@), signup sessions (ana+N@) and a register
    session of one mailbox all count against it; the 10th turns its codes long; a used code
    typed again answers ``code_invalid`` uncounted but opens nothing; a code of another kind at
    the same address (the owner's deletion code in a stranger's login session) is a slip that
    opens nothing."""
    h = harness(tmp_path, "slips")
    key = make_account(h, OWNER)
    guesses = 0
    sessions = [("request_login", {"email": OWNER}, None)]
    sessions += [("request_account", {"email": f"ana+{i}@example.org"}, None) for i in range(2)]
    theirs = SecretKey.generate()
    sessions.append(
        ("register", {"pubkey": theirs.pubkey_hex, "email": "ana+r@example.org", "backup": BACKUP}, theirs)
    )
    for method, params, seal in sessions:
        session = fresh()
        assert paying(h, method, params, seal=seal, client=session)[0].ok
        for _ in range(3):
            assert h.send(session, "verify_code", {"code": "999999"}).code == "code_invalid"
            guesses += 1
    assert h.count("code_failures") == guesses == 12
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    code = h.last_code(OWNER)
    assert len(code) == 16 and h.send(owner, "verify_code", {"code": code}).ok
    again = fresh()
    assert h.send(again, "request_login", {"email": OWNER}).ok  # joins nothing: the code is used
    reused = h.send(again, "verify_code", {"code": code})
    assert reused.code == "code_invalid" and h.count("code_failures") == 12
    h.now += 61
    remover = fresh()
    assert h.send(remover, "request_deletion", seal=key).ok
    deletion = h.last_code(OWNER)
    stranger = fresh()
    assert h.send(stranger, "request_login", {"email": OWNER}).ok
    slip = h.send(stranger, "verify_code", {"code": deletion})
    assert slip.code == "code_invalid" and h.send(stranger, "status").code == "unknown_account"
    assert h.send(remover, "delete_account", {"code": deletion}, seal=key).ok  # still the owner's


def test_no_stranger_moves_another_accounts_epoch(tmp_path):
    """A stranger's own account asks (sealed) to move to the owner's address, revokes its own
    sessions and changes its own backup, in default and private mode: the owner's pending login
    session, opened before, still takes the owner's code."""
    for rules, name in ((LOW_POW, "default"), (PRIVATE, "private")):
        h = harness(tmp_path, f"epoch-held-{name}", rules)
        make_account(h, OWNER)
        own = make_account(h, "stranger@evil.example")
        owner = fresh()
        assert h.send(owner, "request_login", {"email": OWNER}).ok
        code = h.last_code(OWNER)
        moved = h.send(fresh(), "change_email", {"email": OWNER}, seal=own).code
        assert moved == ("ok" if rules is PRIVATE else "email_taken")
        assert h.send(fresh(), "revoke_sessions", seal=own).ok
        assert h.send(fresh(), "update_backup", {"backup": NEW_BACKUP}, seal=own).ok
        reply = h.send(owner, "verify_code", {"code": code})
        assert reply.ok and reply.result["backup"] == BACKUP, (name, reply.error)


def test_decoy_rows_never_stand_in_for_the_owners_code(tmp_path):
    """Private mode: while the owner's account is suspended, strangers' requests for its address
    are decoys (rows that match nothing). Once unsuspended, the owner's login joins no decoy: it
    gets a real code, mailed, that works."""
    h = harness(tmp_path, "decoy-rows", PRIVATE)
    make_account(h, OWNER)
    actions.suspend_user(h.conn, OWNER, admin_ctx(h), "op")
    for _ in range(6):
        assert h.send(fresh(), "request_login", {"email": OWNER}).ok
        h.now += 61
    assert h.count("codes", "code_hmac = '-'") == 5  # the sixth joined the fifth
    actions.unsuspend_user(h.conn, OWNER, admin_ctx(h), "op")
    owner = fresh()
    sent = code_mails(h, OWNER)
    reply = h.send(owner, "request_login", {"email": OWNER})
    if reply.code == "pow_too_low":  # the address's cap, counted by the decoys: a price, paid
        reply = h.send(owner, "request_login", {"email": OWNER}, pow_bits=reply.error["required_bits"])
    assert reply.ok and code_mails(h, OWNER) == sent + 1
    assert h.send(owner, "verify_code", {"code": h.last_code(OWNER)}).ok


def test_two_accounts_changing_to_one_address_only_its_reader_confirms(tmp_path):
    """The owner's account and a stranger's both ask to move to new@ (the owner reads it). The
    stranger's request came second and joined the owner's code: the owner confirms with it, the
    stranger's change is cancelled (its requester told), and the stranger's session confirms
    nothing with the same code."""
    h = harness(tmp_path, "two-changes")
    key = make_account(h, OWNER)
    own = make_account(h, "stranger@evil.example")
    device, theirs = fresh(), fresh()
    assert h.send(device, "change_email", {"email": "new@example.org"}, seal=key).ok
    assert h.send(theirs, "change_email", {"email": "new@example.org"}, seal=own).ok  # joins
    assert code_mails(h, "new@example.org") == 1
    code = h.last_code("new@example.org")
    assert h.send(device, "confirm_email", {"code": code}, seal=key).result == {"email": "new@example.org"}
    assert h.send(theirs, "confirm_email", {"code": code}, seal=own).code == "no_session"
    assert h.send(fresh(), "status", seal=own).result["email"] == "stranger@evil.example"
    assert h.count("mail", "kind = 'email_change_cancelled'") == 1


def test_a_tag_flood_never_prices_or_breaks_the_owners_login_outside_private_mode(tmp_path):
    """40 paid signups for ``ana+N@`` (the mailbox's price rising to +3): the owner's login, asked
    after them, pays the minimum and its code works at once (login codes count per address)."""
    h = harness(tmp_path, "tag-flood")
    make_account(h, OWNER)
    paid = [paying(h, "request_account", {"email": f"ana+{i}@example.org"})[1] for i in range(40)]
    assert max(paid) - MINIMUM == 3
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    assert h.send(owner, "verify_code", {"code": h.last_code(OWNER)}).ok


def test_joins_keep_the_owners_code_working_past_its_first_fifteen_minutes(tmp_path):
    """A stranger joins the owner's login code every ten minutes (the address's cap reached by
    four more codes, all mailed to the owner); 45 minutes on, the owner's first code, the
    newest of its address, works from a session opened on it."""
    h = harness(tmp_path, "joins")
    make_account(h, OWNER)
    for _ in range(4):
        assert h.send(fresh(), "request_login", {"email": OWNER}).ok
        h.now += 61
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    code = h.last_code(OWNER)
    for _ in range(4):
        h.now += 600
        assert h.send(fresh(), "request_login", {"email": OWNER}).ok
    owner = fresh()
    sent = code_mails(h, OWNER)
    assert h.send(owner, "request_login", {"email": OWNER}).ok and code_mails(h, OWNER) == sent
    prune_codes(h)  # 45 minutes: within retention's cut-off
    assert h.send(owner, "verify_code", {"code": code}).ok


def test_a_capped_address_keeps_the_owners_code_among_the_five_compared(tmp_path):
    """Past the first code the owner's request minted, the address gets at most four more in
    its hour (each a minute apart) and then joins: the owner's code stays among the five newest
    compared, and a guesser's fifty requests mint nothing new."""
    h = harness(tmp_path, "five", with_accounts(resend_cooldown_s=60))
    make_account(h, OWNER)
    owner = fresh()
    assert h.send(owner, "request_login", {"email": OWNER}).ok
    code = h.last_code(OWNER)
    for _ in range(50):
        h.now += 12
        h.send(fresh(), "request_login", {"email": OWNER})
    assert code_mails(h, OWNER) == 1 + 5
    assert h.send(owner, "verify_code", {"code": code}).ok


def test_an_operator_never_mails_a_code_to_a_session_the_account_moved_past(tmp_path):
    """The review's smaller note: ``sessions resend`` (and ``unlock``) on a login session voided
    by the owner's revocation mailed a code that could only answer ``no_session``. The operator
    is told instead, and nothing is mailed."""
    h = harness(tmp_path, "admin-void")
    key = make_account(h, OWNER)
    stranger = fresh()
    assert h.send(stranger, "request_login", {"email": OWNER}).ok
    assert h.send(fresh(), "revoke_sessions", seal=key).ok
    sent = code_mails(h, OWNER)
    h.now += 120
    with pytest.raises(AdminError, match="revoked its sessions"):
        actions.resend_code(h.conn, stranger.key.pubkey_hex, admin_ctx(h), "op")
    assert code_mails(h, OWNER) == sent
    assert h.send(stranger, "verify_code", {"code": h.last_code(OWNER)}).code == "no_session"
