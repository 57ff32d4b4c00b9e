"""The JS client as a website developer gets it: ``npm pack`` of clients/js, a fresh site (a temp
directory) that installs the tarball next to the bundlers of clients/js/test/site (pinned in its
package-lock.json), built with esbuild (ES module and classic script), Vite and webpack 5 exactly
as the client's README says (its ``<!-- recipe: ... -->`` blocks are what this test runs), then a
real signup in Chromium against the demo stack in each build: proof of work and the key backup in
the client's worker, no console error, no long task over 200 ms. Also: the tarball holds the
LICENSE and every file its README links; nostr-tools stays one copy; a Content-Security-Policy
without ``blob:`` gives ``worker_failed``, and the README's ``workerUrl`` answer works.

Skipped (unless ``SIGIT_REQUIRE_BROWSER=1``, which ``scripts/test`` sets once Chromium and Node are
installed) without chromium, npm, the client's packages, or Node >= 20.19 (Vite 8's minimum).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from dvm.demo.stack import DemoStack
from dvm.demo.web import CLIENT_DIR, client_ready, mail_as_json
from tests.support.cdp import Chromium, Page, chromium_path

pytestmark = pytest.mark.slow

SITE = CLIENT_DIR / "test" / "site"
README = CLIENT_DIR / "README.md"
RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```sh\n(.*?)\n```", re.S)
# The page each build is loaded from (Vite makes its own index.html from the site's).
PAGES = {
    "esbuild-esm": "module.html",
    "esbuild-iife": "classic.html",
    "vite": None,
    "webpack": "webpack.html",
}
PASSWORD = "correct horse battery staple"
LONG_TASK_LIMIT_MS = 200.0


def node_version() -> tuple[int, ...]:
    if shutil.which("node") is None:
        return (0,)
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in out.strip().lstrip("v").split("."))


missing = [
    what
    for what, ok in (
        ("chromium", chromium_path()),
        ("npm", shutil.which("npm")),
        ("clients/js/node_modules", client_ready()),
        ("Node >= 20.19 (Vite 8)", node_version() >= (20, 19)),
    )
    if not ok
]
if missing and os.environ.get("SIGIT_REQUIRE_BROWSER") != "1":
    pytestmark = [pytestmark, pytest.mark.skip(reason=f"bundler test needs {', '.join(missing)}")]


def recipes() -> dict[str, str]:
    """The README's build recipes, by name, as the shell lines it shows."""
    return dict(RECIPE.findall(README.read_text()))


def run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} in {cwd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


NPM_QUIET = ["--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"]


class Site:
    """A fresh site with the packed client installed and every README recipe built into out/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = root / "site"
        self.out = root / "out"
        self.tarball = Path()
        self.sizes: dict[str, tuple[int, int]] = {}

    def make(self) -> Site:
        packed = run(["npm", "pack", "--pack-destination", str(self.root), "--loglevel=error"], CLIENT_DIR)
        self.tarball = self.root / packed.strip().splitlines()[-1]
        shutil.copytree(SITE, self.site, ignore=shutil.ignore_patterns("node_modules", "pages"))
        run(["npm", "ci", *NPM_QUIET], self.site)
        run(["npm", "install", *NPM_QUIET, str(self.tarball)], self.site)
        for name, script in recipes().items():
            shutil.rmtree(self.site / "dist", ignore_errors=True)
            run(["bash", "-euo", "pipefail", "-c", script], self.site)
            shutil.move(self.site / "dist", self.out / name)
            if PAGES.get(name):
                shutil.copy(SITE / "pages" / str(PAGES[name]), self.out / name / "index.html")
            scripts = [path.read_bytes() for path in (self.out / name).rglob("*.js")]
            self.sizes[name] = (sum(map(len, scripts)), sum(len(gzip.compress(data)) for data in scripts))
        # A site whose Content-Security-Policy refuses blob: workers: the ES module build, and
        # the package's dist/worker.js served from the site's own origin, as the README says.
        csp = self.out / "csp"
        shutil.copytree(self.out / "esbuild-esm", csp)
        shutil.copy(SITE / "pages" / "csp.html", csp / "index.html")
        shutil.copy(self.site / "node_modules" / "sigit-dvm-client" / "dist" / "worker.js", csp / "worker.js")
        return self


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(tmp_path_factory.mktemp("bundlers")).make()


@pytest.fixture
def served(site: Site) -> Iterator[dict[str, str]]:
    """Each build at the root of a site of its own (Vite's page names /assets/...)."""
    servers = {}
    for build in sorted(path for path in site.out.iterdir() if path.is_dir()):
        handler = functools.partial(_QuietHandler, directory=str(build))
        servers[build.name] = server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {name: f"http://127.0.0.1:{server.server_address[1]}" for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_the_readme_has_a_recipe_for_each_bundler_and_nothing_else():
    assert set(recipes()) == set(PAGES)


def test_the_tarball_holds_the_license_the_worker_and_every_file_its_readme_links(site: Site):
    with tarfile.open(site.tarball) as tar:
        names = {name.removeprefix("package/") for name in tar.getnames()}
        readme = tar.extractfile("package/README.md")
        assert readme is not None
        text = readme.read().decode()
    assert {"LICENSE", "README.md", "package.json", "dist/worker.js", "docs/protocol.md"} <= names
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", text) if not re.match(r"\w+:", link)]
    assert links
    for link in links:
        assert link.rstrip("/") in names or any(name.startswith(link) for name in names), link
    assert not any(name.startswith(("node_modules/", "test/site", "worker/", "tools/")) for name in names)


def test_an_installed_tarball_needs_no_checkout_and_shares_the_sites_nostr_tools(site: Site):
    installed = site.site / "node_modules" / "sigit-dvm-client"
    assert installed.is_dir() and not installed.is_symlink()
    manifest = orjson.loads((installed / "package.json").read_bytes())
    assert manifest["dependencies"]["nostr-tools"].startswith("^")
    run(["npm", "install", *NPM_QUIET, "nostr-tools@^2.25.2"], site.site)  # the site's own copy
    assert not (installed / "node_modules" / "nostr-tools").exists()  # one copy, shared
    tree = orjson.loads(run(["npm", "ls", "nostr-tools", "--json", "--all"], site.site))
    client = tree["dependencies"]["sigit-dvm-client"]["dependencies"]["nostr-tools"]
    assert client.get("deduped") or client["version"] == tree["dependencies"]["nostr-tools"]["version"]


async def loaded(page: Page) -> None:
    try:
        await page.wait_for("document.body.dataset.ready === 'true'", 30)
    except TimeoutError as exc:
        raise AssertionError(f"the page did not load: {page.browser.errors}") from exc


async def sign_up(page: Page, stack: DemoStack, email: str) -> dict[str, object]:
    await loaded(page)
    await page.evaluate(f"window.sigitSite.start({orjson.dumps(email).decode()})")
    code = await newest_code(stack, email)
    args = f"{orjson.dumps(code).decode()}, {orjson.dumps(PASSWORD).decode()}"
    result = await page.evaluate(f"window.sigitSite.finish({args})")
    assert isinstance(result, dict)
    return result


async def newest_code(stack: DemoStack, email: str) -> str:
    assert stack.catcher is not None
    for _ in range(200):
        mails = [m for m in orjson.loads(mail_as_json(list(stack.catcher.messages))) if m["to"] == email]
        if mails and mails[-1]["code"]:
            return str(mails[-1]["code"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no code mailed to {email}")


async def test_each_recipes_build_signs_up_in_chromium_without_long_tasks(
    site: Site, served: dict[str, str], tmp_path
):
    with DemoStack(tmp_path / "demo", pow_bits=(10, 8), web=True) as stack:
        await stack.wait_ready_async()
        assert stack.web is not None
        dvm = f"dvm@127.0.0.1:{stack.web.port}"
        async with Chromium() as browser:
            for name in PAGES:
                page = await browser.new_page(fresh_context=True)
                await page.goto(f"{served[name]}/index.html?dvm={dvm}")
                result = await sign_up(page, stack, f"{name}@example.org")
                assert result["email"] == f"{name}@example.org", name
                assert int(str(result["backupProgress"])) >= 10, name  # scrypt reported from the worker

            # A policy without blob: workers: a WorkerError the page can explain, then the README's
            # answer (the package's dist/worker.js from the site's origin, workerUrl) signs up.
            page = await browser.new_page(fresh_context=True)
            await page.goto(f"{served['csp']}/index.html?dvm={dvm}")
            await loaded(page)
            refused = await page.evaluate("window.sigitSite.attempt('csp@example.org')")
            assert refused["code"] == "worker_failed", refused
            assert "background work" in refused["message"]
            csp_errors = [err for err in browser.errors if "Content Security Policy" in err]
            assert csp_errors, browser.errors
            page = await browser.new_page(fresh_context=True)
            await page.goto(f"{served['csp']}/index.html?dvm={dvm}&worker=/worker.js")
            result = await sign_up(page, stack, "csp.url@example.org")
            assert result["email"] == "csp.url@example.org"

            assert [err for err in browser.errors if err not in csp_errors] == []
            sizes = ", ".join(
                f"{name} {raw / 1000:.0f} kB ({gz / 1000:.1f} kB gzip)"
                for name, (raw, gz) in site.sizes.items()
            )
            worst = max((task.ms for task in browser.long_tasks), default=0.0)
            print(f"\nbuilds: {sizes}; long tasks: {len(browser.long_tasks)}, the longest {worst:.0f} ms")
            assert not [task for task in browser.long_tasks if task.ms > LONG_TASK_LIMIT_MS], (
                browser.long_tasks
            )
