"""Every mail kind renders completely, consistently in text and HTML, and safely."""

from __future__ import annotations

import re

import pytest

from dvm.accounts.decision import MailKind
from dvm.errors import ConfigError
from dvm.mailer.message import Sender, build_message
from dvm.mailer.templates import TemplateContext, Templates

NOW = 1_800_000_000
PARAMS = {"code": "042917", "expires_at": NOW + 900, "at": NOW, "new_email": "new@example.org"}
TEMPLATES = Templates(TemplateContext("https://sigit.example/v?code={code}", "https://sigit.example/help"))


@pytest.mark.parametrize("kind", list(MailKind))
def test_every_kind_renders_with_no_placeholder_left_and_parts_agree(kind):
    rendered = TEMPLATES.render(kind, "ana@example.org", PARAMS, NOW)
    assert rendered.subject and "\n" not in rendered.subject
    for part in (rendered.subject, rendered.text, rendered.html):
        assert not re.search(r"\$\w|\$\{|\{code\}", part), part
    for value in ("ana@example.org", "https://sigit.example/help"):
        assert value in rendered.text and value in rendered.html
    if kind in (MailKind.SIGNUP_CODE, MailKind.LOGIN_CODE):
        for part in (rendered.text, rendered.html):
            assert "042917" in part and "https://sigit.example/v?code=042917" in part
            assert "15 minutes" in part and "2027-01-15 08:15 UTC" in part
        assert "042917" not in rendered.subject


@pytest.mark.parametrize(
    "kind", [MailKind.SIGNUP_CODE, MailKind.LOGIN_CODE, MailKind.EMAIL_CHANGE_CODE, MailKind.DELETION_CODE]
)
def test_the_code_is_in_a_code_subject_only_when_the_operator_asks(kind):
    plain = TEMPLATES.render(kind, "ana@example.org", PARAMS, NOW).subject
    told = Templates(TemplateContext("https://x/{code}", code_in_subject=True)).render(
        kind, "ana@example.org", PARAMS, NOW
    )
    assert "042917" not in plain and told.subject == f"{plain}: 042917"


def test_values_are_html_escaped_in_the_html_part_only():
    rendered = TEMPLATES.render(MailKind.WELCOME, "a<b>@example.org", {"at": NOW}, NOW)
    assert "a&lt;b&gt;@example.org" in rendered.html and "a<b>@example.org" not in rendered.html
    assert "a<b>@example.org" in rendered.text


def test_operator_directory_overrides_a_template(tmp_path):
    (tmp_path / "welcome.txt").write_text("Subject: Hi from $email\n\nCustom body.\n")
    rendered = Templates(TemplateContext("x"), tmp_path).render(
        MailKind.WELCOME, "ana@example.org", {"at": NOW}, NOW
    )
    assert rendered.subject == "Hi from ana@example.org" and rendered.text == "Custom body.\n"


def test_a_template_with_an_unknown_placeholder_fails_at_render_not_silently(tmp_path):
    (tmp_path / "welcome.txt").write_text("Subject: x\n\n$nonexistent\n")
    with pytest.raises(ConfigError, match="needs a value"):
        Templates(TemplateContext("x"), tmp_path).render(MailKind.WELCOME, "a@b.org", {"at": NOW}, NOW)


def test_a_template_without_subject_line_is_refused_at_start(tmp_path):
    (tmp_path / "welcome.txt").write_text("no subject\n")
    with pytest.raises(ConfigError, match="Subject"):
        Templates(TemplateContext("x"), tmp_path)


def test_message_headers_parts_and_non_ascii_values():
    import email
    import email.policy

    rendered = TEMPLATES.render(MailKind.WELCOME, "ana@xn--exmple-cua.org", {"at": NOW}, NOW)
    out = build_message(
        rendered, "ana@xn--exmple-cua.org", "ab" * 16, Sender("dvm@sigit.example", "SIGit Zürich"), NOW
    )
    assert out.message_id == f"<{'ab' * 16}@sigit.example>" and out.recipient == "ana@xn--exmple-cua.org"
    assert out.data.isascii()  # 7-bit clean for any SMTP server
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    assert msg["Message-ID"] == out.message_id and msg["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert str(msg["From"]) == "SIGit Zürich <dvm@sigit.example>"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())
    assert "ana@xn--exmple-cua.org" in msg.get_body(("plain",)).get_content()


def test_internationalised_local_part_uses_smtputf8():
    rendered = TEMPLATES.render(MailKind.WELCOME, "jürgen@example.org", {"at": NOW}, NOW)
    out = build_message(rendered, "jürgen@example.org", "cd" * 16, Sender("dvm@sigit.example"), NOW)
    assert "To: jürgen@example.org".encode() in out.data
