"""The demo's signup page in a real headless Chromium (Debian's, over the DevTools protocol): a code
signup, a register signup with a reload at the code step (the flow resumes), a login on a new
profile with a wrong password then the right one (no new code), the emailed link opened in a new
tab (the saved flow resumes there), a password change, a deletion, and the retry after the service
could not be reached. Any console error fails the test, and so does any long task over 200 ms on
a page's main thread (PerformanceObserver ``longtask``): nothing may freeze the page.

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
REGISTERED = "registered@example.org"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "new horse battery staple"
LONG_TASK_LIMIT_MS = 200.0

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


async def wait_code(page: Page, email: str, before: int) -> None:
    await page.wait_for(f"document.querySelectorAll('.use-code[data-to={js(email)}]').length > {before}")


async def use_new_code(page: Page, email: str, before: int) -> None:
    """Wait for a new code email in the page's demo inbox, click "Use code", submit it."""
    await wait_code(page, email, before)
    await page.evaluate(f"document.querySelector('.use-code[data-to={js(email)}]').click()")
    await page.evaluate("document.getElementById('code-form').requestSubmit()")


async def submit(page: Page, form: str, **fields: str) -> None:
    for element_id, value in fields.items():
        await page.fill(element_id.replace("_", "-"), value)
    await page.evaluate(f"document.getElementById({js(form)}).requestSubmit()")


async def error_code(page: Page) -> str:
    return str(
        await page.evaluate(
            "document.getElementById('error').hidden ? '' : document.getElementById('error').dataset.code"
        )
    )


async def settle(page: Page, state: str, timeout_s: float = 60.0) -> None:
    """Wait until the page is idle in ``state``; fail with the page's error if it shows one."""
    await page.wait_for("document.body.dataset.busy !== 'true'", timeout_s)
    code = await error_code(page)
    assert not code, f"{code}: {await page.text('error')}"
    await page.wait_for(f"document.body.dataset.state === {js(state)}", 5)


async def focused(page: Page) -> str:
    return str(await page.evaluate("document.activeElement?.id ?? ''"))


async def open_page(browser: Chromium, url: str, like: Page | None = None) -> Page:
    page = await browser.new_page(fresh_context=True, like=like)
    await page.goto(url)
    await page.wait_for("document.body.dataset.ready === 'true' && document.body.dataset.mails", 30)
    return page


async def test_demo_page_signups_resume_link_wrong_password_and_long_tasks(tmp_path):
    with DemoStack(tmp_path / "demo", pow_bits=(10, 8), web=True) as stack:
        await stack.wait_ready_async()
        assert stack.web is not None
        url = stack.web.url
        async with Chromium() as browser:
            # Device A: a code signup (request_account), the code from the demo inbox, activate.
            a = await open_page(browser, url)
            before = await codes_to(a, EMAIL)
            await submit(a, "signup-form", signup_email=EMAIL, signup_password=PASSWORD)
            await settle(a, "code")
            assert await focused(a) == "code"  # the new step's first field
            await use_new_code(a, EMAIL, before)
            await settle(a, "signed-in")
            assert await focused(a) == "account-title"
            npub = await a.text("npub")
            assert npub.startswith("npub1")
            assert await a.text("account-email") == EMAIL

            # Device B: the same address is taken (go to login), with a message for people.
            b = await open_page(browser, url)
            await submit(b, "signup-form", signup_email=EMAIL, signup_password=PASSWORD)
            await b.wait_for("!document.getElementById('error').hidden")
            assert await error_code(b) == "email_taken"
            assert "log in" in (await b.text("error-text")).lower()
            assert await b.evaluate("document.getElementById('login-email').value") == EMAIL

            # Device B: a register signup; reloaded at the code step, the saved flow resumes and the
            # password (which the reload forgot) opens the key made before the reload.
            await b.click("flow-register")
            before = await codes_to(b, REGISTERED)
            await submit(b, "signup-form", signup_email=REGISTERED, signup_password=PASSWORD)
            await settle(b, "code")
            await b.reload()
            await b.wait_for("document.body.dataset.ready === 'true' && document.body.dataset.mails", 30)
            await settle(b, "code")
            assert REGISTERED in await b.text("code-help")
            await use_new_code(b, REGISTERED, before)
            await settle(b, "password")
            assert await focused(b) == "unlock-password"
            assert await b.evaluate("document.getElementById('unlock-username').value") == REGISTERED
            await submit(b, "unlock-form", unlock_password=PASSWORD)
            await settle(b, "signed-in")
            assert await b.text("account-email") == REGISTERED

            # Device C, a new profile: a login with a wrong password; the code is kept, the
            # right password opens the key without a new code.
            c = await open_page(browser, url)
            before = await codes_to(c, EMAIL)
            await submit(c, "login-form", login_email=EMAIL, login_password="not the password")
            await settle(c, "code")
            await use_new_code(c, EMAIL, before)
            await c.wait_for("document.body.dataset.busy !== 'true'", 60)
            assert await error_code(c) == "wrong_password"
            await c.wait_for("document.body.dataset.state === 'password'", 5)
            await submit(c, "unlock-form", unlock_password=PASSWORD)
            await settle(c, "signed-in")
            assert await c.text("npub") == npub
            assert await codes_to(c, EMAIL) == before + 1  # no new code was asked for
            await submit(c, "password-form", new_password=NEW_PASSWORD)
            await settle(c, "signed-in")
            assert "Password changed" in await c.text("notice")

            # Device D: a login whose emailed link is opened in a new tab of the same browser:
            # the saved flow resumes there, the code from the link is used, the password asked.
            d = await open_page(browser, url)
            before = await codes_to(d, REGISTERED)
            await submit(d, "login-form", login_email=REGISTERED, login_password=PASSWORD)
            await settle(d, "code")
            await wait_code(d, REGISTERED, before)
            link = str(
                await d.evaluate(f"document.querySelector('.mail-link[data-to={js(REGISTERED)}]').href")
            )
            assert "#/verify?code=" in link
            d2 = await open_page(browser, link, like=d)
            await settle(d2, "password")
            assert "#/verify" not in str(await d2.evaluate("location.href"))  # the spent code is gone
            await submit(d2, "unlock-form", unlock_password=PASSWORD)
            await settle(d2, "signed-in")
            assert await d2.text("account-email") == REGISTERED
            await settle(d, "signed-out")  # the first tab learns the flow ended elsewhere
            assert "another tab" in await d.text("notice")

            # The register account is deleted from the second tab (a code to its address first).
            before = await codes_to(d2, REGISTERED)
            await d2.click("delete")
            await settle(d2, "code")
            await use_new_code(d2, REGISTERED, before)
            await settle(d2, "signed-out")
            assert "deleted" in await d2.text("notice")
            await submit(d2, "login-form", login_email=REGISTERED, login_password=PASSWORD)
            await d2.wait_for("!document.getElementById('error').hidden")
            assert await error_code(d2) == "unknown_email"

            # A page that cannot reach the service offers to try again, and then works.
            e = await browser.new_page(fresh_context=True)
            await browser.fail_requests(e, "*nostr.json*")
            await e.goto(url)
            await e.wait_for("document.body.dataset.ready === 'offline'", 30)
            assert await error_code(e) == "discovery_failed"
            assert await e.evaluate("document.body.dataset.state") == "offline"
            await browser.fail_requests(e, None)
            errors_before_retry = len(browser.errors)
            await e.click("reconnect")
            await e.wait_for("document.body.dataset.ready === 'true'", 30)
            await settle(e, "signed-out")

            expected = [err for err in browser.errors if "nostr.json" in err or "ERR_FAILED" in err]
            assert browser.errors == expected, browser.errors
            assert len(browser.errors) <= errors_before_retry
            worst = max((task.ms for task in browser.long_tasks), default=0.0)
            tasks = ", ".join(f"{task.ms:.0f} ms ({task.mark or 'loading'})" for task in browser.long_tasks)
            print(f"\nlong tasks: {len(browser.long_tasks)}, the longest {worst:.0f} ms: {tasks}")
            too_long = [task for task in browser.long_tasks if task.ms > LONG_TASK_LIMIT_MS]
            assert not too_long, too_long
