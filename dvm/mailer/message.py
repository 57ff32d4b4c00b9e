"""Build the MIME message for one outbox row: headers right, text and HTML parts, UTF-8."""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from dvm.mailer.templates import Rendered


@dataclass(frozen=True, slots=True)
class Sender:
    """Who the mail is from."""

    address: str
    name: str = ""
    reply_to: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2] or "localhost"


def message_id(token: str, sender: Sender) -> str:
    """A stable Message-ID per outbox row: a resend after a crash carries the same one."""
    return f"<{token}@{sender.domain}>"


def build_message(rendered: Rendered, recipient: str, token: str, sender: Sender, now: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = Address(display_name=sender.name, addr_spec=sender.address)
    msg["To"] = recipient
    if sender.reply_to:
        msg["Reply-To"] = sender.reply_to
    msg["Subject"] = rendered.subject
    msg["Date"] = formatdate(now, usegmt=True)
    msg["Message-ID"] = message_id(token, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered.text, charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return msg
