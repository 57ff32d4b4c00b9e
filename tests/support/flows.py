"""A synchronous harness over the real service and a real SQLite file, for store-level tests."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from dvm.accounts.rules import AccountRules
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import OpenedReply, build_request, open_reply
from dvm.protocol.intake import IntakeRules, open_request
from dvm.protocol.methods import Method
from dvm.rules import ServiceRules
from dvm.service import AccountService, Answer
from dvm.store.database import dialect
from dvm.store.sealed import ParamsSeal

DVM_SECRET = "d1" * 32
CODE_SECRET = b"c" * 32
T0 = 1_800_000_000
LOW_POW = ServiceRules(intake=IntakeRules(pow_bits=dict.fromkeys(Method, 2)))


def mail_params(stored: str, token: str) -> dict[str, Any]:
    """A mail row's template values (sealed at rest with a key derived from CODE_SECRET)."""
    return ParamsSeal(CODE_SECRET).open(stored, token)


def make_service(rules: ServiceRules = LOW_POW, seed: int = 0) -> AccountService:
    rng = random.Random(seed).randbytes
    return AccountService(Encryptor(SecretKey(bytes.fromhex(DVM_SECRET)), rng), CODE_SECRET, rules, rng)


def commit_one(service: AccountService, conn: sqlite3.Connection, event: Event, now: int) -> Answer:
    """Open ``event`` and commit it alone, as the pipeline would in a batch of one."""
    incoming = open_request(event, service.encryptor, service.rules.intake, now)
    (answer,) = service.commit(conn, [incoming], now)
    if isinstance(answer, Exception):
        raise answer
    return answer


def new_client(seed: int) -> Encryptor:
    rng = random.Random(1000 + seed).randbytes
    return Encryptor(SecretKey.generate(rng), rng)


@dataclass
class Harness:
    """Sends requests through ``AccountService.commit`` and reads codes from the mail outbox."""

    conn: sqlite3.Connection
    service: AccountService = field(default_factory=make_service)
    now: int = T0

    def event(
        self,
        client: Encryptor,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        seal: SecretKey | None = None,
        pow_bits: int = 2,
    ) -> Event:
        """A request from ``client``; ``seal`` (an account key) signs it inside, as register,
        activate and the account methods from an ephemeral key need."""
        return build_request(
            client, self.service.pubkey, method, params or {}, self.now, pow_bits=pow_bits, seal=seal
        )

    def open(self, event: Event):
        return open_request(event, self.service.encryptor, self.service.rules.intake, self.now)

    def send_event(self, client: Encryptor, event: Event) -> tuple[Answer, OpenedReply]:
        answer = commit_one(self.service, self.conn, event, self.now)
        return answer, open_reply(client, answer.reply, self.service.pubkey)

    def send(
        self,
        client: Encryptor,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        seal: SecretKey | None = None,
        pow_bits: int = 2,
    ) -> OpenedReply:
        return self.send_event(client, self.event(client, method, params, seal=seal, pow_bits=pow_bits))[1]

    def last_code(self, email: str) -> str:
        row = self.conn.execute(
            "SELECT params, message_id FROM mail WHERE recipient = ? AND kind LIKE '%code' "
            "ORDER BY id DESC LIMIT 1",
            (email,),
        ).fetchone()
        return str(mail_params(row[0], row[1])["code"])

    def count(self, table: str, where: str = "TRUE", *args: Any) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", args).fetchone()[0])


ACCOUNT_RULES = AccountRules()


def dump(conn: Any) -> str:
    """Every row of every table as text, on either backend (what a stolen database shows)."""
    if dialect(conn) == "sqlite":
        return "\n".join(conn.iterdump())
    tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return "\n".join(str(tuple(row)) for t in sorted(tables) for row in conn.execute(f"SELECT * FROM {t}"))
