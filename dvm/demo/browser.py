"""A simulated SIGit browser for the demo: our protocol client over a plain websocket.

It does what the website does: an ephemeral key per session, PoW-mined NIP-44 requests, replies
read by ``#e`` subscription, and the key backup made as a real NIP-49 ``ncryptsec`` (through
rust-nostr) from the password and the entropy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import parse_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import OpenedReply, build_request, open_reply
from dvm.protocol.intake import DEFAULT_POW_BITS
from dvm.protocol.methods import Method
from dvm.relays import messages


class Browser:
    def __init__(self, relay_url: str, dvm_pubkey: str, request_kind: int) -> None:
        self.relay_url = relay_url
        self.dvm_pubkey = dvm_pubkey
        self.kind = request_kind
        self.session = Encryptor(SecretKey.generate())
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> Browser:
        self._ws = await connect(self.relay_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    def new_session(self) -> None:
        """A new device or tab: a fresh ephemeral key."""
        self.session = Encryptor(SecretKey.generate())

    async def call(
        self,
        method: Method,
        params: dict[str, Any],
        timeout_s: float = 30.0,
        *,
        key: SecretKey | None = None,
        seal: SecretKey | None = None,
    ) -> tuple[OpenedReply, float]:
        """Send one request (signed by ``key``, the account's, for account methods; by the
        session's ephemeral key otherwise, sealed by ``seal``, the account key, for register and
        activate) and wait for its reply; return it with the PoW time."""
        assert self._ws is not None
        signer = Encryptor(key) if key is not None else self.session
        started = time.monotonic()
        # The table names the signup methods; every other method needs the same as verify_code.
        bits = DEFAULT_POW_BITS.get(method, DEFAULT_POW_BITS[Method.VERIFY_CODE])
        event = build_request(
            signer,
            self.dvm_pubkey,
            method.value,
            params,
            int(time.time()),
            pow_bits=bits,
            kind=self.kind,
            seal=seal,
        )
        mined_s = time.monotonic() - started
        sub = f"reply-{event.id[:8]}"
        await self._ws.send(messages.req(sub, {"kinds": [self.kind + 1000], "#e": [event.id]}))
        await self._ws.send(messages.event(event.to_dict()))
        deadline = time.monotonic() + timeout_s
        while True:
            raw = await asyncio.wait_for(self._ws.recv(), max(0.1, deadline - time.monotonic()))
            msg = messages.parse_relay_message(raw)
            if isinstance(msg, messages.EventMsg) and msg.subscription == sub:
                reply = parse_event(msg.event)
                await self._ws.send(messages.close(sub))
                return open_reply(signer, reply, self.dvm_pubkey), mined_s


def make_backup(account_secret_hex: str, password: str, entropy: str) -> str:
    """The browser's NIP-49 backup of the account key, locked with password + entropy."""
    import nostr_sdk  # noqa: PLC0415 (test extra: only the demo needs it)

    return str(nostr_sdk.SecretKey.parse(account_secret_hex).encrypt(password + entropy).to_bech32())


def open_backup(backup: str, password: str, entropy: str) -> str:
    """Decrypt the NIP-49 backup; return the account's public key hex."""
    import nostr_sdk  # noqa: PLC0415

    secret = nostr_sdk.EncryptedSecretKey.from_bech32(backup).decrypt(password + entropy)
    return str(nostr_sdk.Keys(secret).public_key().to_hex())


def as_json(data: object) -> str:
    return orjson.dumps(data).decode()
