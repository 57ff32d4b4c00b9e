"""Account methods from ephemeral keys, over the real service and SQLite: authorised by a
session that proved the address, or by a seal of the account key; the account key itself still
works."""

from __future__ import annotations

import pytest

from dvm.nostr import bech32
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.store import database
from tests.support.flows import ACCOUNT_RULES, Harness, new_client

BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))
NEW_BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(1, 91)))


@pytest.fixture
def h(tmp_path):
    conn = database.connect(tmp_path / "sigit.sqlite3")
    yield Harness(conn)
    conn.close()


def register(h: Harness, email: str = "ana@example.org") -> tuple[Encryptor, SecretKey]:
    """A register signup from a fresh key; returns that key and the account key."""
    account = SecretKey.generate()
    browser = new_client(1)
    params = {"pubkey": account.pubkey_hex, "email": email, "backup": BACKUP}
    assert h.send(browser, "register", params, seal=account).ok
    assert h.send(browser, "verify_code", {"code": h.last_code(email)}).result == {}
    return browser, account


def login(h: Harness, seed: int, email: str = "ana@example.org") -> Encryptor:
    browser = new_client(seed)
    assert h.send(browser, "request_login", {"email": email}).ok
    assert h.send(browser, "verify_code", {"code": h.last_code(email)}).ok
    return browser


def sealed(h: Harness, carrier: Encryptor, account: SecretKey, method: str, params=None):
    event = build_request(carrier, h.service.pubkey, method, params or {}, h.now, pow_bits=2, seal=account)
    return h.send_event(carrier, event)[1]


def test_a_key_that_logged_in_acts_for_the_account_for_account_session_s(h):
    register(h)
    browser = login(h, 2)
    assert h.send(browser, "status").result["email"] == "ana@example.org"
    assert h.send(browser, "update_backup", {"backup": NEW_BACKUP}).ok  # the password change
    assert h.count("users", "bkp = ?", NEW_BACKUP) == 1
    h.now += ACCOUNT_RULES.account_session_s
    assert h.send(browser, "status").code == "unknown_account"


def test_the_key_that_registered_acts_for_the_account_after_its_code(h):
    browser, _ = register(h)
    assert h.send(browser, "status").result["activated"] is True


def test_an_email_change_and_a_deletion_from_a_logged_in_key(h):
    register(h)
    browser = login(h, 2)
    assert h.send(browser, "change_email", {"email": "new@example.org"}).ok
    # The key keeps acting for the account while its change is pending, and confirms it.
    assert h.send(browser, "status").result["pending_email"] == "new@example.org"
    reply = h.send(browser, "confirm_email", {"code": h.last_code("new@example.org")})
    assert reply.result == {"email": "new@example.org"}
    assert h.send(browser, "request_deletion").ok
    assert h.send(browser, "delete_account", {"code": h.last_code("new@example.org")}).ok
    assert h.count("users") == 0


def test_a_key_with_an_unfinished_login_or_a_decoy_is_no_account(h):
    register(h)
    browser = new_client(3)
    assert h.send(browser, "request_login", {"email": "ana@example.org"}).ok
    assert h.send(browser, "status").code == "unknown_account"
    assert h.send(new_client(4), "status").code == "unknown_account"


def test_a_locked_login_session_does_not_authorise(h):
    register(h)
    browser = new_client(5)
    assert h.send(browser, "request_login", {"email": "ana@example.org"}).ok
    for _ in range(ACCOUNT_RULES.max_code_attempts):
        h.send(browser, "verify_code", {"code": "000000"})
    assert h.send(browser, "status").code == "unknown_account"


def test_a_seal_lets_any_fresh_key_carry_an_account_method(h):
    _, account = register(h)
    reply = sealed(h, new_client(6), account, "update_backup", {"backup": NEW_BACKUP})
    assert reply.ok and h.count("users", "bkp = ?", NEW_BACKUP) == 1
    assert sealed(h, new_client(7), account, "status").result["email"] == "ana@example.org"
    # An email change asked under seal is confirmed under seal from the same key.
    carrier = new_client(8)
    assert sealed(h, carrier, account, "change_email", {"email": "moved@example.org"}).ok
    code = h.last_code("moved@example.org")
    assert sealed(h, carrier, account, "confirm_email", {"code": code}).result == {
        "email": "moved@example.org"
    }
    # The requests table holds the carriers' keys only.
    assert h.count("requests", "pubkey = ?", account.pubkey_hex) == 0


def test_a_seal_of_a_key_with_no_account_is_unknown_account(h):
    register(h)
    assert sealed(h, new_client(9), SecretKey.generate(), "status").code == "unknown_account"


def test_the_account_key_itself_still_works(h):
    _, account = register(h)
    assert h.send(Encryptor(account), "status").result["email"] == "ana@example.org"


def test_an_address_only_pending_as_a_change_belongs_to_no_account(h):
    browser, _ = register(h)
    assert h.send(browser, "change_email", {"email": "wanted@example.org"}).ok
    assert h.send(new_client(10), "request_login", {"email": "wanted@example.org"}).code == "unknown_email"
    owner = new_client(11)
    assert h.send(owner, "request_account", {"email": "wanted@example.org"}).ok
    assert h.send(owner, "verify_code", {"code": h.last_code("wanted@example.org")}).ok
    code = h.conn.execute("SELECT count(*) FROM mail WHERE kind = 'email_change_cancelled'").fetchone()[0]
    assert code == 1  # the requester was told their change is cancelled
    assert h.send(browser, "status").result["pending_email"] is None
    assert h.send(browser, "confirm_email", {"code": "123456"}).code == "no_session"


def test_verify_code_after_a_finished_login_is_no_session(h):
    register(h)
    browser = new_client(12)
    assert h.send(browser, "request_login", {"email": "ana@example.org"}).ok
    code = h.last_code("ana@example.org")
    assert h.send(browser, "verify_code", {"code": code}).ok
    assert h.send(browser, "verify_code", {"code": code}).code == "no_session"
