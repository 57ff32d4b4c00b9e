"""``scripts/demo``: run sigit-dvm on an embedded default and walk a browser through it.

Starts a local nostr-relay, a mail catcher and ``sigit-dvm run`` (a real subprocess, with its
settings file, key file and SQLite database in a fresh directory), then plays a SIGit browser:
signup, code from the email, activation with a real NIP-49 backup, and login on a new device that
recovers the key. ``--once`` exits after the walkthrough; otherwise everything stays up until
Ctrl-C so you can point your own client at it, and the signup page built on the JS client
(clients/js) is served on http://127.0.0.1:8780/.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from dvm.demo.browser import Browser, as_json, make_backup, open_backup
from dvm.demo.catcher import MailCatcher
from dvm.demo.stack import DemoStack
from dvm.nostr import bech32
from dvm.nostr.keys import SecretKey
from dvm.protocol.intake import DEFAULT_REQUEST_KIND
from dvm.protocol.methods import Method

EMAIL = "ana@example.org"
PASSWORD = "correct horse battery staple"  # noqa: S105 (the simulated user's password)
WEB_PORT = 8780


def say(text: str = "") -> None:
    print(text, flush=True)


def step(n: int, text: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    say(f"\n{bold}[{n}] {text}{plain}")


def show_mail(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    say(f"    -- email to {message['To']}: {message['Subject']}")
    for line in text.strip().splitlines()[:14]:
        say(f"    | {line}")
    match = re.search(r"^    (\d{6})$", text, re.M)
    return match.group(1) if match else ""


async def walkthrough(relay_url: str, dvm_pubkey: str, catcher: MailCatcher) -> None:
    async with Browser(relay_url, dvm_pubkey, DEFAULT_REQUEST_KIND) as browser:
        step(1, f"Signup: the browser makes an ephemeral key and asks for an account for {EMAIL}")
        reply, mined = await browser.call(Method.REQUEST_ACCOUNT, {"email": EMAIL})
        say(f"    request_account -> {reply.code}   (PoW 16 bits mined in {mined:.2f} s)")
        code = show_mail(catcher.wait_for(1))

        step(2, "Verify: the code from the email goes back, encrypted; the DVM returns the entropy")
        reply, _ = await browser.call(Method.VERIFY_CODE, {"code": code})
        assert reply.result is not None, reply.error
        entropy = str(reply.result["entropy"])
        say(f"    verify_code({code}) -> {reply.code}, entropy {entropy[:16]}...")

        step(3, "Activate: the browser creates the user's real key and a NIP-49 backup (password + entropy)")
        account = SecretKey.generate()
        backup = make_backup(account.secret_bytes().hex(), PASSWORD, entropy)
        activation = {"pubkey": account.pubkey_hex, "backup": backup}
        reply, _ = await browser.call(Method.ACTIVATE, activation, seal=account)  # sealed by the new key
        say(f"    activate({bech32.npub(account.pubkey)[:24]}..., {backup[:24]}...) -> {reply.code}")
        show_mail(catcher.wait_for(2))

        step(4, "Someone tries to sign up again with the same address")
        browser.new_session()
        reply, _ = await browser.call(Method.REQUEST_ACCOUNT, {"email": EMAIL})
        say(f"    request_account -> {reply.code}: {as_json(reply.error)}")

        step(5, "Login on a new device: a new ephemeral key asks to log in")
        browser.new_session()
        reply, mined = await browser.call(Method.REQUEST_LOGIN, {"email": EMAIL})
        say(f"    request_login -> {reply.code}   (PoW 16 bits mined in {mined:.2f} s)")
        code = show_mail(catcher.wait_for(3))
        reply, _ = await browser.call(
            Method.VERIFY_CODE, {"code": "000000" if code != "000000" else "111111"}
        )
        say(f"    verify_code(wrong) -> {reply.code} {as_json(reply.error)}")
        reply, _ = await browser.call(Method.VERIFY_CODE, {"code": code})
        assert reply.result is not None, reply.error
        say(f"    verify_code({code}) -> {reply.code}: entropy, pubkey and backup returned")
        recovered = open_backup(str(reply.result["backup"]), PASSWORD, str(reply.result["entropy"]))
        assert recovered == account.pubkey_hex, "the backup did not open to the account key"
        npub = bech32.npub(account.pubkey)[:24]
        say(f"    the browser opens the backup with the password: key {npub}... recovered")
        show_mail(catcher.wait_for(4))

        step(6, "Account methods (here status) are signed by the account key itself")
        reply, _ = await browser.call(Method.STATUS, {}, key=account)
        assert reply.result is not None, reply.error
        say(f"    status -> {reply.code}: {reply.result['email']}, activated {reply.result['activated']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--once", action="store_true", help="run the walkthrough and exit (for CI and scripts)"
    )
    parser.add_argument(
        "--dir", help="working directory, kept (default: a new temporary one, removed at the end)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--web-port", type=int, default=WEB_PORT, help=f"the signup page's port (default {WEB_PORT}; 0: any)"
    )
    args = parser.parse_args(argv)
    # SIGTERM (kill, a service manager) and SIGHUP (the terminal closed) stop it like Ctrl-C does:
    # through the cleanup below, so no relay or daemon is left running.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    temporary = args.dir is None  # mkdtemp: 0700, and removed at the end (it holds the DVM key)
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="sigit-demo-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"sigit-dvm demo in {workdir}")
    stack = DemoStack(workdir, web=not args.once, web_port=args.web_port)
    failed = False
    try:
        stack.start()
        assert stack.relay is not None and stack.catcher is not None and stack.daemon is not None
        say(f"relay    {stack.relay.url}")
        say(f"mail     smtp://127.0.0.1:{stack.catcher.port} (caught and printed here)")
        say(f"daemon   sigit-dvm -c {stack.config} run   (log: {workdir / 'daemon.log'})")
        say(f"DVM key  {stack.pubkey}")
        stack.wait_ready()
        started = time.monotonic()
        asyncio.run(walkthrough(stack.relay.url, stack.pubkey, stack.catcher))
        elapsed = time.monotonic() - started
        say(f"\nWalkthrough complete in {elapsed:.1f} s: signup, activation and login all worked.")
        if not args.once:
            say(f"\nStill running. Point a client at {stack.relay.url}, kind {DEFAULT_REQUEST_KIND},")
            say(f"DVM {stack.pubkey}.")
            if stack.web is not None:
                say(f"Signup page: {stack.web.url}   (NIP-05 name dvm@127.0.0.1:{stack.web.port})")
            else:
                say("Signup page: not served (its packages are missing: `npm ci` in clients/js).")
            say("New emails are printed below. Ctrl-C stops everything.")
            shown = len(stack.catcher.messages)
            while stack.daemon.poll() is None:
                time.sleep(0.5)
                while len(stack.catcher.messages) > shown:
                    shown += 1
                    show_mail(stack.catcher.messages[shown - 1])
        return 0
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        failed = True
        say(f"\ndemo failed: {exc!r}; daemon log: {workdir / 'daemon.log'}")
        return 1
    finally:
        stack.stop()
        if temporary and not args.keep and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
            say(f"removed {workdir}")
        elif temporary:
            say(f"kept {workdir} ({'--keep' if args.keep else 'for its logs'}; the key in it is 0600)")


if __name__ == "__main__":
    sys.exit(main())
