"""Random sequences of requests from several clients, checked against the account invariants.

Runs the real service on a real SQLite file, then on a real PostgreSQL database. Invariants: one
user per email; activated implies verified; activated exactly when last_seen is set; a code works
only for a session of the mailbox and kind it was mailed for, only if it is one of the two newest
mailed there, only once, never after expiry nor in a locked session; entropy only ever goes to a
session whose code matched, and it is that user's entropy (none for a register account); an
ephemeral key acts for an account only within its session's right (auth_until, auth_epoch).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dvm.errors import InvalidEvent
from dvm.nostr import bech32
from dvm.store import backends
from tests.support import postgres
from tests.support.flows import ACCOUNT_RULES, Harness, mail_params, new_client

EMAILS = ["ana@example.org", "bo@example.org"]
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(90))
CLIENTS = st.integers(0, 3)


class AccountMachine(RuleBasedStateMachine):
    store_url = ""  # a PostgreSQL database (emptied for each example), or '': a new SQLite file

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="sigit-sm-")
        self.h = Harness(backends.connect_any(self.store_url, Path(self.dir) / "db.sqlite3"))
        if self.store_url:
            postgres.empty_tables(self.h.conn)
        self.clients = [new_client(100 + i) for i in range(4)]
        self.owners = [new_client(200 + i) for i in range(3)]  # account keys, which sign upkeep methods
        self.accounts = [owner.key.pubkey_hex for owner in self.owners]
        self.worked: set[str] = set()
        self.last_event: dict[int, object] = {}

    def teardown(self) -> None:
        self.h.conn.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers -------------------------------------------------------------------------------

    def mailed_codes(self, pubkey: str) -> list[tuple[str, int]]:
        """Codes mailed to the mailbox of ``pubkey``'s session for its kind (whoever asked),
        newest first, with their send time."""
        session = self.session(pubkey)
        if session is None or session["user_id"] is None:
            return []
        user = self.h.conn.execute("SELECT email FROM users WHERE id = ?", (session["user_id"],)).fetchone()
        if user is None:
            return []
        kind = {"signup": "signup_code", "register": "signup_code", "login": "login_code"}.get(
            session["purpose"]
        )
        rows = self.h.conn.execute(
            "SELECT params, created_at, message_id FROM mail WHERE recipient = ? AND kind = ? "
            "ORDER BY id DESC",
            (user[0], kind),
        ).fetchall()
        return [(str(mail_params(r[0], r[2])["code"]), r[1]) for r in rows]

    def send(self, c: int, method: str, params: dict | None = None, seal=None):
        event = self.h.event(self.clients[c], method, params, seal=seal)
        self.last_event[c] = event
        handled, reply = self.h.send_event(self.clients[c], event)
        assert not handled.replayed
        if method != "verify_code":  # entropy travels only in a verify_code answer
            assert not (reply.result or {}).get("entropy")
        return reply

    def session(self, pubkey: str):
        return self.h.conn.execute("SELECT * FROM sessions WHERE pubkey = ?", (pubkey,)).fetchone()

    # --- rules ---------------------------------------------------------------------------------

    @rule(c=CLIENTS, e=st.sampled_from(EMAILS))
    def request_account(self, c, e):
        self.send(c, "request_account", {"email": e})

    @rule(c=CLIENTS, e=st.sampled_from(EMAILS))
    def request_login(self, c, e):
        self.send(c, "request_login", {"email": e})

    @rule(c=CLIENTS, e=st.sampled_from(EMAILS), k=st.integers(0, 2))
    def register(self, c, e, k):
        params = {"pubkey": self.accounts[k], "email": e, "backup": BACKUP}
        self.send(c, "register", params, seal=self.owners[k].key)

    @rule(c=CLIENTS)
    def status_from_the_session_key(self, c):
        pubkey = self.clients[c].key.pubkey_hex
        before = self.session(pubkey)
        reply = self.send(c, "status")
        if reply.ok:  # only a key whose session still has the right acts for the account
            assert before is not None and before["auth_until"] is not None
            assert self.h.now < before["auth_until"] and before["state"] != "locked"
            user = self.h.conn.execute(
                "SELECT email, auth_epoch FROM users WHERE id = ?", (before["user_id"],)
            ).fetchone()
            assert reply.result["email"] == user[0] and before["auth_epoch"] == user[1]

    @rule(c=CLIENTS)
    def resend(self, c):
        self.send(c, "resend_code")

    @rule(c=CLIENTS, which=st.sampled_from(["latest", "older", "wrong"]))
    def verify(self, c, which):
        client = self.clients[c]
        pubkey = client.key.pubkey_hex
        mailed = self.mailed_codes(pubkey)
        before = self.session(pubkey)
        if which == "latest" and mailed:
            code, sent_at = mailed[0]
        elif which == "older" and len(mailed) > 1:
            code, sent_at = mailed[1]
        else:
            code, sent_at = f"{random.Random(len(mailed)).randrange(10**6):06d}", None
        reply = self.send(c, "verify_code", {"code": code})
        if not reply.ok:
            return
        # A code that worked: one of the five newest mailed to the session's address for its kind,
        # fresh, once, in a pending session.
        assert sent_at is not None and code in [m[0] for m in mailed[:5]]
        assert code not in self.worked
        self.worked.add(code)
        assert self.h.now < sent_at + ACCOUNT_RULES.code_ttl_s
        assert before is not None and before["state"] == "pending"
        after = self.session(pubkey)
        assert after["state"] in ("verified", "consumed")
        user = self.h.conn.execute("SELECT * FROM users WHERE id = ?", (after["user_id"],)).fetchone()
        if before["purpose"] == "register":  # activated by the code, no entropy
            assert reply.result == {} and user["activated"] == 1 and user["entropy"] == ""
        elif user["entropy"] == "":  # a login of a register account
            assert "entropy" not in reply.result and reply.result["backup"] == user["bkp"]
        else:
            assert reply.result["entropy"] == user["entropy"] != ""

    @rule(c=CLIENTS)
    def hammer_wrong_codes(self, c):
        """Enough wrong codes in a row to reach the lock."""
        mailed = {code for code, _ in self.mailed_codes(self.clients[c].key.pubkey_hex)}
        wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in mailed)
        for _ in range(ACCOUNT_RULES.max_code_attempts):
            assert not self.send(c, "verify_code", {"code": wrong}).ok

    @rule(c=CLIENTS, k=st.integers(0, 2))
    def activate(self, c, k):
        before = self.session(self.clients[c].key.pubkey_hex)
        reply = self.send(
            c, "activate", {"pubkey": self.accounts[k], "backup": BACKUP}, seal=self.owners[k].key
        )
        if reply.ok:
            assert before is not None and before["state"] in ("verified", "consumed")

    @rule(k=st.integers(0, 2), e=st.sampled_from([*EMAILS, "cy@example.org"]))
    def change_email(self, k, e):
        self.h.send(self.owners[k], "change_email", {"email": e})

    @rule(k=st.integers(0, 2))
    def confirm_email(self, k):
        owner = self.owners[k]
        mailed = self.h.conn.execute(
            "SELECT mail.params, mail.message_id FROM mail "
            "JOIN requests ON mail.request_id = requests.event_id "
            "WHERE requests.pubkey = ? AND mail.kind = 'email_change_code' ORDER BY mail.id DESC LIMIT 1",
            (owner.key.pubkey_hex,),
        ).fetchone()
        code = str(mail_params(mailed[0], mailed[1])["code"]) if mailed else "000000"
        pending = self.h.conn.execute(
            "SELECT pending_email FROM users WHERE pubkey = ?", (owner.key.pubkey_hex,)
        )
        before = pending.fetchone()
        reply = self.h.send(owner, "confirm_email", {"code": code})
        if reply.ok:  # the address switched to exactly the pending one
            assert before is not None and reply.result == {"email": before[0]}

    @rule(k=st.integers(0, 2))
    def revoke_sessions(self, k):
        self.h.send(self.owners[k], "revoke_sessions")

    @rule(seconds=st.sampled_from([1, 30, 61, 600, 901, 3601, 7 * 24 * 3600]))
    def tick(self, seconds):
        self.h.now += seconds

    @precondition(lambda self: self.last_event)
    @rule(data=st.data())
    def replay_a_seen_event(self, data):
        c = data.draw(st.sampled_from(sorted(self.last_event)))
        event = self.last_event[c]
        stored = self.h.conn.execute(
            "SELECT reply_event FROM requests WHERE event_id = ?", (event.id,)
        ).fetchone()
        tables = ("users", "sessions", "mail", "code_sends", "requests")
        counts = [self.h.count(t) for t in tables]
        users = self.h.conn.execute("SELECT * FROM users ORDER BY id").fetchall()
        expiration = int(event.first_tag("expiration")[1])
        if self.h.now >= expiration:  # its author no longer wants an answer: silence
            with pytest.raises(InvalidEvent):
                self.h.send_event(self.clients[c], event)
        else:
            handled, _ = self.h.send_event(self.clients[c], event)
            # Seen before: answered from storage, byte for byte, and nothing decided twice.
            assert handled.replayed and handled.reply.to_json() == stored[0]
        assert [self.h.count(t) for t in tables] == counts
        assert self.h.conn.execute("SELECT * FROM users ORDER BY id").fetchall() == users

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def one_user_per_email(self):
        dupes = self.h.conn.execute("SELECT email FROM users GROUP BY email HAVING count(*) > 1").fetchall()
        assert dupes == []

    @invariant()
    def activated_implies_verified_with_key_and_backup(self):
        assert self.h.count("users", "activated = 1 AND (verified = 0 OR pubkey = '' OR bkp = '')") == 0

    @invariant()
    def activated_exactly_when_last_seen_is_set(self):
        assert self.h.count("users", "(activated = 1) <> (last_seen IS NOT NULL)") == 0

    @invariant()
    def verified_sessions_belong_to_verified_users(self):
        bad = self.h.conn.execute(
            "SELECT count(*) FROM sessions JOIN users ON users.id = sessions.user_id "
            "WHERE sessions.state = 'verified' AND users.verified = 0"
        ).fetchone()[0]
        assert bad == 0

    @invariant()
    def a_live_pending_change_never_targets_an_address_its_owner_proved(self):
        clash = self.h.conn.execute(
            "SELECT count(*) FROM users a JOIN users b ON a.pending_email = b.email AND a.id <> b.id "
            "WHERE a.pending_email <> '' AND a.grace_deadline > ? AND b.verified = 1",
            (self.h.now,),
        ).fetchone()[0]
        assert clash == 0

    @invariant()
    def no_session_exceeds_the_attempt_limit(self):
        assert self.h.count("sessions", "attempts > ?", ACCOUNT_RULES.max_code_attempts) == 0


AccountMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SIGIT_SM_EXAMPLES", "40")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAccountInvariants = AccountMachine.TestCase


def test_account_invariants_hold_on_postgresql(pg_url):
    """The same machine on PostgreSQL (fewer examples: each costs round trips, not file writes)."""

    class OnPostgres(AccountMachine):
        store_url = pg_url

    run_state_machine_as_test(
        OnPostgres,
        settings=settings(
            max_examples=int(os.environ.get("SIGIT_SM_EXAMPLES_PG", "15")),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
