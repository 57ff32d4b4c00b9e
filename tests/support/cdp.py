"""Headless Chromium from the machine's packages, driven over the Chrome DevTools Protocol.

Nothing is downloaded: it runs the ``chromium`` binary Debian installs (``SIGIT_CHROMIUM``
overrides the path). Each ``new_page`` can open in a fresh browser context (no shared storage, a
new device) or in another page's context (a second tab: the same storage). Every console error,
uncaught exception and browser log error of every page is kept in ``Chromium.errors``, and every
long task (PerformanceObserver ``longtask``: 50 ms or more on a page's main thread) in
``Chromium.long_tasks``, so a test can fail on any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect


def chromium_path() -> str | None:
    for candidate in (os.environ.get("SIGIT_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


class Chromium:
    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or chromium_path()
        if self.executable is None:
            raise FileNotFoundError("no chromium binary (apt-get install chromium)")
        self.profile = Path(tempfile.mkdtemp(prefix="sigit-chromium-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: ClientConnection | None = None
        self.errors: list[str] = []
        self.long_tasks: list[LongTask] = []
        self.failing: set[str] = set()  # sessions whose paused requests (Fetch domain) fail
        self.tasks: set[asyncio.Task[Any]] = set()
        self.next_ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Chromium:
        args = [
            str(self.executable),
            "--headless=new",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=None)
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            msg = orjson.loads(raw)
            if "id" in msg:
                future = self.waiting.pop(msg["id"], None)
                if future is not None and not future.done():
                    if "error" in msg:
                        future.set_exception(RuntimeError(f"CDP error: {msg['error']}"))
                    else:
                        future.set_result(msg.get("result", {}))
            else:
                self._on_event(msg.get("method", ""), msg.get("params", {}), msg.get("sessionId"))

    def _on_event(self, method: str, params: dict[str, Any], session: str | None = None) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"uncaught: {description}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Runtime.bindingCalled" and params.get("name") == LONG_TASK_BINDING:
            task = orjson.loads(params.get("payload", "{}"))
            self.long_tasks.append(LongTask(float(task["ms"]), str(task["url"]), str(task["mark"])))
        elif method == "Fetch.requestPaused" and session in self.failing:
            fail = {"requestId": params["requestId"], "errorReason": "ConnectionRefused"}
            task = asyncio.get_running_loop().create_task(self.send("Fetch.failRequest", fail, session))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        assert self.ws is not None
        msg_id = next(self.next_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[msg_id] = future
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send(orjson.dumps(message).decode())
        return await asyncio.wait_for(future, 60)

    async def fail_requests(self, page: Page, pattern: str | None) -> None:
        """Make ``page``'s requests to URLs matching ``pattern`` fail (the network is down for
        them); ``None`` lets them through again."""
        if pattern is None:
            self.failing.discard(page.session)
            await page.send("Fetch.disable")
        else:
            self.failing.add(page.session)
            await page.send("Fetch.enable", {"patterns": [{"urlPattern": pattern}]})

    async def new_page(self, *, fresh_context: bool = True, like: Page | None = None) -> Page:
        """A tab: in a new browser context (a new device: no storage shared), or in ``like``'s
        context (another tab of the same browser), or in the default context."""
        params: dict[str, Any] = {"url": "about:blank"}
        context: str | None = None
        if like is not None:
            context = like.context
        elif fresh_context:
            context = (await self.send("Target.createBrowserContext"))["browserContextId"]
        if context is not None:
            params["browserContextId"] = context
        target = (await self.send("Target.createTarget", params))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))[
            "sessionId"
        ]
        page = Page(self, session, target, context)
        for domain in ("Runtime", "Log", "Page"):
            await page.send(f"{domain}.enable")
        await page.send("Runtime.addBinding", {"name": LONG_TASK_BINDING})
        await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": LONG_TASK_OBSERVER})
        return page


LONG_TASK_BINDING = "sigitLongTask"
# Runs before the page's own scripts, in every document the page loads (reloads included).
LONG_TASK_OBSERVER = f"""
new PerformanceObserver((list) => {{
  for (const task of list.getEntries()) {{
    {LONG_TASK_BINDING}(JSON.stringify({{
      ms: task.duration, url: location.href, mark: String(document.body?.dataset.state ?? ''),
    }}))
  }}
}}).observe({{ type: 'longtask', buffered: true }})
"""


@dataclass(frozen=True)
class LongTask:
    """A task that kept a page's main thread busy: its length, the page, and the demo's state."""

    ms: float
    url: str
    mark: str


class Page:
    def __init__(self, browser: Chromium, session: str, target: str = "", context: str | None = None) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.context = context

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JS expression (awaited if it is a promise); raises if it throws."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result.get("result", {}).get("value")

    async def goto(self, url: str, timeout_s: float = 30.0) -> None:
        await self.evaluate("window.sigitLeaving = true")
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("!window.sigitLeaving && document.readyState === 'complete'", timeout_s)

    async def reload(self, timeout_s: float = 30.0) -> None:
        """Reload the page (its storage stays: the same browser) and wait until it loaded."""
        await self.evaluate("window.sigitLeaving = true")
        await self.send("Page.reload", {"ignoreCache": True})
        await self.wait_for("!window.sigitLeaving && document.readyState === 'complete'", timeout_s)

    async def close(self) -> None:
        await self.browser.send("Target.closeTarget", {"targetId": self.target})

    async def wait_for(self, expression: str, timeout_s: float = 30.0) -> None:
        """Poll a JS expression until it is truthy (in JS: a DOM node counts)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(RuntimeError):
                if await self.evaluate(f"!!({expression})"):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout_s} s: {expression}")
            await asyncio.sleep(0.05)

    async def fill(self, element_id: str, value: str) -> None:
        await self.evaluate(
            f"document.getElementById({orjson.dumps(element_id).decode()}).value = "
            f"{orjson.dumps(value).decode()}"
        )

    async def click(self, element_id: str) -> None:
        await self.evaluate(f"document.getElementById({orjson.dumps(element_id).decode()}).click()")

    async def text(self, element_id: str) -> str:
        return str(
            await self.evaluate(f"document.getElementById({orjson.dumps(element_id).decode()}).textContent")
        )
