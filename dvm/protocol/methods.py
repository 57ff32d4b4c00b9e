"""Methods and their typed requests, decoded strictly from the decrypted request JSON.

A request's plaintext is ``{"method": <name>, "params": {...}}``. Unknown methods, unknown or
missing fields, wrong types and oversized values are all ``bad_request`` (an address that is a
string but not a valid one, or longer than the limit, is ``invalid_email``);
nothing reaches the state machine unless it is fully valid.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from dvm.errors import BadRequest, EncodingError, InvalidKey
from dvm.nostr import bech32
from dvm.nostr.encoding import decode_base64, is_digits
from dvm.nostr.keys import parse_pubkey_hex
from dvm.protocol.email_address import MAX_EMAIL_CHARS, normalise_email

NCRYPTSEC_PREFIX = "ncryptsec1"


class Method(enum.StrEnum):
    """Every method a client can call, by its wire name."""

    REQUEST_ACCOUNT = "request_account"
    VERIFY_CODE = "verify_code"
    ACTIVATE = "activate"
    REQUEST_LOGIN = "request_login"
    RESEND_CODE = "resend_code"
    STATUS = "status"
    CHANGE_EMAIL = "change_email"
    CONFIRM_EMAIL = "confirm_email"
    UPDATE_BACKUP = "update_backup"
    SET_NOTIFICATIONS = "set_notifications"
    REQUEST_DELETION = "request_deletion"
    DELETE_ACCOUNT = "delete_account"
    REGISTER = "register"
    REVOKE_SESSIONS = "revoke_sessions"


ACCOUNT_KEY_METHODS = frozenset(
    {
        Method.STATUS,
        Method.CHANGE_EMAIL,
        Method.CONFIRM_EMAIL,
        Method.UPDATE_BACKUP,
        Method.SET_NOTIFICATIONS,
        Method.REQUEST_DELETION,
        Method.DELETE_ACCOUNT,
        Method.REVOKE_SESSIONS,
    }
)
"""Methods that act for an activated account: signed by its key (sealed), or from a session that
proved its address."""

KEY_NAMING_METHODS = frozenset({Method.REGISTER, Method.ACTIVATE})
"""Methods that name an account key (``params.pubkey``): the request must be signed by it."""

SEALABLE_METHODS = ACCOUNT_KEY_METHODS | KEY_NAMING_METHODS
"""Methods whose content may be a seal signed by the account key."""

MAX_LANG_CHARS = 35
_LANG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Size bounds on request fields."""

    max_plaintext_bytes: int = 16 * 1024
    max_email_chars: int = MAX_EMAIL_CHARS
    max_backup_bytes: int = 4096


@dataclass(frozen=True, slots=True)
class RequestAccount:
    email: str
    method = Method.REQUEST_ACCOUNT


@dataclass(frozen=True, slots=True)
class Register:
    """SIGit's one-event signup: the account key and its backup arrive with the address, and
    the emailed code activates the account (no server entropy)."""

    pubkey: str
    email: str
    backup: str
    method = Method.REGISTER


@dataclass(frozen=True, slots=True)
class VerifyCode:
    code: str
    method = Method.VERIFY_CODE


@dataclass(frozen=True, slots=True)
class Activate:
    pubkey: str
    backup: str
    method = Method.ACTIVATE


@dataclass(frozen=True, slots=True)
class RequestLogin:
    email: str
    method = Method.REQUEST_LOGIN


@dataclass(frozen=True, slots=True)
class ResendCode:
    method = Method.RESEND_CODE


@dataclass(frozen=True, slots=True)
class Status:
    method = Method.STATUS


@dataclass(frozen=True, slots=True)
class ChangeEmail:
    email: str
    method = Method.CHANGE_EMAIL


@dataclass(frozen=True, slots=True)
class ConfirmEmail:
    code: str
    method = Method.CONFIRM_EMAIL


@dataclass(frozen=True, slots=True)
class UpdateBackup:
    backup: str
    method = Method.UPDATE_BACKUP


@dataclass(frozen=True, slots=True)
class SetNotifications:
    login_notice: bool
    method = Method.SET_NOTIFICATIONS


@dataclass(frozen=True, slots=True)
class RequestDeletion:
    method = Method.REQUEST_DELETION


@dataclass(frozen=True, slots=True)
class DeleteAccount:
    code: str
    method = Method.DELETE_ACCOUNT


@dataclass(frozen=True, slots=True)
class RevokeSessions:
    """Every other session of the account loses its right to act for it."""

    method = Method.REVOKE_SESSIONS


Request = (
    RequestAccount
    | VerifyCode
    | Activate
    | RequestLogin
    | ResendCode
    | Status
    | ChangeEmail
    | ConfirmEmail
    | UpdateBackup
    | SetNotifications
    | RequestDeletion
    | DeleteAccount
    | Register
    | RevokeSessions
)

_PARAMS: dict[Method, frozenset[str]] = {
    Method.REQUEST_ACCOUNT: frozenset({"email"}),
    Method.VERIFY_CODE: frozenset({"code"}),
    Method.ACTIVATE: frozenset({"pubkey", "backup"}),
    Method.REQUEST_LOGIN: frozenset({"email"}),
    Method.RESEND_CODE: frozenset(),
    Method.STATUS: frozenset(),
    Method.CHANGE_EMAIL: frozenset({"email"}),
    Method.CONFIRM_EMAIL: frozenset({"code"}),
    Method.UPDATE_BACKUP: frozenset({"backup"}),
    Method.SET_NOTIFICATIONS: frozenset({"login_notice"}),
    Method.REQUEST_DELETION: frozenset(),
    Method.DELETE_ACCOUNT: frozenset({"code"}),
    Method.REGISTER: frozenset({"pubkey", "email", "backup"}),
    Method.REVOKE_SESSIONS: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded request and what travels beside its parameters: the user's language."""

    request: Request
    lang: str = ""


def decode_request(plaintext: str, limits: RequestLimits = RequestLimits()) -> Request:
    """Parse and validate decrypted request JSON; raise a ``RequestError`` on any defect."""
    return decode_envelope(plaintext, limits).request


def decode_envelope(plaintext: str, limits: RequestLimits = RequestLimits()) -> Envelope:
    """:func:`decode_request`, keeping the optional ``lang`` member (a BCP 47 tag)."""
    if len(plaintext.encode("utf-8")) > limits.max_plaintext_bytes:
        raise BadRequest(f"request larger than {limits.max_plaintext_bytes} bytes")
    try:
        body = json.loads(plaintext, object_pairs_hook=_object, parse_constant=_no_constant)
        orjson.dumps(body)  # refuses lone surrogates, which json.loads lets through as escapes
    except (ValueError, RecursionError, orjson.JSONEncodeError) as exc:
        raise BadRequest(f"request content is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request must be a JSON object")
    extra = body.keys() - {"method", "params", "lang"}
    if extra:
        raise BadRequest(f"unknown request field {sorted(extra)[0]!r}")
    name = body.get("method")
    if not isinstance(name, str) or name not in Method.__members__.values():
        raise BadRequest("unknown or missing method")
    method = Method(name)
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest("params must be a JSON object")
    expected = _PARAMS[method]
    if params.keys() != expected:
        unknown, missing = sorted(params.keys() - expected), sorted(expected - params.keys())
        raise BadRequest(f"{method}: unknown params {unknown[:3]}, missing params {missing}")
    return Envelope(_build(method, params, limits), _lang(body.get("lang", "")))


def _lang(value: object) -> str:
    """A BCP 47 language tag, lower-cased (``pt-BR`` -> ``pt-br``); "" when absent."""
    if value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_LANG_CHARS or not _LANG.match(value):
        raise BadRequest("lang must be a BCP 47 language tag such as 'de' or 'pt-BR'")
    return value.lower()


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: with a key twice, which value counts is a guess that
    two parsers may answer differently, so the request is refused instead."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey("a key appears twice in one object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _build(method: Method, params: dict[str, Any], limits: RequestLimits) -> Request:
    if method is Method.REQUEST_ACCOUNT:
        return RequestAccount(_email(params["email"], limits))
    if method is Method.REQUEST_LOGIN:
        return RequestLogin(_email(params["email"], limits))
    if method is Method.REGISTER:
        return Register(
            _pubkey(params["pubkey"]),
            _email(params["email"], limits),
            _backup(params["backup"], limits.max_backup_bytes),
        )
    if method is Method.VERIFY_CODE:
        return VerifyCode(_code(params["code"]))
    if method is Method.ACTIVATE:
        return Activate(_pubkey(params["pubkey"]), _backup(params["backup"], limits.max_backup_bytes))
    if method is Method.CHANGE_EMAIL:
        return ChangeEmail(_email(params["email"], limits))
    if method is Method.CONFIRM_EMAIL:
        return ConfirmEmail(_code(params["code"]))
    if method is Method.UPDATE_BACKUP:
        return UpdateBackup(_backup(params["backup"], limits.max_backup_bytes))
    if method is Method.SET_NOTIFICATIONS:
        if not isinstance(params["login_notice"], bool):
            raise BadRequest("login_notice must be true or false")
        return SetNotifications(params["login_notice"])
    if method is Method.DELETE_ACCOUNT:
        return DeleteAccount(_code(params["code"]))
    simple: dict[Method, Request] = {
        Method.RESEND_CODE: ResendCode(),
        Method.STATUS: Status(),
        Method.REQUEST_DELETION: RequestDeletion(),
        Method.REVOKE_SESSIONS: RevokeSessions(),
    }
    return simple[method]


def _email(value: object, limits: RequestLimits) -> str:
    """A wrong type is the client's bug (``bad_request``); a string that is no valid address,
    or too long, is the user's to correct (``invalid_email``)."""
    if not isinstance(value, str):
        raise BadRequest("email must be a string")
    return normalise_email(value, limits.max_email_chars)


def _code(value: object) -> str:
    """Six digits, or sixteen (a long code, mailed while a mailbox is being guessed at)."""
    if not isinstance(value, str) or len(value) not in (6, 16) or not is_digits(value):
        raise BadRequest("code must be a string of six (or sixteen) digits")
    return value


def _pubkey(value: object) -> str:
    try:
        return parse_pubkey_hex(value, "pubkey").hex()
    except InvalidKey as exc:
        raise BadRequest(f"pubkey: {exc}") from exc


def _backup(value: object, max_bytes: int) -> str:
    """A backup is opaque to us: a NIP-49 ncryptsec (shape checked) or bounded base64."""
    if not isinstance(value, str) or not value:
        raise BadRequest("backup must be a non-empty string")
    if len(value) > max_bytes or len(value.encode("utf-8")) > max_bytes:
        raise BadRequest(f"backup larger than {max_bytes} bytes")
    try:
        if value.startswith(NCRYPTSEC_PREFIX):
            bech32.check_ncryptsec(value)
        else:
            decode_base64(value, "backup")
    except EncodingError as exc:
        raise BadRequest(f"backup: {exc}") from exc
    return value
