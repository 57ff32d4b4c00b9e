"""Email normalisation and validation: trim, lower-case, IDNA (punycode) domain, sizes bounded.

The normalised form is the identity of an account: ``" Ana@Exämple.ORG "`` and
``"ana@xn--exmple-cua.org"`` are one account. We do not try to parse every RFC 5322 corner
(quoted local parts, comments): SIGit's users type ordinary addresses, and anything odd is refused
with ``invalid_email`` rather than guessed at.
"""

from __future__ import annotations

import re
import unicodedata

from dvm.errors import InvalidEmail

MAX_EMAIL_CHARS = 254  # RFC 5321 path limit less the angle brackets
MAX_LOCAL_CHARS = 64
_LOCAL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f<>()\[\]\\,;:\"@]")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})  # controls, zero-width and bidi marks
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_email(raw: object, max_chars: int = MAX_EMAIL_CHARS) -> str:
    """Return the normalised address or raise :class:`InvalidEmail`."""
    if not isinstance(raw, str):
        raise InvalidEmail("email must be a string")
    value = raw.strip()
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in value):
        raise InvalidEmail("email must not contain control, format or separator characters")
    value = unicodedata.normalize("NFKC", value)
    if not value or len(value) > max_chars:
        raise InvalidEmail(f"email must be 1..{max_chars} characters")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmail("email must look like name@example.org")
    if len(local) > MAX_LOCAL_CHARS or _LOCAL_FORBIDDEN.search(local):
        raise InvalidEmail("the part before @ is not valid")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmail("the part before @ has misplaced dots")
    domain = domain.rstrip(".")
    if domain.isascii():  # the common case: the IDNA codec would only lower-case it (and is slow)
        ascii_domain = domain.lower()
    else:
        try:
            ascii_domain = domain.encode("idna").decode("ascii").lower()
        except (UnicodeError, ValueError) as exc:
            raise InvalidEmail("the domain is not valid") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise InvalidEmail("the domain is not valid")
    email = f"{local.lower()}@{ascii_domain}"
    if len(email) > max_chars:
        raise InvalidEmail(f"email must be at most {max_chars} characters")
    return email


def mailbox(email: str) -> str:
    """The mailbox an address reaches, for counting: NFKC, case-folded, ``+tag`` and zero-width
    characters removed. ``Ana+1@x.org``, ``ａｎａ@x.org`` and ``an\u200ba@x.org`` are one mailbox.
    Dots are kept: only some providers ignore them, and counting two mailboxes as one only
    over-counts."""
    text = unicodedata.normalize("NFKC", email)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf").casefold()
    local, _, domain = text.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def domain_of(mailbox_key: str) -> str:
    return mailbox_key.rpartition("@")[2]
