"""A message built the plain standard-library way: the reference that ``dvm.mailer.message`` must
match byte for byte (tests) and the cost it is compared with (``scripts/bench mail``)."""

from __future__ import annotations

import email.policy
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate

from dvm.mailer.message import Sender, mime_boundary
from dvm.mailer.templates import Rendered

STDLIB = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)


def reference(rendered: Rendered, recipient: str, token: str, sender: Sender, now: int) -> bytes:
    """The message built the plain standard-library way: MIMEText parts, stock compat32."""
    msg = MIMEMultipart("alternative", boundary=mime_boundary(token))
    msg["From"] = formataddr((sender.name, sender.address), charset="utf-8")
    msg["To"] = recipient
    if sender.reply_to:
        msg["Reply-To"] = sender.reply_to
    subject = rendered.subject
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    msg["Date"] = formatdate(now, usegmt=True)
    msg["Message-ID"] = f"<{token}@{sender.domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.attach(MIMEText(rendered.text, "plain", "utf-8"))
    msg.attach(MIMEText(rendered.html, "html", "utf-8"))
    return msg.as_bytes(policy=STDLIB)
