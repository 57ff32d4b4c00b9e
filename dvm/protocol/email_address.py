"""Email normalisation and validation (the identity of an account), and the canonical mailbox
(what the mail caps count by).

The normalised form is the identity of an account: trimmed, NFKC (full-width letters and other
compatibility forms become their plain letters), lower-cased, IDNA (punycode) domain, sizes
bounded. ``" Ana@Exämple.ORG "``, ``"ａｎａ@exämple.org"`` and ``"ana@xn--exmple-cua.org"`` are one
account. Only addresses we can mail are accepted: any control, format, separator, surrogate,
private-use or unassigned character (Unicode categories C* and Z*: U+009B, U+202E, zero-width
spaces and joiners, U+2028...) is refused rather than stripped, since the user cannot see it and
no mail server takes it. A non-ASCII local part is kept (it needs a server that offers SMTPUTF8).
We do not try to parse every RFC 5322 corner (quoted local parts, comments): SIGit's users type
ordinary addresses, and anything odd is refused with ``invalid_email`` rather than guessed at.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata

from dvm.errors import InvalidEmail

MAX_EMAIL_CHARS = 254  # RFC 5321 path limit less the angle brackets
MAX_LOCAL_CHARS = 64
_LOCAL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f<>()\[\]\\,;:\"@]")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_REFUSED_CATEGORIES = ("C", "Z")  # Cc Cf Cs Co Cn, Zs Zl Zp


def _unmailable(value: str) -> bool:
    """Whether non-ASCII ``value`` holds a character no address may carry (see the module
    docstring); ASCII controls and spaces are refused by the syntax checks below."""
    return any(unicodedata.category(c)[0] in _REFUSED_CATEGORIES for c in value)


def normalise_email(raw: object, max_chars: int = MAX_EMAIL_CHARS) -> str:
    """Return the normalised address or raise :class:`InvalidEmail`."""
    if not isinstance(raw, str):
        raise InvalidEmail("email must be a string")
    value = raw.strip()
    if not value or len(value) > max_chars:
        raise InvalidEmail(f"email must be 1..{max_chars} characters")
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)  # may turn a full-width "＠" into "@": parse after
        if _unmailable(value):
            raise InvalidEmail("email contains a space, an invisible or a control character")
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


_DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
"""Domains whose provider ignores dots in the local part, and the one domain they share."""


def canonical_mailbox(email: str) -> str:
    """The key of the mailbox an address reaches, for limits that count per mailbox.

    Pure and total (any string gives a key; ``canonical_mailbox(key) == key``): NFKC with case
    folding (``ß`` -> ``ss``, full-width -> ASCII), format and other invisible characters (zero-width
    spaces and joiners, U+202E...) removed, a ``+tag`` dropped from the local part, the domain in
    IDNA form. Gmail's dots are folded too (``a.b@gmail.com``, ``ab@googlemail.com`` -> one key):
    Gmail ignores them, other providers do not, so dots elsewhere are kept, as is a ``-tag``. It
    only ever merges addresses, so a cap counted by it can be stricter than per address, never
    looser. Not an identity: mail still goes to the address as typed (normalised).
    """
    if email.isascii() and email.isprintable():  # the common case, and the same result: no Cf/Cc
        folded = email.lower()  # to drop, and NFKC with case folding is lower() on ASCII
    else:
        folded = _nfkc_casefold("".join(c for c in email if unicodedata.category(c) not in ("Cf", "Cc")))
    local, at, domain = folded.rpartition("@")
    if not at:
        local, domain = folded, ""
    local = local.partition("+")[0]
    domain = domain.strip().rstrip(".")
    if not domain.isascii():
        with contextlib.suppress(UnicodeError, ValueError):  # else not mailable: its folded form will do
            domain = domain.encode("idna").decode("ascii").lower()
    domain = _DOTLESS_DOMAINS.get(domain, domain)
    if domain == "gmail.com":
        local = local.replace(".", "")
    return f"{local}@{domain}"


def _nfkc_casefold(value: str) -> str:
    """NFKC, case folding, NFKC again until stable (case folding can undo a normalisation)."""
    previous = None
    while value != previous:
        previous, value = (
            value,
            unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold()),
        )
    return value


def domain_of(mailbox_key: str) -> str:
    """The domain part of a canonical mailbox key: the per-domain cap counts there."""
    return mailbox_key.rpartition("@")[2]
