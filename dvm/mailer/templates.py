"""Email templates: one ``<kind>.txt`` (a ``Subject:`` line, a blank line, the body) and one
``<kind>.html`` per mail kind, and ``help.txt`` / ``help.html`` (the support line, ``$help``).

Where they come from, first found first: for a mail in language ``pt-BR``, the operator's
``<templates_dir>/pt-BR/``, the built-in ``pt-BR/``, then ``pt/`` the same way, then the
operator's ``<templates_dir>/`` and the built-in English set. A language directory holds any of
the kinds (both parts of each), falling back kind by kind. Tags are BCP 47 (``de``, ``pt-BR``),
matched without regard to case. German ships built in, as the example.

Placeholders are ``string.Template`` (``$code``). Every file is checked when templates are
loaded (the daemon's start, ``check-config``): a file name that is no kind, a placeholder its
kind is never given, a code mail without ``$code`` (:mod:`dvm.mailer.kinds` has the table), a
missing ``Subject:`` line or a part without its twin is an error, not a dead letter later. Values
are HTML-escaped in the HTML part. ``$subject_code`` is ``": <code>"`` with
``mail.code_in_subject`` on and empty otherwise (the default: a subject shows on lock screens
and in notifications).
"""

from __future__ import annotations

import html
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from dvm.accounts.decision import MailKind
from dvm.errors import ConfigError
from dvm.mailer.kinds import HELP_VALUES, LONG_CODE_VALUES, SPECS

LANG_TAG = re.compile(r"[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*")
MAX_LANG_CHARS = 35
HELP = "help"
LONG_CODE = "long_code"
EXTRAS = {HELP: HELP_VALUES, LONG_CODE: LONG_CODE_VALUES}
"""Templates that are parts of others: the support line (``$help``), the long code's note."""
PARTS = ("txt", "html")


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


def is_language_tag(tag: str) -> bool:
    """A BCP 47 tag as the protocol takes it: letters, digits and hyphens, at most 35 characters."""
    return len(tag) <= MAX_LANG_CHARS and LANG_TAG.fullmatch(tag) is not None


def fallbacks(lang: str | None) -> list[str]:
    """The language directories to look in, most specific first, ``""`` (the default) last:
    ``pt-BR`` -> ``["pt-br", "pt", ""]``."""
    if not lang or not is_language_tag(lang):
        return [""]
    parts = lang.lower().split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)] + [""]


Source = Path | Traversable


class Templates:
    """Loads every template once, checks each against its kind, and renders mail."""

    def __init__(self, context: TemplateContext, override_dir: str | Path | None = None) -> None:
        self.context = context
        self._cache: dict[tuple[str, str], string.Template] = {}  # (language, file name)
        builtin = resources.files("dvm.mailer").joinpath("templates")
        override = Path(override_dir) if override_dir else None
        # Per language ("" the default): the directories to read, the operator's first.
        self._dirs: dict[str, list[Source]] = {}
        for source in (override, builtin):
            if source is None:
                continue
            self._dirs.setdefault("", []).append(source)
            for sub in source.iterdir():
                if sub.is_dir() and not sub.name.startswith("."):
                    if not is_language_tag(sub.name):
                        raise ConfigError(
                            f"mail template directory {sub.name!r}: not a language tag "
                            "(BCP 47, e.g. de, pt-BR)"
                        )
                    self._dirs.setdefault(sub.name.lower(), []).append(sub)
        for lang, sources in self._dirs.items():
            for source in sources:
                self._load(lang, source)
        for kind in MailKind:
            for suffix in PARTS:
                if ("", f"{kind.value}.{suffix}") not in self._cache:
                    raise ConfigError(f"no mail template {kind.value}.{suffix}")

    @property
    def languages(self) -> list[str]:
        """Every language with templates of its own (lower case), besides the default."""
        return sorted(lang for lang in self._dirs if lang)

    def _load(self, lang: str, source: Source) -> None:
        """Read and check every file of one directory; keep the first of each name (the
        operator's directory is read before the built-in one)."""
        where = f"{lang}/" if lang else ""
        names = {f.name for f in source.iterdir() if f.is_file() and not f.name.startswith(".")}
        known = {f"{k.value}.{suffix}" for k in MailKind for suffix in PARTS} | {
            f"{extra}.{s}" for extra in EXTRAS for s in PARTS
        }
        for name in sorted(names - known):
            raise ConfigError(
                f"mail template {where}{name}: unknown file name (each kind has <kind>.txt and "
                f"<kind>.html; kinds: {', '.join(k.value for k in MailKind)}; and help, long_code)"
            )
        for name in sorted(names):
            stem, _, suffix = name.rpartition(".")
            twin = f"{stem}.{'html' if suffix == 'txt' else 'txt'}"
            if twin not in names:
                raise ConfigError(f"mail template {where}{name} has no {where}{twin}: give both parts")
            if (lang, name) in self._cache:
                continue  # the operator's file stands in for the built-in one
            text = source.joinpath(name).read_text(encoding="utf-8")
            self._cache[(lang, name)] = _checked(f"{where}{name}", stem, suffix, text)

    def _template(self, name: str, lang: str | None) -> string.Template:
        for candidate in fallbacks(lang):
            found = self._cache.get((candidate, name))
            if found is not None:
                return found
        raise ConfigError(f"no mail template {name}")  # the default set is complete (checked above)

    def values(
        self, kind: MailKind, recipient: str, params: dict[str, str | int], now: int
    ) -> dict[str, str]:
        values = {key: str(value) for key, value in params.items()}
        values["email"] = recipient
        if "code" in values:
            digits = values["code"]
            values["link"] = self.context.link_template.replace("{code}", digits)  # digits only
            if len(digits) > 6:  # a long code, read more easily in groups of four
                values["code"] = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
            values["subject_code"] = f": {values['code']}" if self.context.code_in_subject else ""
            values["code_note"] = ""
        if "expires_at" in params:
            expires = int(params["expires_at"])
            values["expires_at"] = format_time(expires)
            values["expires_in_min"] = str(max(0, (expires - now) // 60))
        if "at" in params:
            values["at"] = format_time(int(params["at"]))
        return values

    def render(
        self, kind: MailKind, recipient: str, params: dict[str, str | int], now: int, lang: str | None = None
    ) -> Rendered:
        """The mail of ``kind`` with these values, in ``lang`` when there are templates for it
        (else the nearest fallback: ``pt-BR``, ``pt``, the default)."""
        values = self.values(kind, recipient, params, now)
        escaped = {k: html.escape(v) for k, v in values.items()}
        support = {"support_url": self.context.support_url}
        values["help"] = escaped["help"] = ""
        try:
            if self.context.support_url:
                values["help"] = self._template(f"{HELP}.txt", lang).substitute(support)
                escaped["help"] = self._template(f"{HELP}.html", lang).substitute(
                    {k: html.escape(v) for k, v in support.items()}
                )
            if len(str(params.get("code", ""))) > 6:
                values["code_note"] = self._template(f"{LONG_CODE}.txt", lang).substitute({}).strip()
                escaped["code_note"] = self._template(f"{LONG_CODE}.html", lang).substitute({}).strip()
            text = self._template(f"{kind.value}.txt", lang).substitute(values)
            body_html = self._template(f"{kind.value}.html", lang).substitute(escaped)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"template {kind.value} needs a value it was not given: {exc}") from exc
        subject_line, _, body = text.partition("\n\n")
        return Rendered(subject_line.removeprefix("Subject: ").strip(), body.strip() + "\n", _page(body_html))


def _checked(where: str, stem: str, suffix: str, text: str) -> string.Template:
    """One file as a template, or a ConfigError saying what is wrong with it."""
    template = string.Template(text)
    if not template.is_valid():
        raise ConfigError(f"mail template {where} has an invalid placeholder (a lone $? write $$ for a $)")
    used = set(template.get_identifiers())
    if stem in EXTRAS:
        given, required = EXTRAS[stem], frozenset[str]()
    else:
        spec = SPECS[MailKind(stem)]
        given, required = spec.given, spec.required
        if suffix == "txt" and not text.startswith("Subject: "):
            raise ConfigError(f"mail template {where} must start with 'Subject: '")
    unknown = sorted(used - given)
    if unknown:
        raise ConfigError(
            f"mail template {where} uses ${unknown[0]}, which {stem} mail is never given "
            f"(it has: {', '.join('$' + v for v in sorted(given))})"
        )
    missing = sorted(required - used)
    if missing:
        raise ConfigError(
            f"mail template {where} must show ${missing[0]} (a {stem} mail without it is useless)"
        )
    return template


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        '<body style="font-family:sans-serif;font-size:16px;line-height:1.5;max-width:560px">\n'
        f"{body.strip()}\n</body></html>\n"
    )
