"""What an owner sees while a stranger attacks: the figures docs/threat-model.md quotes.

The real service on a real SQLite file, its clock simulated: for two hours a stranger sends N
events an hour (evenly spaced, every one with real proof of work, from fresh keys) with one of the
strategies below, aimed at the owner's address, and every fifteen minutes the owner logs in:
request_login from a new device (paying any price asked), then the newest code in the mailbox.
Printed per strategy and N, in default and private mode: how many of the owner's logins got in
at the first code, the longest the owner waited for a code that works (0: the newest code in the
mailbox worked at once), the most proof of work it paid above the minimum, how many digits the
code had, and how many codes the mailbox received per hour.

Strategies: ``login`` (request_login from fresh keys), ``guess`` (request_login, then wrong codes
until the session locks), ``resend`` (request_login, then resend_code a minute later), ``tags``
(request_account for owner+N@: other addresses of the owner's mailbox, each a new code), ``decoy``
(private mode: request_login for owner+N@ addresses, then wrong codes), ``signups`` (made-up
signups at the owner's domain, paying whatever price is asked: the owner's own signup there pays
the price too, in bits more than the minimum).

Environment: SIGIT_BENCH_OWNER_RATES (default 10,100,1000,3600), SIGIT_BENCH_OWNER_HOURS (2).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from dvm.accounts.rules import AccountRules
from dvm.nostr.keys import SecretKey
from dvm.rules import ServiceRules
from dvm.store import database
from tests.support.flows import LOW_POW, Harness, make_service, new_client

OWNER = "owner@example.org"
OWNER_EVERY_S = 900  # the owner logs in four times an hour: under the address's free cap of five
COMMAND = "scripts/bench owner"


def world(tmp: Path, name: str, private: bool) -> Harness:
    rules: ServiceRules = replace(LOW_POW, accounts=AccountRules(private_mode=private))
    h = Harness(database.connect(tmp / f"{name}.sqlite3"), make_service(rules))
    browser, key = new_client(1), SecretKey.generate()
    params = {"pubkey": key.pubkey_hex, "email": OWNER, "backup": "QUJD"}
    assert h.send(browser, "register", params, seal=key).ok
    assert h.send(browser, "verify_code", {"code": h.last_code(OWNER)}).ok
    h.now += 3600
    return h


class Stranger:
    """One strategy's next event, from fresh keys; the events of a session follow each other."""

    def __init__(self, h: Harness, strategy: str) -> None:
        self.h, self.strategy, self.n, self.steps = h, strategy, 0, []
        self.work = 0  # hashes the stranger's PoW took, in units of the 16-bit minimum

    def act(self) -> None:
        if not self.steps:
            self.n += 1
            key = new_client(10_000 + self.n)
            if self.strategy == "signups":
                self.steps = [(key, "request_account", {"email": f"made.up{self.n}@example.org"})]
            elif self.strategy == "tags":
                self.steps = [(key, "request_account", {"email": f"owner+{self.n}@example.org"})]
            else:
                target = f"owner+{self.n}@example.org" if self.strategy == "decoy" else OWNER
                self.steps = [(key, "request_login", {"email": target})]
                if self.strategy in ("guess", "decoy"):
                    self.steps += [(key, "verify_code", {"code": f"{self.n % 10**6:06d}"})] * 5
                elif self.strategy == "resend":
                    self.steps += [(key, "resend_code", {})]
        key, method, params = self.steps.pop(0)
        reply = self.h.send(key, method, params, pow_bits=2)
        extra = 0
        if reply.code == "pow_too_low":  # the stranger pays whatever price is asked
            extra = int(reply.error["required_bits"]) - 2
            self.h.send(key, method, params, pow_bits=2 + extra)
        self.work += 2**extra


def owner_login(h: Harness, attempt: int) -> tuple[bool, int, int, int]:
    """(got in with the newest code, seconds until a code worked, its digits, bits paid above
    the minimum)."""
    device = new_client(900_000 + attempt)
    started, paid = h.now, 0
    for _ in range(60):  # at most an hour of tries, a minute apart
        asked = h.send(device, "request_login", {"email": OWNER}, pow_bits=2)
        if asked.code == "pow_too_low":  # a price: the owner's browser mines it
            paid = max(paid, int(asked.error["required_bits"]) - 2)
            asked = h.send(device, "request_login", {"email": OWNER}, pow_bits=2 + paid)
        if asked.ok:
            code = h.last_code(OWNER)
            if h.send(device, "verify_code", {"code": code}, pow_bits=2).ok:
                return h.now == started, h.now - started, len(code), paid
        h.now += 60
        device = new_client(900_000 + attempt * 100 + h.now % 97)
    return False, h.now - started, 0, paid


def run(tmp: Path, strategy: str, rate: int, hours: int, private: bool) -> str:
    h = world(tmp, f"{strategy}-{rate}-{private}", private)
    stranger = Stranger(h, strategy)
    start, step = h.now, 3600 / rate
    logins = []
    next_owner, t = start + OWNER_EVERY_S, float(start)
    price = 0
    while t < start + hours * 3600:
        h.now = int(t)
        if strategy == "signups" and h.now >= next_owner:  # the owner signs up there: the price
            reply = h.send(
                new_client(800_000 + h.now), "request_account", {"email": f"new{h.now}@example.org"}
            )
            price = max(price, int(reply.error["required_bits"]) - 2 if reply.code == "pow_too_low" else 0)
            next_owner += OWNER_EVERY_S
        elif h.now >= next_owner:
            logins.append(owner_login(h, len(logins)))
            next_owner += OWNER_EVERY_S
        stranger.act()
        t += step
    sent = h.count("mail", "kind LIKE '%code' AND recipient LIKE 'owner%' AND created_at >= ?", start)
    mode = "private" if private else "default"
    if strategy == "signups":
        return (
            f"{strategy:8} {rate:6} {mode:8} the owner's signup at that domain costs {price} more bit(s) "
            f"(x{2**price} work); the stranger paid x{stranger.work / max(1, stranger.n):.1f} per signup"
        )
    first = sum(1 for ok, _, _, _ in logins if ok)
    waited = max((w for _, w, _, _ in logins), default=0)
    digits = sorted({d for _, _, d, _ in logins})
    paid = max((b for _, _, _, b in logins), default=0)
    return (
        f"{strategy:8} {rate:6} {mode:8} in at once {first}/{len(logins)}   longest wait {waited:4} s   "
        f"paid +{paid} bit(s)   code digits {digits}   codes to the mailbox {sent / hours:5.1f}/h"
    )


def main() -> None:
    rates = [int(r) for r in os.environ.get("SIGIT_BENCH_OWNER_RATES", "10,100,1000,3600").split(",")]
    hours = int(os.environ.get("SIGIT_BENCH_OWNER_HOURS", "2"))
    print(f"$ {COMMAND}  (simulated clock: {hours} h of attack per line; the owner logs in every 15 min)")
    print("strategy   N/h  mode     what the owner sees")
    with tempfile.TemporaryDirectory(prefix="sigit-owner-") as tmp:
        for strategy, modes in (
            ("login", (False, True)),
            ("guess", (False, True)),
            ("resend", (False, True)),
            ("tags", (False, True)),
            ("decoy", (True,)),
            ("signups", (False,)),
        ):
            for private in modes:
                for rate in rates:
                    print(run(Path(tmp), strategy, rate, hours, private), flush=True)


if __name__ == "__main__":
    main()
