"""Every kind of mail: why it is sent, what its template is given, what it must show.

The state machine (:mod:`dvm.accounts`) builds each mail's values; this table is the contract a
template is checked against (``check-config``, the daemon's start): a placeholder a kind is never
given would dead-letter every such mail, and a code mail without ``$code`` would reach users with
no code in it. docs/operations.md ("Mail templates") lists the same table; a test keeps the two
equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvm.accounts.decision import MailKind

COMMON = frozenset({"email", "help"})
"""Given to every kind: the recipient's address, and the support line (empty without
``mail.support_url``)."""
CODE_VALUES = frozenset({"code", "link", "expires_at", "expires_in_min", "subject_code", "code_note"})
"""Given to every code mail. ``$code_note`` is empty for a six-digit code; for a sixteen-digit one
(the address was being guessed at) it is the ``long_code`` template's text, which says why."""
SAMPLE_AT = 1_800_000_000
SAMPLE_CODE = "123456"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One kind of mail: when it goes out, the placeholders its templates may use
    (``given``) and must use (``required``), and values to render a sample with."""

    kind: MailKind
    when: str
    given: frozenset[str]
    required: frozenset[str]
    sample: tuple[tuple[str, str | int], ...]


def _code(kind: MailKind, when: str) -> KindSpec:
    sample = (("code", SAMPLE_CODE), ("expires_at", SAMPLE_AT + 900))
    return KindSpec(kind, when, COMMON | CODE_VALUES, frozenset({"code"}), sample)


def _notice(kind: MailKind, when: str, *extra: str, required: tuple[str, ...] = ()) -> KindSpec:
    values: dict[str, str | int] = {"new_email": "new@example.org", "at": SAMPLE_AT}
    sample = tuple((name, values[name]) for name in (*extra, "at"))
    return KindSpec(kind, when, COMMON | {"at", *extra}, frozenset(required), sample)


SPECS: dict[MailKind, KindSpec] = {
    spec.kind: spec
    for spec in (
        _code(MailKind.SIGNUP_CODE, "a signup (request_account, register) or resend_code: the code"),
        _code(MailKind.LOGIN_CODE, "request_login from a new device: the code"),
        _code(MailKind.EMAIL_CHANGE_CODE, "change_email, to the new address: the code that confirms it"),
        _code(MailKind.DELETION_CODE, "request_deletion: the code that confirms it"),
        _notice(MailKind.WELCOME, "the account was activated"),
        _notice(MailKind.LOGIN_NOTICE, "a login on a new device (unless the owner turned these off)"),
        _notice(
            MailKind.EMAIL_CHANGE_NOTICE,
            "change_email, to the old address: a change to $new_email was asked for",
            "new_email",
            required=("new_email",),
        ),
        _notice(
            MailKind.EMAIL_CHANGED,
            "to the old address: the account moved to $new_email (confirmed, or by an admin)",
            "new_email",
            required=("new_email",),
        ),
        _notice(
            MailKind.EMAIL_CHANGE_CANCELLED,
            "the owner of $new_email proved it, so this account's pending change to it ended",
            "new_email",
        ),
        _notice(
            MailKind.BACKUP_CHANGED, "the key backup was replaced (update_backup, or an admin's restore)"
        ),
        _notice(MailKind.ACCOUNT_DELETED, "the account was deleted (by its owner, or an admin)"),
        _notice(
            MailKind.CODE_GUESSING,
            "10 wrong codes in 7 days for this address: its codes are sixteen digits from now on (told once)",
        ),
    )
}
assert set(SPECS) == set(MailKind), "every kind of mail needs its row"

HELP_VALUES = frozenset({"support_url"})
LONG_CODE_VALUES = frozenset[str]()
"""What ``long_code.txt`` / ``long_code.html`` (``$code_note`` of a sixteen-digit code) may use."""
"""What ``help.txt`` / ``help.html`` (the support line, ``$help`` in every kind) may use."""
