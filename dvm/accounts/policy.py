"""Operators' policy over requests: suspended accounts and blocked addresses, checked first.

An admin may suspend an account (``sigit-dvm users suspend``) or block an address or a whole
domain (``sigit-dvm blocks add``). Both are checked before any rule of the state machine, so a
refused request writes nothing and mails nothing:

* every method of a suspended account answers ``account_suspended``: the account is the one the
  request is about (the address of ``request_account``/``register``/``request_login``, the session's user for
  ``verify_code``/``activate``/``resend_code``, the signing account for account-key methods);
  in private mode the machine answers the two address methods as for an unknown address (a
  decoy session), so a suspension tells a stranger nothing;
* an address on the block list, or one under a blocked domain, answers ``email_blocked`` at signup,
  login, email change and its confirmation.

Pure: the store loads what :class:`~dvm.accounts.decision.View` needs (``email_blocked``, the
users' ``suspended_at``).
"""

from __future__ import annotations

from dvm.accounts.decision import View
from dvm.errors import AccountSuspended, EmailBlocked, RequestError
from dvm.protocol.methods import ChangeEmail, ConfirmEmail, Register, Request, RequestAccount, RequestLogin


def check_policy(request: Request, view: View) -> RequestError | None:
    """Why suspension or a block refuses ``request``, or None to decide it by the rules."""
    if isinstance(request, RequestAccount | Register | RequestLogin):
        if view.email_blocked:
            return EmailBlocked()
        owner = view.email_user
        if owner is not None and owner.suspended_at is not None:
            return AccountSuspended()
        return None
    for user in (view.session_user, view.account_user):
        if user is not None and user.suspended_at is not None:
            return AccountSuspended()
    if isinstance(request, ChangeEmail | ConfirmEmail) and view.email_blocked:
        return EmailBlocked()
    return None
