"""A SIGit browser built on rust-nostr (``nostr-sdk``), so end-to-end tests do not grade our own
protocol code with our own protocol code: it builds, mines, encrypts and signs requests and
decrypts replies with rust-nostr only."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass
from typing import Any

import nostr_sdk as rn


@dataclass
class Reply:
    event: rn.Event
    body: dict[str, Any]

    @property
    def code(self) -> str:
        return "ok" if "error" not in self.body else self.body["error"]["code"]

    @property
    def result(self) -> dict[str, Any] | None:
        return self.body.get("result")


class SdkBrowser:
    def __init__(self, relays: list[str], dvm_pubkey: str, *, kind: int = 5780, pow_bits: int = 8) -> None:
        self.relays = relays
        self.dvm = rn.PublicKey.parse(dvm_pubkey)
        self.kind = kind
        self.pow_bits = pow_bits
        self.keys = rn.Keys.generate()
        self.client = rn.Client()

    async def __aenter__(self) -> SdkBrowser:
        for url in self.relays:
            await self.client.add_relay(rn.RelayUrl.parse(url))
        await self.client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.shutdown()

    def new_key(self) -> None:
        """A fresh ephemeral key, as a new browser session would have."""
        self.keys = rn.Keys.generate()

    def request(
        self,
        method: str,
        params: dict[str, Any],
        *,
        nip04: bool = False,
        keys: rn.Keys | None = None,
        seal: rn.Keys | None = None,
        seal_event: rn.Event | None = None,
    ):
        """The request event; with ``seal`` (the account's keys) the request is sealed by them
        (docs/protocol.md, "Sealed requests") and carried by the ephemeral key; ``seal_event``
        carries a seal made before (:meth:`seal`) instead."""
        keys = keys or self.keys
        plaintext = json.dumps({"method": method, "params": params})
        if seal is not None:
            seal_event = self.seal(method, params, seal, keys=keys)
        if seal_event is not None:
            plaintext = json.dumps({"seal": json.loads(seal_event.as_json())})
        if nip04:
            content = rn.nip04_encrypt(keys.secret_key(), self.dvm, plaintext)
        else:
            content = rn.nip44_encrypt(keys.secret_key(), self.dvm, plaintext, rn.Nip44Version.V2)
        tags = [rn.Tag.parse(["p", self.dvm.to_hex()]), rn.Tag.parse(["encrypted"])]
        unsigned = (
            rn.EventBuilder(rn.Kind(self.kind), content).tags(tags).finalize_unsigned(keys.public_key())
        )
        return unsigned.mine(rn.MultiThreadPow(), self.pow_bits).sign(keys)

    def seal(self, method: str, params: dict[str, Any], signer: rn.Keys, *, keys: rn.Keys | None = None):
        """A seal of the request by ``signer`` (the account's keys), for the carrier ``keys``."""
        keys = keys or self.keys
        plaintext = json.dumps({"method": method, "params": params})
        seal_tags = [
            rn.Tag.parse(["p", self.dvm.to_hex()]),
            rn.Tag.parse(["client", keys.public_key().to_hex()]),
        ]
        unsigned = (
            rn.EventBuilder(rn.Kind(13), plaintext).tags(seal_tags).finalize_unsigned(signer.public_key())
        )
        return unsigned.sign(signer)

    async def publish(self, event: rn.Event) -> None:
        output = await self.client.send_event(event)
        assert output.success, output.failed

    async def reply_to(self, event: rn.Event, timeout_s: float = 20.0, keys: rn.Keys | None = None) -> Reply:
        keys = keys or self.keys
        query = rn.Filter().kind(rn.Kind(self.kind + 1000)).event(event.id()).author(self.dvm)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = await self.client.fetch_events(
                rn.ReqTarget.auto([query]), timeout=datetime.timedelta(seconds=2)
            )
            if found:
                reply = found[0]
                assert reply.verify()
                if not reply.content():
                    return Reply(reply, {})
                if "?iv=" in reply.content():
                    text = rn.nip04_decrypt(keys.secret_key(), self.dvm, reply.content())
                else:
                    text = rn.nip44_decrypt(keys.secret_key(), self.dvm, reply.content())
                return Reply(reply, json.loads(text))
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no reply to {event.id().to_hex()[:12]}")

    async def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Reply:
        event = self.request(method, params or {}, **kw)
        await self.publish(event)
        return await self.reply_to(event, keys=kw.get("keys"))

    async def count(self, query: rn.Filter) -> int:
        return len(
            await self.client.fetch_events(rn.ReqTarget.auto([query]), timeout=datetime.timedelta(seconds=2))
        )
