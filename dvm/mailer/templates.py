"""Email templates: one ``<kind>.txt`` (a ``Subject:`` line, a blank line, the body) and one
``<kind>.html`` per mail kind, in ``dvm/mailer/templates/`` or an operator's directory that
overrides them file by file. Placeholders are ``string.Template`` (``$code``); a missing value
is an error, never a blank, and values are HTML-escaped in the HTML part. ``$subject_code`` is
``": <code>"`` with ``mail.code_in_subject`` on and empty otherwise (the default: a subject shows
on lock screens and in notifications).
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from dvm.accounts.decision import MailKind
from dvm.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """Operator-level values every template may use."""

    link_template: str
    support_url: str = ""
    code_in_subject: bool = False  # lock screens show subjects: by default the code is not in it


def format_time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


class Templates:
    """Loads and renders the templates; checks at start that every kind has both parts."""

    def __init__(self, context: TemplateContext, override_dir: str | Path | None = None) -> None:
        self.context = context
        self._override = Path(override_dir) if override_dir else None
        self._cache: dict[str, string.Template] = {}
        for kind in MailKind:
            for suffix in ("txt", "html"):
                self._template(f"{kind.value}.{suffix}")
            if not self._template(f"{kind.value}.txt").template.startswith("Subject: "):
                raise ConfigError(f"template {kind.value}.txt must start with 'Subject: '")

    def _template(self, name: str) -> string.Template:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        if self._override is not None and (self._override / name).is_file():
            text = (self._override / name).read_text(encoding="utf-8")
        else:
            resource = resources.files("dvm.mailer").joinpath("templates", name)
            if not resource.is_file():
                raise ConfigError(f"no mail template {name}")
            text = resource.read_text(encoding="utf-8")
        template = string.Template(text)
        if not template.is_valid():
            raise ConfigError(f"mail template {name} has an invalid placeholder")
        self._cache[name] = template
        return template

    def values(
        self, kind: MailKind, recipient: str, params: dict[str, str | int], now: int
    ) -> dict[str, str]:
        values = {key: str(value) for key, value in params.items()}
        values["email"] = recipient
        if "code" in values:
            values["link"] = self.context.link_template.replace("{code}", values["code"])
            values["subject_code"] = f": {values['code']}" if self.context.code_in_subject else ""
        if "expires_at" in params:
            expires = int(params["expires_at"])
            values["expires_at"] = format_time(expires)
            values["expires_in_min"] = str(max(0, (expires - now) // 60))
        if "at" in params:
            values["at"] = format_time(int(params["at"]))
        values["help"] = f"\nNeed help? {self.context.support_url}\n" if self.context.support_url else ""
        return values

    def render(self, kind: MailKind, recipient: str, params: dict[str, str | int], now: int) -> Rendered:
        values = self.values(kind, recipient, params, now)
        try:
            text = self._template(f"{kind.value}.txt").substitute(values)
            escaped = {k: html.escape(v) for k, v in values.items()}
            if self.context.support_url:
                url = html.escape(self.context.support_url)
                escaped["help"] = f'<p>Need help? <a href="{url}">{url}</a></p>'
            body_html = self._template(f"{kind.value}.html").substitute(escaped)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"template {kind.value} needs a value it was not given: {exc}") from exc
        subject_line, _, body = text.partition("\n\n")
        return Rendered(subject_line.removeprefix("Subject: ").strip(), body.strip() + "\n", _page(body_html))


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        '<body style="font-family:sans-serif;font-size:16px;line-height:1.5;max-width:560px">\n'
        f"{body.strip()}\n</body></html>\n"
    )
