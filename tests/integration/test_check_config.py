"""``sigit-dvm check-config`` as an operator runs it: every bad setting named, exit 2; ``--connect``
talks to the SMTP server and each relay; operator errors elsewhere are one line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dvm.nostr.keys import SecretKey
from dvm.store import database
from tests.support.smtp import free_port

SIGIT = Path(sys.executable).parent / "sigit-dvm"


@pytest.fixture
def site(tmp_path):
    """A good configuration: settings, relays.toml, and the secrets in a credentials directory."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "dvm_key").write_text(SecretKey.generate().secret_bytes().hex() + "\n")
    (creds / "code_secret").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "relays.toml").write_text('relays = ["wss://relay.example.org"]\n')
    return tmp_path


def check(site: Path, settings: str = "", *args: str, env: dict[str, str] | None = None):
    """check-config on ``settings``; the database and relays.toml of ``site`` come through the
    environment, so ``settings`` may hold any table."""
    config = site / "sigit-dvm.toml"
    config.write_text(settings)
    base = {
        "PATH": "/usr/bin:/bin",
        "SIGIT_STORE_PATH": str(site / "db.sqlite3"),
        "SIGIT_RELAYS_RELAYS_FILE": str(site / "relays.toml"),
    }
    command = [str(SIGIT), "--config", str(config), "--credentials-dir", str(site / "credentials")]
    return subprocess.run(
        [*command, "check-config", *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=60,
    )


def test_a_good_configuration_is_ok(site):
    out = check(site)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration OK" in out.stdout and "wss://relay.example.org" in out.stdout
    data = json.loads(check(site, "", "--json").stdout)
    assert data["ok"] is True and data["errors"] == [] and len(data["pubkey"]) == 64


def in_section(section: str, line: str) -> str:
    return f"[{section}]\n{line}\n"


BAD = [
    ("service.code_ttl_s", in_section("service", "code_ttl_s = 0")),
    ("service.max_code_attempts", in_section("service", "max_code_attempts = 0")),
    ("service.pow_other_bits", in_section("service", "pow_other_bits = 300")),
    ("service.request_kind", in_section("service", "request_kind = 1")),
    ("service.created_at_window_s", in_section("service", "created_at_window_s = -5")),
    ("service.private_mode", in_section("service", 'private_mode = "sometimes"')),
    ("mail.port", in_section("mail", "port = 99999")),
    ("mail.from_address", in_section("mail", 'from_address = "not an address"')),
    ("mail.reply_to", in_section("mail", 'reply_to = "nobody"')),
    ("mail.link_template", in_section("mail", 'link_template = "https://sigit.example.org/#/verify"')),
    ("mail.templates_dir", in_section("mail", 'templates_dir = "/nonexistent"')),
    ("mail.tls", in_section("mail", 'host = "smtp.example.org"\nusername = "sigit"\npassword_file = "pw"')),
    ("mail.backend", in_section("mail", 'backend = "carrier-pigeon"')),
    ("mail.hots", in_section("mail", 'hots = "typo"')),
    ("daemon.log_level", in_section("daemon", 'log_level = "loud"')),
    ("daemon.open_workers", in_section("daemon", "open_workers = 1000")),
    ("relays.reconnect_max_s", in_section("relays", "reconnect_base_s = 10.0\nreconnect_max_s = 1.0")),
    ("health.listen", in_section("health", 'listen = "127.0.0.1:http"')),
    ("retention.unverified_s", in_section("retention", "unverified_s = 60")),
    ("service.code_window_s", in_section("service", "code_window_s = 30")),
    ("probe.email", in_section("probe", 'email = "probe at example"')),
    ("probe.dvm", in_section("probe", 'dvm = "nobody"')),
    ("probe.mailbox", in_section("probe", 'mailbox = "pop3://probe@mail.example.org"')),
    ("[nope]", "[nope]\nx = 1\n"),
]


@pytest.mark.parametrize(("setting", "text"), BAD, ids=[setting for setting, _ in BAD])
def test_each_bad_setting_is_named_and_exits_2(site, setting, text):
    out = check(site, text)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stdout.splitlines() if line.startswith("error: ")]
    assert any(line.startswith(f"error: {setting}: ") for line in errors), out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("relays", "message"),
    [
        ("relays = []", "no relays"),
        ('relays = ["wss://"]', "has no host"),
        ('relays = ["https://relay.example.org"]', "not a ws:// or wss:// URL"),
        ('relays = ["wss://relay.example.org:99999"]', "not a valid URL"),
    ],
)
def test_a_relay_list_the_daemon_cannot_use_is_refused(site, relays, message):
    (site / "relays.toml").write_text(relays + "\n")
    out = check(site)
    assert out.returncode == 2
    lines = out.stdout.splitlines()
    assert any(line.startswith("error: relays.relays_file: ") and message in line for line in lines)


def test_a_store_in_a_missing_directory_is_refused(site):
    out = check(site, env={"SIGIT_STORE_PATH": "/nonexistent/dir/db.sqlite3"})
    assert out.returncode == 2
    assert "error: store.path: directory /nonexistent/dir does not exist" in out.stdout


TEMPLATE_ERRORS = [
    (
        "welcome.txt",
        "Subject: Welcome $name\n\nHello $name, since $at.\n",
        "mail template welcome.txt uses $name, which welcome mail is never given",
    ),
    (
        "signup_code.txt",
        "Subject: Your code\n\nWelcome! (The code went missing.)\n",
        "mail template signup_code.txt must show $code",
    ),
    ("singup_code.txt", "Subject: x\n\n$code\n", "mail template singup_code.txt: unknown file name"),
    ("de/login_code.txt", "Subject: Code\n\nKein Code.\n", "mail template de/login_code.txt must show $code"),
    (
        "de/welcome.txt",
        "Subject: Willkommen\n\nHallo\n",
        "mail template de/welcome.txt has no de/welcome.html",
    ),
    ("deutsch formell/welcome.txt", "x", "mail template directory 'deutsch formell': not a language tag"),
]


@pytest.mark.parametrize(("name", "text", "message"), TEMPLATE_ERRORS, ids=[n for n, _, _ in TEMPLATE_ERRORS])
def test_a_template_that_would_dead_letter_or_mislead_is_refused(site, name, text, message):
    """A code mail without its code, a value its kind never gets, a misnamed file (silently
    ignored before), a broken language directory: each refused, naming the file."""
    templates = site / "templates"
    path = templates / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    if name == "signup_code.txt":  # its twin is fine: only the text part lost the code
        (templates / "signup_code.html").write_text("<p>$code</p>\n")
    elif name == "de/login_code.txt":
        path.with_suffix(".html").write_text("<p>$code</p>\n")
    elif name == "welcome.txt":
        (templates / "welcome.html").write_text("<p>Hello</p>\n")
    out = check(site, f'[mail]\ntemplates_dir = "{templates}"\n')
    assert out.returncode == 2, out.stdout
    assert f"error: mail.templates_dir: {message}" in out.stdout, out.stdout


def test_every_language_directory_is_checked_and_listed(site):
    templates = site / "templates"
    (templates / "pt-BR").mkdir(parents=True)
    (templates / "pt-BR" / "welcome.txt").write_text("Subject: Bem-vindo\n\nOlá $email ($at)\n$help")
    (templates / "pt-BR" / "welcome.html").write_text("<p>Olá $email ($at)</p>\n$help")
    out = check(site, f'[mail]\ntemplates_dir = "{templates}"\n', "--json")
    assert out.returncode == 0, out.stdout
    assert json.loads(out.stdout)["mail languages"] == ["default", "de", "pt-br"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("code_secret", "short", "secret code_secret: must be at least 16 characters"),
        ("dvm_key", "not a key", "secret dvm_key: the DVM key is not a valid secret key"),
    ],
)
def test_bad_secrets_are_named(site, name, content, message):
    (site / "credentials" / name).write_text(content)
    out = check(site)
    assert out.returncode == 2 and f"error: {message}" in out.stdout


def test_a_missing_smtp_password_is_named_when_a_username_is_set(site):
    out = check(site, '[mail]\nusername = "sigit"\n')
    assert out.returncode == 2
    assert "error: secret smtp_password: is not configured" in out.stdout


def test_every_problem_is_printed_at_once(site):
    out = check(site, "[service]\ncode_ttl_s = 0\nmax_code_attempts = 0\n[mail]\nport = 0\n")
    named = {line.split(":")[1].strip() for line in out.stdout.splitlines() if line.startswith("error: ")}
    assert {"service.code_ttl_s", "service.max_code_attempts", "mail.port"} <= named
    assert out.stdout.splitlines()[-1].endswith("the daemon would not start or would not serve")


def test_an_environment_override_is_named_by_its_variable(site):
    out = check(site, env={"SIGIT_MAIL_PORT": "0"})
    assert out.returncode == 2
    assert "error: mail.port: must be between 1 and 65535 (got 0)" in out.stdout
    out = check(site, env={"SIGIT_MAIL_PORT": "many"})
    assert out.returncode == 2 and "error: SIGIT_MAIL_PORT: must be of type int" in out.stdout


MISSES = [  # issue 25: each passed check-config, or was reported confusingly
    (
        in_section("mail", 'link_template = "https://sigit.example/#/v?code={code}&to={email}"'),
        {},
        "error: mail.link_template: only {code} is filled in; {email} would reach users as it is written",
    ),
    (
        in_section("store", 'url = "postgresql://sigit:hunter2@db.example/sigit"'),
        {},
        "error: store.url: holds a password, and the settings file is readable by every user",
    ),
    (
        in_section("store", 'url = "postgresql://sigit@db.example:notaport/sigit"'),
        {},
        "error: store.url: is not a valid URL (Port could not be cast to integer value",
    ),
    (
        "",
        {"SIGIT_MAIL_HOSTT": "smtp.example.org"},
        "error: SIGIT_MAIL_HOSTT: unknown environment variable (did you mean SIGIT_MAIL_HOST?)",
    ),
    ("", {"SIGIT_MAILHOST": "smtp.example.org"}, "warning: SIGIT_MAILHOST: unknown environment variable"),
    (
        in_section("mail", "from_address = 'SIGit <sigit@example.org>'"),
        {},
        "error: mail.from_address: is the address alone ('SIGit <sigit@example.org>' looks like "
        "'Name <address>'): put the name in mail.from_name",
    ),
    (
        in_section("retention", "audit_s = 1"),
        {},
        "error: retention.audit_s: must be between 60 and 3153600000 (got 1)",
    ),
    (in_section("mail", "poll_s = 0.01"), {}, "error: mail.poll_s: must be between 0.05 and 3600 (got 0.01)"),
]


@pytest.mark.parametrize(("settings", "env", "line"), MISSES, ids=[m[2].split(":")[1] for m in MISSES])
def test_what_check_config_used_to_miss_is_named(site, settings, env, line):
    out = check(site, settings, env=env)
    assert line in out.stdout, out.stdout
    assert "hunter2" not in out.stdout + out.stderr
    assert out.returncode == (2 if line.startswith("error") else 0)
    assert "e+" not in out.stdout


def test_a_secret_file_setting_pointing_nowhere_is_named_when_a_credential_stands_in(site):
    out = check(site, in_section("daemon", 'key_file = "/etc/sigit-dvm/dvm.key"'))
    assert out.returncode == 0
    assert (
        "warning: daemon.key_file: /etc/sigit-dvm/dvm.key does not exist; the dvm_key credential"
        in out.stdout
    )


def test_a_missing_credentials_directory_is_one_of_the_problems(site):
    out = subprocess.run(
        [
            str(SIGIT),
            "--credentials-dir",
            str(site / "nope"),
            "--config",
            str(site / "x.toml"),
            "check-config",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    (site / "x.toml").write_text("")
    assert out.returncode == 2 and out.stderr == ""
    assert out.stdout.startswith(
        f"error: --credentials-dir: credentials directory {site / 'nope'} does not exist"
    )


def test_libpq_errors_are_one_line(site, pg_url):
    closed = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    out = check(site, in_section("store", f'url = "{closed}"'), "--connect")
    assert out.returncode == 2
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("error: store.url: ")]
    assert "Connection refused" in line and "Is the server running" in line


def test_pow_a_browser_cannot_mine_quickly_is_a_warning_not_an_error(site):
    out = check(site, "[service]\npow_request_account_bits = 24\n")
    assert out.returncode == 0, out.stdout
    assert "warning: service.pow_request_account_bits: 24 bits takes a browser many seconds" in out.stdout


def test_connect_checks_smtp_and_each_relay(site, relay, smtp):
    (site / "relays.toml").write_text(f'relays = ["{relay.url}"]\n')
    out = check(site, f'[mail]\nhost = "127.0.0.1"\nport = {smtp.port}\n', "--connect")
    assert out.returncode == 0, out.stdout
    assert f"ok: smtp 127.0.0.1:{smtp.port}: connected (no TLS) ok (no message sent)" in out.stdout
    assert f"ok: relay {relay.url}: subscribed" in out.stdout
    assert smtp.messages == []


def test_connect_names_what_cannot_be_reached(site):
    dead = free_port()
    (site / "relays.toml").write_text(f'relays = ["ws://127.0.0.1:{dead}"]\n')
    out = check(site, f'[mail]\nhost = "127.0.0.1"\nport = {dead}\n', "--connect")
    assert out.returncode == 2
    assert f"error: mail.host: smtp 127.0.0.1:{dead}: " in out.stdout
    assert f"error: relays.relays_file: relay ws://127.0.0.1:{dead}: " in out.stdout


def run_cli(*args: str, cwd: Path):
    return subprocess.run([str(SIGIT), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_operator_errors_are_one_line_without_a_traceback(tmp_path):
    out = run_cli("keygen", str(tmp_path / "missing" / "dvm.key"), cwd=tmp_path)
    assert (out.returncode, out.stderr) == (
        2,
        f"sigit-dvm: directory {tmp_path / 'missing'} does not exist\n",
    )
    (tmp_path / "s.toml").write_text('[store]\npath = "db.sqlite3"\n')
    database.connect(tmp_path / "db.sqlite3").close()
    out = run_cli("-c", "s.toml", "backup", str(tmp_path / "missing" / "b.sqlite3"), cwd=tmp_path)
    assert (out.returncode, out.stderr) == (
        2,
        f"sigit-dvm: directory {tmp_path / 'missing'} does not exist\n",
    )
    out = run_cli("--credentials-dir", str(tmp_path / "nope"), "-c", "s.toml", "pubkey", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "credentials directory" in out.stderr


def test_output_piped_to_head_ends_quietly(tmp_path):
    (tmp_path / "s.toml").write_text('[store]\npath = "db.sqlite3"\n')
    conn = database.connect(tmp_path / "db.sqlite3")
    with conn:
        conn.executemany(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, 'a', 'x', 'y', ?)",
            [(1_800_000_000 + i, "z" * 100) for i in range(3000)],
        )
    conn.close()
    out = subprocess.run(
        f"{SIGIT} -c s.toml audit list --limit 3000 | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.stdout.count("\n") == 1
    assert out.stderr == "", out.stderr


@pytest.mark.parametrize(
    ("settings", "relays", "message"),
    [
        (
            '[mail]\ntemplates_dir = "/nonexistent"\n',
            'relays = ["wss://relay.example.org"]',
            "mail.templates_dir",
        ),
        ("", "relays = []", "no relays"),
        ("", 'relays = ["wss://"]', "has no host"),
        ("[service]\ncode_ttl_s = 0\n", 'relays = ["wss://relay.example.org"]', "service.code_ttl_s"),
    ],
)
def test_run_refuses_what_check_config_calls_an_error_in_one_line(site, settings, relays, message):
    (site / "relays.toml").write_text(relays + "\n")
    config = site / "sigit-dvm.toml"
    config.write_text(settings)
    env = {
        "PATH": "/usr/bin:/bin",
        "SIGIT_STORE_PATH": str(site / "db.sqlite3"),
        "SIGIT_RELAYS_RELAYS_FILE": str(site / "relays.toml"),
    }
    command = [str(SIGIT), "--config", str(config), "--credentials-dir", str(site / "credentials"), "run"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr
