"""The demo's web server on 127.0.0.1: the signup page, the JS client it is built on, the DVM's
NIP-05 name, and the mail catcher's inbox as JSON (the demo has no real inbox).

Routes (GET and HEAD only, nothing outside these directories):
``/`` and ``/<file>`` the page (``dvm/demo/web/``); ``/client/<file>`` the package's sources
(``clients/js/src/``); ``/node_modules/<package>/<file>`` its installed dependencies;
``/.well-known/nostr.json`` NIP-05 ``dvm@<host>`` with the relay; ``/demo/mail`` the caught mail.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import orjson

PAGE_DIR = Path(__file__).resolve().parent / "web"
CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"
MODULE_PACKAGES = ("nostr-tools", "@noble", "@scure")  # what the client imports in a browser
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
}
# The code's own line in a code email's text: 6 digits, or 12 (grouped by four, or not).
CODE_LINE = re.compile(r"^    (\d{6}|\d{4} \d{4} \d{4}|\d{12})$", re.M)
LINK_LINE = re.compile(r"^(https?://\S*code=\S+)$", re.M)  # the code's link, on a line of its own


def client_ready() -> bool:
    """The page needs the package's dependencies installed (``npm ci`` in clients/js)."""
    return (CLIENT_DIR / "node_modules" / "nostr-tools" / "package.json").is_file()


def mail_as_json(messages: list[EmailMessage]) -> bytes:
    """The caught messages, oldest first: recipient, subject, the code and its link if any (the
    code as mailed: 16 digits are grouped by four), and the text."""
    out = []
    for i, message in enumerate(messages):
        body = message.get_body(("plain",))
        subject = str(message["Subject"] or "")
        text = body.get_content() if body is not None else ""
        match = CODE_LINE.search(text)
        link = LINK_LINE.search(text)
        out.append(
            {
                "id": i,
                "to": str(message["To"] or ""),
                "subject": subject,
                "code": match.group(1) if match else None,
                "link": link.group(1) if link else None,
                "text": text,
            }
        )
    return orjson.dumps(out)


class DemoWebServer:
    """A threaded HTTP server for the page; ``url`` once started, ``stop()`` to end it."""

    def __init__(self, mail: Callable[[], list[EmailMessage]], port: int = 0) -> None:
        self.nostr_json = b'{"names": {}}'
        self.mail = mail
        handler = _handler_for(self)
        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:  # the port is taken (another demo): any free one
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-web", daemon=True)

    def name_dvm(self, pubkey: str, relay_urls: list[str]) -> None:
        """Serve ``dvm@<host>`` (NIP-05) as ``pubkey`` with its relays."""
        self.nostr_json = orjson.dumps({"names": {"dvm": pubkey}, "relays": {pubkey: relay_urls}})

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> DemoWebServer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop serving; never waits more than ``timeout_s`` (its threads are daemon threads)."""
        stopper = threading.Thread(target=self._server.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout_s)
        self._server.server_close()

    def resolve(self, path: str) -> tuple[bytes, str] | None:
        """The body and content type for a request path, or None for 404."""
        if path == "/.well-known/nostr.json":
            return self.nostr_json, "application/json"
        if path == "/demo/mail":
            return mail_as_json(self.mail()), "application/json"
        if path.startswith("/client/"):
            file = _inside(CLIENT_DIR / "src", path.removeprefix("/client/"))
        elif path.startswith("/node_modules/"):
            rest = path.removeprefix("/node_modules/")
            allowed = rest.startswith(tuple(p + "/" for p in MODULE_PACKAGES))
            file = _inside(CLIENT_DIR / "node_modules", rest) if allowed else None
        else:
            file = _inside(PAGE_DIR, path.lstrip("/") or "index.html")
        if file is None or file.suffix not in TYPES:
            return None
        return file.read_bytes(), TYPES[file.suffix]


def _inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file under ``root`` (no ``..``, no symlink out)."""
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
        return None
    return candidate


def _handler_for(server: DemoWebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, *, body: bool) -> None:
            found = server.resolve(urlsplit(self.path).path)
            if found is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            data, content_type = found
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Access-Control-Allow-Origin", "*")  # NIP-05 asks for it
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the demo prints its own lines."""

    return Handler
