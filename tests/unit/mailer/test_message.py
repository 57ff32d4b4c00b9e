"""The fast message build writes exactly the bytes of the plain standard-library build."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dvm.accounts.decision import MailKind
from dvm.config import MailSettings, Settings, validate
from dvm.mailer.message import Sender, build_message
from dvm.mailer.templates import Rendered, TemplateContext, Templates
from tests.support.stdlib_mail import reference

NOW = 1_800_000_000
PARAMS = {"code": "042917", "expires_at": NOW + 900, "at": NOW, "new_email": "new@example.org"}
TEMPLATES = Templates(TemplateContext("https://sigit.example/v?code={code}", "https://sigit.example/help"))
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


@pytest.mark.parametrize("kind", list(MailKind))
@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("recipient", RECIPIENTS)
def test_every_kind_is_byte_identical_to_the_plain_stdlib_build(kind, sender, recipient):
    rendered = TEMPLATES.render(kind, recipient, PARAMS, NOW)
    fast = build_message(rendered, recipient, "0f" * 16, sender, NOW).data
    assert fast == reference(rendered, recipient, "0f" * 16, sender, NOW)
    # RFC 5322: at most 998, and 78 where a value can be folded; a single long token (an operator's
    # non-ASCII display name, one encoded word, or a Message-ID on a long domain) cannot be.
    limit = 78 if sender in SENDERS[:2] else 998
    assert all(len(line) <= limit for line in fast.split(b"\r\n"))


@given(name=st.text(max_size=90), local=st.from_regex(r"[a-z0-9.+_-]{1,70}", fullmatch=True))
def test_any_display_name_and_ascii_recipient_match_stdlib(name, local):
    # A name with a control or line-breaking character is refused by the settings check (the
    # standard library itself cannot build its header: "\x1e0:" reads as an embedded header).
    assume(not validate(Settings(mail=MailSettings(from_name=name))))
    recipient = f"{local}@example.org"
    rendered = TEMPLATES.render(MailKind.SIGNUP_CODE, recipient, PARAMS, NOW)
    sender = Sender("sigit@example.org", name)
    fast = build_message(rendered, recipient, "ab" * 16, sender, NOW).data
    assert fast == reference(rendered, recipient, "ab" * 16, sender, NOW)


@given(subject=st.text(min_size=1, max_size=120), text=st.text(max_size=3000), html=st.text(max_size=3000))
def test_any_subject_and_bodies_match_stdlib(subject, text, html):
    rendered = Rendered(subject.replace("\n", " ").replace("\r", " "), text, html)
    fast = build_message(rendered, "ana@example.org", "cd" * 16, SENDERS[0], NOW).data
    assert fast == reference(rendered, "ana@example.org", "cd" * 16, SENDERS[0], NOW)


@pytest.mark.parametrize("char", [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028"])
def test_control_and_line_breaking_characters_in_headers_match_stdlib(char):
    """The standard library breaks header lines at more than CR and LF (form feed, \\x1c-\\x1e...)."""
    rendered = Rendered(f"S{char}T", "t", "h")
    sender = Sender("sigit@example.org", f"A{char}B")
    fast = build_message(rendered, "ana@example.org", "ef" * 16, sender, NOW).data
    assert fast == reference(rendered, "ana@example.org", "ef" * 16, sender, NOW)
