"""Every mail kind renders completely, consistently in text and HTML, and safely."""

from __future__ import annotations

import re

import pytest

from dvm.accounts.decision import MailKind
from dvm.errors import ConfigError
from dvm.mailer.kinds import SPECS
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


def write(directory, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")


def welcome_pair(directory, subject: str = "Hi from $email", body: str = "Custom body.") -> None:
    write(directory, "welcome.txt", f"Subject: {subject}\n\n{body}\n")
    write(directory, "welcome.html", f"<p>{body}</p>\n")


def test_operator_directory_overrides_a_template(tmp_path):
    welcome_pair(tmp_path)
    rendered = Templates(TemplateContext("x"), tmp_path).render(
        MailKind.WELCOME, "ana@example.org", {"at": NOW}, NOW
    )
    assert rendered.subject == "Hi from ana@example.org" and rendered.text == "Custom body.\n"
    assert "<p>Custom body.</p>" in rendered.html


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"welcome.txt": "Subject: x\n\n$nonexistent\n", "welcome.html": "x"}, "never given"),
        ({"welcome.txt": "Subject: x\n\n$code\n", "welcome.html": "x"}, "welcome mail is never given"),
        ({"welcome.txt": "no subject\n", "welcome.html": "x"}, "must start with 'Subject: '"),
        ({"welcome.txt": "Subject: x\n\nbody\n"}, "has no welcome.html"),
        ({"signup_code.txt": "Subject: x\n\nno code\n", "signup_code.html": "$code"}, "must show $code"),
        ({"signup_code.txt": "Subject: x\n\n$code\n", "signup_code.html": "<p>lost</p>"}, "must show $code"),
        ({"email_changed.txt": "Subject: x\n\nmoved\n", "email_changed.html": "$new_email"}, "$new_email"),
        ({"welcom.txt": "Subject: x\n\ny\n"}, "welcom.txt: unknown file name"),
        ({"signup_code.txt~": "backup"}, "unknown file name"),
        ({"welcome.txt": "Subject: $5 off\n\ny\n", "welcome.html": "x"}, "invalid placeholder"),
    ],
)
def test_a_template_that_would_fail_later_is_refused_when_loaded(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Templates(TemplateContext("x"), tmp_path)


def test_every_kind_has_a_row_and_every_builtin_template_uses_only_what_its_kind_is_given():
    assert set(SPECS) == set(MailKind)
    templates = Templates(TemplateContext("https://x/{code}", "https://sigit.example/help"))
    assert templates.languages == ["de"]
    for lang in (None, "de"):
        for spec in SPECS.values():
            rendered = templates.render(spec.kind, "ana@example.org", dict(spec.sample), NOW, lang)
            for part in (rendered.subject, rendered.text, rendered.html):
                assert "$" not in part, (lang, spec.kind)


def test_a_language_falls_back_from_region_to_language_to_the_default(tmp_path):
    welcome_pair(tmp_path / "pt", "Bem-vindo", "Olá")
    welcome_pair(tmp_path / "pt-BR", "Bem-vindo ao SIGit", "Oi")
    templates = Templates(TemplateContext("x"), tmp_path)
    assert templates.languages == ["de", "pt", "pt-br"]
    subject = {
        lang: templates.render(MailKind.WELCOME, "a@b.org", {"at": NOW}, NOW, lang).subject
        for lang in ("pt-BR", "PT-br", "pt", "pt-PT", "de-AT", "fr", None, "../etc")
    }
    assert subject == {
        "pt-BR": "Bem-vindo ao SIGit",
        "PT-br": "Bem-vindo ao SIGit",  # tags are matched without regard to case
        "pt": "Bem-vindo",
        "pt-PT": "Bem-vindo",
        "de-AT": "Willkommen bei SIGit",  # the built-in German
        "fr": "Welcome to SIGit",
        None: "Welcome to SIGit",
        "../etc": "Welcome to SIGit",  # never a path
    }
    # A kind the language does not have comes from the next one down, kind by kind.
    login = templates.render(MailKind.LOGIN_NOTICE, "a@b.org", {"at": NOW}, NOW, "pt-BR")
    assert login.subject == "New login to your SIGit account"


def test_the_support_line_is_a_template_per_language_too():
    templates = Templates(TemplateContext("x", "https://sigit.example/help"))
    english = templates.render(MailKind.WELCOME, "a@b.org", {"at": NOW}, NOW)
    german = templates.render(MailKind.WELCOME, "a@b.org", {"at": NOW}, NOW, "de")
    assert "Need help? https://sigit.example/help" in english.text
    assert "Fragen? https://sigit.example/help" in german.text
    assert '<a href="https://sigit.example/help">' in german.html
    bare = Templates(TemplateContext("x")).render(MailKind.WELCOME, "a@b.org", {"at": NOW}, NOW, "de")
    assert "Fragen" not in bare.text and "help" not in bare.html


def test_a_directory_that_is_no_language_tag_is_refused(tmp_path):
    welcome_pair(tmp_path / "german_formal")
    with pytest.raises(ConfigError, match="not a language tag"):
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


@pytest.mark.parametrize("lang", [None, "de"])
@pytest.mark.parametrize(
    "kind", [MailKind.SIGNUP_CODE, MailKind.LOGIN_CODE, MailKind.EMAIL_CHANGE_CODE, MailKind.DELETION_CODE]
)
def test_a_long_code_is_grouped_explained_and_its_link_carries_the_digits_only(kind, lang):
    long = PARAMS | {"code": "1234567890123456"}
    rendered = TEMPLATES.render(kind, "ana@example.org", long, NOW, lang)
    note = {None: "longer than usual", "de": "länger als sonst"}[lang]
    for part in (rendered.text, rendered.html):
        assert "1234 5678 9012 3456" in part and note in part
        if kind is not MailKind.DELETION_CODE:  # the deletion mail has no link
            assert "https://sigit.example/v?code=1234567890123456" in part
    short = TEMPLATES.render(kind, "ana@example.org", PARAMS, NOW, lang)
    assert note not in short.text and note not in short.html
