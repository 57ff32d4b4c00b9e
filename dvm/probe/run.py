"""One probe: a signup of the probe's address, through the DVM's real relays, hop by hop.

What it does, as a browser would: find the DVM and its announcement; from a fresh key, mine a
``request_account`` for the probe's address to the announced minimum and publish it to every
relay; wait for the reply; then, where it can see them, the mail row the request queued (the
database) and the code arriving (the probe's mailbox), and ``verify_code`` with that code.

What it never does: ``activate``. The probe's address stays a pending signup (one ``users`` row,
reused by every later probe; verified once a code matched, never activated), so probes never
add accounts; sessions, request records and code records go with retention like any other.

Codes are shared per mailbox and kind (docs/protocol.md, "Sessions and codes"): a probe within
``resend_cooldown_s`` of a code still unused, or past the mailbox's hourly share, mails nothing
and joins the live code. The report says which happened; the probe then verifies with the live
code from its mailbox. A probe that verifies spends its code, so the next one mails a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dvm.errors import NostrError
from dvm.nostr import bech32
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import SecretKey
from dvm.probe.mailbox import Found, Mailbox
from dvm.probe.relays import ProbeRelays
from dvm.probe.report import Report, Status, Step
from dvm.probe.target import PROTOCOL, Announced, Named, read_announcement, resolve_nip05
from dvm.protocol.client import OpenedReply, build_request, open_reply

CONNECT_TIMEOUT_S = 10.0
STORED_TIMEOUT_S = 5.0
PUBLISH_TIMEOUT_S = 10.0
POLL_S = 0.25
MAILBOX_POLL_S = 1.0
VERIFY_RESERVE_S = 10.0  # kept back from waiting for mail, for verify_code's round trip


@dataclass(frozen=True, slots=True)
class MailRow:
    """The outbox row a request queued (the ``mail`` table), as the probe reads it."""

    id: int
    kind: str
    status: str
    created_at: int
    sent_at: int | None
    attempts: int
    last_error: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    email: str
    named: Named | None  # --dvm or probe.dvm
    key_pubkey: str  # the daemon's own key, when the probe may read it ("" otherwise)
    nip05_domain: str  # daemon.nip05_domain: dvm@<it> when nothing else names the DVM
    relays: tuple[str, ...]  # --relay, else relays.toml (a NIP-05 name's relays come first)
    relays_given: bool  # --relay: use exactly these
    timeout_s: float
    mailbox: Mailbox | None
    outbox: Callable[[str], MailRow | None] | None  # the mail row of a request id, if readable
    outbox_note: str = ""  # why not, when not
    verify: bool = True
    keep_mail: bool = False
    code_ttl_s: int = 900
    private_mode: bool | None = None  # known when the settings are the daemon's


class Timeline:
    """The report being written: which step runs, since when, and how far it got."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.t0 = time.monotonic()
        self.current = ""
        self.started = self.t0
        self.progress = ""

    def begin(self, name: str) -> None:
        self.current, self.started, self.progress = name, time.monotonic(), ""

    def end(self, status: Status, detail: str, /, **data: Any) -> Step:
        now = time.monotonic()
        step = Step(self.current, status, (now - self.t0) * 1000, (now - self.started) * 1000, detail, data)
        self.report.steps.append(step)
        self.current = ""
        return step

    def skip(self, name: str, detail: str) -> None:
        self.report.steps.append(Step(name, Status.SKIPPED, None, None, detail))

    def ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000


class Aborted(Exception):
    """A step failed in a way that leaves nothing for the next ones to check."""


async def probe(options: ProbeOptions) -> Report:
    """Run every step within ``options.timeout_s``; a step still running then fails."""
    report = Report(email=options.email)
    line = Timeline(report)
    run = ProbeRun(options, line)
    try:
        async with asyncio.timeout(options.timeout_s):
            await run.steps()
    except TimeoutError:
        if line.current:
            detail = f"timed out after {options.timeout_s:g} s (--timeout)"
            line.end(Status.FAILED, f"{detail}: {line.progress}" if line.progress else detail)
    except Aborted:
        pass
    except (OSError, ValueError) as exc:  # a relay or the mailbox failed mid-step
        if line.current:
            line.end(Status.FAILED, f"{type(exc).__name__}: {exc}" if not str(exc).strip() else str(exc))
    finally:
        await run.close()
    if run.request is not None:
        run.notes()
    done = {s.name for s in report.steps}
    for name in ("announce", "publish", "reply", "outbox", "mailbox", "verify"):
        if name not in done:
            line.skip(name, "not reached")
    report.duration_ms = line.ms()
    return report


class ProbeRun:
    def __init__(self, options: ProbeOptions, line: Timeline) -> None:
        self.o = options
        self.line = line
        self.report = line.report
        self.relays: ProbeRelays | None = None
        self.client = Encryptor(SecretKey.generate())
        self.pubkey = ""
        self.announced = Announced.defaults()
        self.request: Event | None = None
        self.baseline: set[str] = set()
        self.row: MailRow | None = None
        self.joined = False
        self.used: list[str] = []
        self.mailbox_error = ""

    async def steps(self) -> None:
        relays = await self.find_dvm()
        await self.announcement(relays)
        if self.o.mailbox is not None:
            try:  # what is there already is no answer to this probe's request
                self.baseline = {m.id for m in await asyncio.to_thread(self.o.mailbox.messages, self.o.email)}
            except Exception as exc:
                self.mailbox_error = f"{self.o.mailbox.where}: {type(exc).__name__}: {exc}"
        reply = await self.signup()
        if not reply.ok:
            for name in ("outbox", "mailbox", "verify"):
                self.line.skip(name, f"no code was asked for (the reply was {reply.code})")
            return
        await self.outbox()
        found = await self.mail()
        await self.verify(found)

    # --- dvm -----------------------------------------------------------------------------------

    async def find_dvm(self) -> tuple[str, ...]:
        self.line.begin("dvm")
        o, named = self.o, self.o.named
        relays: tuple[str, ...] = ()
        if named is not None and named.pubkey:
            self.pubkey, source = named.pubkey, "as given"
        elif (named is not None and named.nip05) or (not o.key_pubkey and o.nip05_domain):
            name = named.nip05 if named is not None and named.nip05 else f"dvm@{o.nip05_domain}"
            try:
                self.pubkey, relays = await resolve_nip05(name, CONNECT_TIMEOUT_S)
            except (OSError, ValueError) as exc:
                self.line.end(Status.FAILED, f"NIP-05 {name}: {exc}", nip05=name)
                raise Aborted from exc
            source = f"NIP-05 {name}"
        else:
            self.pubkey, source = o.key_pubkey, "the DVM's key"
        use = o.relays if o.relays_given or not relays else relays
        npub = bech32.npub(bytes.fromhex(self.pubkey))
        self.report.dvm = npub
        if not use:
            self.line.end(Status.FAILED, f"{npub} ({source}): no relays (give --relay or a relays.toml)")
            raise Aborted
        detail = f"{npub} ({source}), {len(use)} relay(s)"
        self.line.end(Status.OK, detail, pubkey=self.pubkey, source=source, relays=list(use))
        return use

    # --- announce ------------------------------------------------------------------------------

    async def announcement(self, urls: tuple[str, ...]) -> None:
        self.line.begin("announce")
        self.relays = ProbeRelays(urls, self.client.key)
        await self.relays.open(CONNECT_TIMEOUT_S)
        if not self.relays.connected:
            errors = "; ".join(f"{r.url}: {r.error}" for r in self.relays.relays)
            self.line.end(Status.FAILED, f"no relay reachable ({errors})")
            raise Aborted
        query = {"kinds": [31990], "authors": [self.pubkey], "#d": ["sigit-dvm"]}
        await self.relays.subscribe("announce", query)
        await self.relays.stored("announce", STORED_TIMEOUT_S)
        seen: dict[str, Announced] = {}
        for relay, event in self.relays.drain():
            if event.pubkey != self.pubkey:
                continue
            with contextlib.suppress(ValueError):
                found = read_announcement(event)
                if relay not in seen or found.created_at > seen[relay].created_at:
                    seen[relay] = found
        per_relay = {r.url: (r.url in seen) if r.connected else r.error for r in self.relays.relays}
        if not seen:
            self.line.end(
                Status.FAILED,
                "no announcement (kind 31990, d=sigit-dvm) from the DVM on any relay; "
                "going on with the protocol's defaults",
                relays=per_relay,
            )
            return
        self.announced = max(seen.values(), key=lambda a: a.created_at)
        a = self.announced
        data = {
            "relays": per_relay,
            "request_kind": a.request_kind,
            "pow_bits": {m: a.bits(m) for m in ("request_account", "verify_code")},
            "protocols": list(a.protocols),
            "announced_at": a.created_at,
        }
        where = f"on {len(seen)} of {len(self.relays.relays)} relay(s)"
        bits = f"request_account {a.bits('request_account')} bits, verify_code {a.bits('verify_code')}"
        if PROTOCOL not in a.protocols:
            self.line.end(
                Status.FAILED, f"{where}, but protocols {list(a.protocols)} lack {PROTOCOL}", **data
            )
            return
        down = [u for u, v in per_relay.items() if v is not True]
        lacking = f"; missing on {', '.join(down)}" if down else ""
        self.line.end(Status.OK, f"{where}: kind {a.request_kind}, {bits}, {PROTOCOL}{lacking}", **data)

    # --- publish and reply ---------------------------------------------------------------------

    async def signup(self) -> OpenedReply:
        assert self.relays is not None
        since = int(time.time()) - 60
        await self.relays.subscribe(
            "replies",
            {"kinds": [self.announced.reply_kind], "#p": [self.client.key.pubkey_hex], "since": since},
        )
        bits = self.announced.bits("request_account")
        params = {"email": self.o.email}
        reply, relay, ms = await self.call("request_account", params, bits, first=True)
        if reply.code == "pow_too_low" and reply.error and int(reply.error.get("required_bits", 0)) > bits:
            required = int(reply.error["required_bits"])
            self.report.notes.append(
                f"the DVM asked for {required} bits of PoW instead of {bits} (a busy domain's price); paid"
            )
            reply, relay, more_ms = await self.call("request_account", params, required, first=False)
            ms += more_ms
        message = "" if reply.ok or reply.error is None else f": {reply.error.get('message', '')}"
        detail = f"{reply.code} from {relay} after {ms:.0f} ms{message}"
        self.line.end(Status.OK if reply.ok else Status.FAILED, detail, outcome=reply.code)
        if reply.code == "email_taken":
            self.report.notes.append(
                f"{self.o.email} has an activated account, so it cannot probe signups: give the "
                "probe an address of its own, or delete that account "
                f"(sigit-dvm users delete {self.o.email} --yes)"
            )
        return reply

    async def call(
        self, method: str, params: dict[str, Any], bits: int, *, first: bool
    ) -> tuple[OpenedReply, str, float]:
        """Publish one request (the ``publish`` step for the first; the ``reply`` step begins
        then) and wait for its reply: the reply, the relay it came from, and how long it took."""
        assert self.relays is not None
        if first:
            self.line.begin("publish")
        started = time.monotonic()
        event = await asyncio.to_thread(
            build_request, self.client, self.pubkey, method, params, int(time.time()), pow_bits=bits,
            kind=self.announced.request_kind,
        )  # fmt: skip
        mined_ms = (time.monotonic() - started) * 1000
        results = await self.relays.publish(event, PUBLISH_TIMEOUT_S)
        accepted = [r for r in results if r.accepted]
        if first:
            self.request = event
            relays = [
                {"relay": r.relay, "accepted": r.accepted, "message": r.message, "ms": round(r.ms, 1)}
                for r in results
            ]
            refused = "".join(f"; {r.relay}: {r.message or 'refused'}" for r in results if not r.accepted)
            detail = (
                f"{method} accepted by {len(accepted)} of {len(results)} relay(s) "
                f"({bits} bits of PoW mined in {mined_ms:.0f} ms){refused}"
            )
            status = Status.OK if accepted else Status.FAILED
            self.line.end(status, detail, event=event.id, pow_bits=bits, relays=relays)
            if not accepted:
                raise Aborted
            self.line.begin("reply")
        elif not accepted:
            raise OSError(f"no relay accepted the {method} request")
        sent = time.monotonic()

        def answers(candidate: Event) -> bool:
            return (
                candidate.kind == self.announced.reply_kind
                and candidate.pubkey == self.pubkey
                and event.id in candidate.tag_values("e")
            )

        self.line.progress = f"no reply to {method} {event.id[:12]} yet"
        seen = await self.relays.next_event(answers, 3600)
        assert seen is not None  # the probe's timeout ends the wait
        relay, answer = seen
        try:
            opened = open_reply(self.client, answer, self.pubkey)
        except (NostrError, ValueError) as exc:
            opened = OpenedReply(event.id, None, {"code": "unreadable_reply", "message": str(exc)})
        return opened, relay, (time.monotonic() - sent) * 1000

    # --- outbox --------------------------------------------------------------------------------

    async def outbox(self) -> None:
        if self.o.outbox is None:
            self.line.skip(
                "outbox", "the database is not readable here (run next to the daemon, with --config)"
            )
            return
        assert self.request is not None
        self.line.begin("outbox")
        row = self.o.outbox(self.request.id)
        if row is None:
            self.joined = True
            self.line.end(
                Status.OK,
                "no new mail: the request joined the live code of the probe's mailbox (codes are shared "
                "per mailbox and kind; a new one goes out once the live one is used, expired, or older "
                "than service.resend_cooldown_s with the mailbox's hourly share not used up)",
                new_code=False,
            )
            return
        while row is not None and row.status == "queued":
            self.line.progress = f"mail {row.id} still queued (attempts {row.attempts}{_error(row)})"
            await asyncio.sleep(POLL_S)
            row = self.o.outbox(self.request.id) or row
        self.row = row
        data = {"new_code": True, "mail": row.id, "kind": row.kind, "mail_status": row.status}
        if row.status == "sent":
            data["sent_at"] = row.sent_at
            self.line.end(Status.OK, f"new {row.kind} mail {row.id} queued and sent", **data)
        else:
            self.line.end(Status.FAILED, f"{row.kind} mail {row.id} is {row.status}{_error(row)}", **data)

    # --- mailbox -------------------------------------------------------------------------------

    async def mail(self) -> Found | None:
        mailbox = self.o.mailbox
        if mailbox is None:
            self.line.skip("mailbox", "no probe mailbox to read (probe.mailbox, --mailbox)")
            return None
        self.line.begin("mailbox")
        if self.mailbox_error:
            self.line.end(Status.FAILED, self.mailbox_error)
            return None
        wanted = self.row.message_id if self.row is not None else ""
        # Joined a live code: nothing new comes. Else wait for the mail, keeping time to verify.
        wait_s = 0.0 if self.joined else max(0.0, self.left() - VERIFY_RESERVE_S)
        deadline = time.monotonic() + wait_s
        self.line.progress = f"no new code mail to {self.o.email} in {mailbox.where}"
        while True:
            try:
                messages = await asyncio.to_thread(mailbox.messages, self.o.email)
            except Exception as exc:
                self.line.end(Status.FAILED, f"{mailbox.where}: {type(exc).__name__}: {exc}")
                return None
            new = [m for m in messages if m.id not in self.baseline and m.code]
            if wanted:
                new = [m for m in new if m.message_id == wanted] or new
            if new:
                found = max(new, key=lambda m: m.received)
                self.line.end(Status.OK, f"code arrived in {mailbox.where}", **_found(found))
                return found
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(MAILBOX_POLL_S)
        live = [m for m in messages if m.code and m.received > time.time() - self.o.code_ttl_s]
        if not live:
            self.line.end(Status.FAILED, f"no code arrived in {mailbox.where}, and none there is still fresh")
            return None
        found = max(live, key=lambda m: m.received)
        self.joined = True
        when = time.strftime("%H:%M:%SZ", time.gmtime(found.received))
        self.line.end(
            Status.OK, f"no new mail; the live code mailed at {when} is in {mailbox.where}", **_found(found)
        )
        return found

    def left(self) -> float:
        """Seconds left before the probe's timeout."""
        return self.o.timeout_s - (time.monotonic() - self.line.t0)

    # --- verify --------------------------------------------------------------------------------

    async def verify(self, found: Found | None) -> None:
        if found is None or found.code is None:
            self.line.skip("verify", "no code to verify")
            return
        if not self.o.verify:
            self.line.skip("verify", "--no-verify")
            return
        self.line.begin("verify")
        bits = self.announced.bits("verify_code")
        self.line.progress = "no reply to verify_code yet"
        reply, _, _ = await self.call("verify_code", {"code": found.code}, bits, first=False)
        self.used.append(found.id)
        if not reply.ok:
            message = (reply.error or {}).get("message", "")
            self.line.end(Status.FAILED, f"verify_code: {reply.code}: {message}", outcome=reply.code)
            return
        result = reply.result or {}
        if "pubkey" in result:
            shape = "a login result: the probe's address has an account (private mode answers so)"
        else:
            shape = "the signup is verified (never activated: the probe stops here)"
        self.line.end(Status.OK, f"verify_code ok: {shape}", outcome="ok")

    # --- the end -------------------------------------------------------------------------------

    def notes(self) -> None:
        if self.joined:
            self.report.notes.append(
                "this probe joined a live code: probes closer together than service.resend_cooldown_s "
                "(60 s), or past the mailbox's hourly share while its code is unused, mail nothing new"
            )
        if self.o.private_mode:
            self.report.notes.append(
                "private mode: every request_account answers ok, so only the code arriving proves that "
                "mail goes out"
            )
        self.report.notes.append(
            f"left behind: a pending signup of {self.o.email} (one users row, never activated, reused by "
            "every probe), and a session and request records that retention removes"
        )

    async def close(self) -> None:
        mailbox = self.o.mailbox
        if mailbox is not None:
            try:
                if self.used and not self.o.keep_mail:
                    await asyncio.to_thread(mailbox.delete, self.used)
            except (OSError, Exception) as exc:
                self.report.notes.append(f"could not delete the probe's mail: {exc}")
            finally:
                await asyncio.to_thread(mailbox.close)
        if self.relays is not None:
            await self.relays.close()


def _error(row: MailRow) -> str:
    return f": {row.last_error}" if row.last_error else ""


def _found(found: Found) -> dict[str, Any]:
    """What the report says about a code mail (never the code itself)."""
    return {
        "message_id": found.message_id,
        "received_at": int(found.received),
        "code_digits": len(found.code or ""),
    }
