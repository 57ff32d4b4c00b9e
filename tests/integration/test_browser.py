"""The demo's signup page in a real headless Chromium (Debian's, over the DevTools protocol):
signup, login as a new device, password change, deletion, with the protocol's errors shown; any
console error fails the test.

Skipped when there is no chromium binary or the JS client's packages are not installed, unless
``SIGIT_REQUIRE_BROWSER=1`` (``scripts/test`` sets it once it has installed both).
"""

from __future__ import annotations

import os

import orjson
import pytest

from dvm.demo.stack import DemoStack
from dvm.demo.web import client_ready
from tests.support.cdp import Chromium, Page, chromium_path

pytestmark = pytest.mark.slow

EMAIL = "browser@example.org"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "new horse battery staple"

missing = [
    what
    for what, ok in (("chromium", chromium_path()), ("clients/js/node_modules", client_ready()))
    if not ok
]
if missing and os.environ.get("SIGIT_REQUIRE_BROWSER") != "1":
    pytestmark = [pytestmark, pytest.mark.skip(reason=f"browser test needs {', '.join(missing)}")]


def js(value: object) -> str:
    return orjson.dumps(value).decode()


async def codes_to(page: Page, email: str) -> int:
    return int(await page.evaluate(f"document.querySelectorAll('.use-code[data-to={js(email)}]').length"))


async def use_new_code(page: Page, email: str, before: int) -> None:
    """Wait for a new code email in the page's demo inbox, click "Use code", submit it."""
    await page.wait_for(f"document.querySelectorAll('.use-code[data-to={js(email)}]').length > {before}")
    await page.evaluate(f"document.querySelector('.use-code[data-to={js(email)}]').click()")
    await page.evaluate("document.getElementById('code-form').requestSubmit()")


async def submit(page: Page, form: str, **fields: str) -> None:
    for element_id, value in fields.items():
        await page.fill(element_id.replace("_", "-"), value)
    await page.evaluate(f"document.getElementById({js(form)}).requestSubmit()")


async def settle(page: Page, state: str, timeout_s: float = 60.0) -> None:
    """Wait until the page is idle in ``state``; fail with the page's error if it shows one."""
    await page.wait_for("document.body.dataset.busy !== 'true'", timeout_s)
    error = await page.evaluate(
        "document.getElementById('error').hidden ? '' : document.getElementById('error').textContent"
    )
    assert not error, error
    await page.wait_for(f"document.body.dataset.state === {js(state)}", 5)


async def open_page(browser: Chromium, url: str) -> Page:
    page = await browser.new_page(fresh_context=True)
    await page.goto(url)
    await page.wait_for("document.body.dataset.ready === 'true' && document.body.dataset.mails", 30)
    return page


async def test_signup_page_in_chromium_signup_login_password_change_deletion(tmp_path):
    with DemoStack(tmp_path / "demo", pow_bits=(10, 8), web=True) as stack:
        await stack.wait_ready_async()
        assert stack.web is not None
        async with Chromium() as browser:
            # Device A: sign up, read the code from the demo inbox, activate.
            a = await open_page(browser, stack.web.url)
            before = await codes_to(a, EMAIL)
            await submit(a, "signup-form", signup_email=EMAIL, signup_password=PASSWORD)
            await settle(a, "code")
            await use_new_code(a, EMAIL, before)
            await settle(a, "signed-in")
            npub = await a.text("npub")
            assert npub.startswith("npub1")
            assert await a.text("account-email") == EMAIL

            # Device B: the same address again is refused with the protocol's code and message.
            b = await open_page(browser, stack.web.url)
            await submit(b, "signup-form", signup_email=EMAIL, signup_password=PASSWORD)
            await b.wait_for("!document.getElementById('error').hidden")
            assert "[email_taken]" in await b.text("error")
            assert await b.evaluate("document.getElementById('login-email').value") == EMAIL  # go to login

            await a.click("logout")
            await settle(a, "signed-out")

            # Device B logs in: the backup opens with the password, the same key comes back.
            before = await codes_to(b, EMAIL)
            await submit(b, "login-form", login_email=EMAIL, login_password=PASSWORD)
            await settle(b, "code")
            await use_new_code(b, EMAIL, before)
            await settle(b, "signed-in")
            assert await b.text("npub") == npub
            await submit(b, "password-form", new_password=NEW_PASSWORD)
            await settle(b, "signed-in")
            assert "Password changed" in await b.text("notice")

            # Device C: only the new password opens the backup; then the account is deleted.
            c = await open_page(browser, stack.web.url)
            before = await codes_to(c, EMAIL)
            await submit(c, "login-form", login_email=EMAIL, login_password=NEW_PASSWORD)
            await settle(c, "code")
            await use_new_code(c, EMAIL, before)
            await settle(c, "signed-in")
            assert await c.text("npub") == npub
            before = await codes_to(c, EMAIL)
            await c.click("delete")
            await settle(c, "code")
            await use_new_code(c, EMAIL, before)
            await settle(c, "signed-out")
            assert "deleted" in await c.text("notice")

            await submit(c, "login-form", login_email=EMAIL, login_password=NEW_PASSWORD)
            await c.wait_for("!document.getElementById('error').hidden")
            assert "[unknown_email]" in await c.text("error")

            assert browser.errors == []
