"""A small IMAP4rev1 server on 127.0.0.1 for the probe's mailbox: one account, one folder, the
commands Python's imaplib sends for LOGIN, SELECT, NOOP, UID SEARCH/FETCH/STORE, EXPUNGE and
LOGOUT. Messages come from an aiosmtpd handler (``handle_DATA``), so mail reaches it through the
daemon's real SMTP path. Plain text on loopback (no STARTTLS offered: the probe allows that there)."""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
import time
from dataclasses import dataclass, field
from email.utils import getaddresses


@dataclass
class Stored:
    uid: int
    data: bytes
    at: float
    deleted: bool = False


@dataclass
class ImapAccount:
    user: str
    password: str
    messages: list[Stored] = field(default_factory=list)
    logins: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            uid = len(self.messages) + 1
            self.messages.append(Stored(uid, envelope.content, time.time()))
        return "250 OK"

    def live(self) -> list[Stored]:
        with self.lock:
            return [m for m in self.messages if not m.deleted]


class _Session(socketserver.StreamRequestHandler):
    account: ImapAccount

    def send(self, line: str | bytes) -> None:
        self.wfile.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")

    def handle(self) -> None:
        self.send("* OK IMAP4rev1 test server ready")
        authenticated = False
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            tag, _, rest = raw.decode().rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                self.send("* CAPABILITY IMAP4rev1")
            elif command == "LOGIN":
                user, password = (a.strip('"') for a in args.split(" ", 1))
                if (user, password) != (self.account.user, self.account.password):
                    self.send(f"{tag} NO [AUTHENTICATIONFAILED] wrong password")
                    continue
                authenticated = True
                self.account.logins += 1
            elif command == "LOGOUT":
                self.send("* BYE")
                self.send(f"{tag} OK LOGOUT done")
                return
            elif not authenticated:
                self.send(f"{tag} NO log in first")
                continue
            elif command == "SELECT":
                self.send(f"* {len(self.account.live())} EXISTS")
                self.send(f"{tag} OK [READ-WRITE] SELECT done")
                continue
            elif command == "UID":
                self.uid(tag, args)
                continue
            elif command == "EXPUNGE":
                with self.account.lock:
                    self.account.messages = [m for m in self.account.messages if not m.deleted]
            elif command != "NOOP":
                self.send(f"{tag} BAD unknown command {command}")
                continue
            self.send(f"{tag} OK {command} done")

    def uid(self, tag: str, args: str) -> None:
        sub, _, rest = args.partition(" ")
        sub = sub.upper()
        if sub == "SEARCH":  # SINCE <date> TO "<address>"
            address = rest.rsplit(" ", 1)[-1].strip('"').lower()
            uids = [str(m.uid) for m in self.account.live() if address in _recipients(m.data)]
            self.send("* SEARCH " + " ".join(uids) if uids else "* SEARCH")
        elif sub == "FETCH":
            wanted = {int(u) for u in rest.split(" ", 1)[0].split(",")}
            for m in self.account.live():
                if m.uid in wanted:
                    date = time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(m.at))
                    head = f'* {m.uid} FETCH (UID {m.uid} INTERNALDATE "{date}" RFC822 {{{len(m.data)}}}'
                    self.send(head.encode() + b"\r\n" + m.data + b")\r\n")
        elif sub == "STORE":
            wanted = {int(u) for u in rest.split(" ", 1)[0].split(",")}
            with self.account.lock:
                for m in self.account.messages:
                    if m.uid in wanted:
                        m.deleted = True
        else:
            self.send(f"{tag} BAD unknown UID command {sub}")
            return
        self.send(f"{tag} OK UID {sub} done")


def _recipients(data: bytes) -> set[str]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    return {addr.lower() for _, addr in getaddresses([str(v) for v in message.get_all("To", [])])}


class ImapServer:
    def __init__(self, account: ImapAccount) -> None:
        handler = type("Session", (_Session,), {"account": account})
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
