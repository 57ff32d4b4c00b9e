"""The fast header path writes exactly the bytes the standard library's compat32 would."""

from __future__ import annotations

import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dvm.accounts.decision import MailKind
from dvm.mailer import message
from dvm.mailer.message import Sender, build_message
from dvm.mailer.templates import TemplateContext, Templates

NOW = 1_800_000_000
PARAMS = {"code": "042917", "expires_at": NOW + 900, "at": NOW, "new_email": "new@example.org"}
TEMPLATES = Templates(TemplateContext("https://sigit.example/v?code={code}", "https://sigit.example/help"))
STDLIB = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)
SENDERS = [
    Sender("sigit@example.org", "SIGit"),
    Sender("sigit@example.org"),
    Sender(
        "x@example.org", "Jürgen's Straße Service, with a display name long enough to fold", "r@example.org"
    ),
    Sender(
        "no-reply@a-rather-long-subdomain.of-a-long-domain.example.org", "A" * 70, "b" * 64 + "@example.org"
    ),
]
RECIPIENTS = ["ana@example.org", "a-very-long-recipient-address-that-goes-on-and-on@sub.example.org"]


def both(monkeypatch: pytest.MonkeyPatch, *args: object) -> tuple[bytes, bytes]:
    fast = build_message(*args).data  # type: ignore[arg-type]
    monkeypatch.setattr(message, "_CRLF", STDLIB)
    slow = build_message(*args).data  # type: ignore[arg-type]
    monkeypatch.undo()
    return fast, slow


@pytest.mark.parametrize("kind", list(MailKind))
@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("recipient", RECIPIENTS)
def test_every_kind_is_byte_identical_to_stdlib_compat32(monkeypatch, kind, sender, recipient):
    rendered = TEMPLATES.render(kind, recipient, PARAMS, NOW)
    fast, slow = both(monkeypatch, rendered, recipient, "0f" * 16, sender, NOW)
    assert fast == slow
    # RFC 5322: at most 998, and 78 where a value can be folded; a single long token (an operator's
    # non-ASCII display name, one encoded word, or a Message-ID on a long domain) cannot be.
    limit = 78 if sender in SENDERS[:2] else 998
    assert all(len(line) <= limit for line in fast.split(b"\r\n"))


@given(name=st.text(max_size=90), local=st.from_regex(r"[a-z0-9.+_-]{1,70}", fullmatch=True))
def test_any_display_name_and_ascii_recipient_match_stdlib(name, local):
    recipient = f"{local}@example.org"
    rendered = TEMPLATES.render(MailKind.SIGNUP_CODE, recipient, PARAMS, NOW)
    sender = Sender("sigit@example.org", name)
    with pytest.MonkeyPatch.context() as mp:
        fast, slow = both(mp, rendered, recipient, "ab" * 16, sender, NOW)
    assert fast == slow
