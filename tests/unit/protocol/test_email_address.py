"""Only mailable addresses are accepted, and mail caps count by the mailbox an address reaches."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dvm.errors import InvalidEmail, RequestError
from dvm.protocol.email_address import canonical_mailbox, normalise_email
from dvm.protocol.methods import decode_request

INVISIBLE = {
    "U+009B (CSI, Cc)": "\u009b",
    "U+0085 (NEL, Cc)": "\u0085",
    "U+202E (right-to-left override, Cf)": "\u202e",
    "U+200B (zero-width space, Cf)": "\u200b",
    "U+200C (zero-width non-joiner, Cf)": "\u200c",
    "U+200D (zero-width joiner, Cf)": "\u200d",
    "U+2060 (word joiner, Cf)": "\u2060",
    "U+FEFF (zero-width no-break space, Cf)": "\ufeff",
    "U+00AD (soft hyphen, Cf)": "\u00ad",
    "U+2028 (line separator, Zl)": "\u2028",
    "U+2029 (paragraph separator, Zp)": "\u2029",
    "U+00A0 (no-break space, Zs)": "\u00a0",
    "U+E000 (private use, Co)": "\ue000",
}


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
@pytest.mark.parametrize("where", ["ana{}@example.org", "a{}na@example.org", "ana@exa{}mple.org"])
def test_invisible_and_control_characters_are_refused_as_invalid_email(char, where):
    address = where.format(char)
    with pytest.raises(InvalidEmail):
        normalise_email(address)
    body = orjson.dumps({"method": "request_account", "params": {"email": address}}).decode()
    with pytest.raises(RequestError) as info:
        decode_request(body)
    assert info.value.code == "invalid_email"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("ａｎａ@ｅｘａｍｐｌｅ.ｏｒｇ", "ana@example.org"),  # full-width letters
        ("ana＠example.org", "ana@example.org"),  # a full-width @ is an @
        ("Ａｎａ.Ｂ+ｔａｇ@Example.org", "ana.b+tag@example.org"),
        ("ｊｏｓé@例え.ｊｐ", "josé@xn--r8jz45g.jp"),  # NFKC keeps é: an internationalised address
        ("jose\u0301@example.org", "josé@example.org"),  # decomposed é composed
    ],
)
def test_compatibility_forms_are_normalised_with_nfkc(raw, normal):
    assert normalise_email(raw) == normal


addresses = st.builds(
    "{}@{}".format,
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
    st.sampled_from(["example.org", "EXAMPLE.org", "ｅｘａｍｐｌｅ.org", "例え.jp", "gmail.com"]),
)


@given(addresses)
def test_normalising_is_idempotent_and_never_keeps_an_invisible_character(raw):
    try:
        normal = normalise_email(raw)
    except InvalidEmail:
        return
    assert normalise_email(normal) == normal
    assert normal.isprintable() and " " not in normal


def test_canonical_mailbox_folds_case_tags_width_and_invisible_characters():
    key = canonical_mailbox("victim@example.org")
    assert key == "victim@example.org"
    for variant in (
        "Victim+1@Example.ORG",
        "victim+2@example.org",
        "ｖｉｃｔｉｍ@ｅｘａｍｐｌｅ.ｏｒｇ",
        "vic\u200btim@example.org",
        "vic\u200dtim+x\u2060y@example.org",
        "VICTIM@example.org.",
    ):
        assert canonical_mailbox(variant) == key, variant
    assert canonical_mailbox("Straße@example.org") == canonical_mailbox("STRASSE@example.org")
    assert canonical_mailbox("josé@例え.jp") == canonical_mailbox("JOSÉ+x@xn--r8jz45g.jp")


def test_canonical_mailbox_folds_dots_only_at_gmail():
    assert (
        canonical_mailbox("a.n.a+x@gmail.com") == canonical_mailbox("ana@googlemail.com") == "ana@gmail.com"
    )
    assert canonical_mailbox("a.na@example.org") != canonical_mailbox("ana@example.org")
    assert canonical_mailbox("ana-x@example.org") != canonical_mailbox("ana@example.org")  # only +tags


@given(st.text(max_size=40))
def test_canonical_mailbox_is_idempotent_on_any_string(text):
    key = canonical_mailbox(text)
    assert canonical_mailbox(key) == key


local_parts = st.text(st.characters(codec="utf-8", exclude_characters="+@"), min_size=1, max_size=20)
tags = st.text(st.characters(codec="utf-8", exclude_characters="@"), max_size=10)
domains = st.sampled_from(["d.example", "example.org", "例え.jp", "gmail.com"])


@given(local_parts, tags, tags, domains)
def test_tagged_and_case_changed_addresses_share_a_key(local, x, y, domain):
    assert canonical_mailbox(f"{local}+{x}@{domain}") == canonical_mailbox(
        f"{local.upper()}+{y}@{domain.upper()}"
    )


@given(addresses)
def test_the_key_of_an_accepted_address_is_the_key_of_its_normal_form(raw):
    try:
        normal = normalise_email(raw)
    except InvalidEmail:
        return
    assert canonical_mailbox(normal) == canonical_mailbox(raw.strip())
