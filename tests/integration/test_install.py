"""The install guide as written: its commands, copied from docs/operations.md, run under a temporary
root; then the daemon runs as an unprivileged user the way the unit starts it (credentials in
``$CREDENTIALS_DIRECTORY``, the state directory, the umask) and serves a signup; root's CLI next to
it reads the same secrets. ``systemd-analyze verify`` checks the unit where the tool exists.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.relay import wait_until
from tests.support.sdk_browser import SdkBrowser
from tests.support.smtp import Authenticator, Catcher, self_signed, server_tls, start_smtp

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
OPERATIONS = REPO / "docs" / "operations.md"
UNIT = REPO / "scripts" / "sigit-dvm.service"
PROBE_UNIT = REPO / "scripts" / "sigit-dvm-probe.service"
PROBE_TIMER = REPO / "scripts" / "sigit-dvm-probe.timer"
BIN = Path(sys.executable).parent
SERVICE_UID = 61234  # stands in for the unit's DynamicUser=
SMTP_PASSWORD = "correct horse battery staple"
ISO_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def documented_install() -> str:
    """The first ``sh`` block of the install section, as an operator would paste it."""
    section = OPERATIONS.read_text().split("## Install as a systemd service, step by step", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


def localise(text: str, root: Path) -> str:
    """Move every absolute path of the guide under ``root`` (the code is this checkout)."""
    for old, new in (
        ("/opt/sigit-dvm/.venv/bin/", f"{BIN}/"),
        ("/opt/sigit-dvm/relays.toml", str(REPO / "relays.toml")),
        ("/opt/sigit-dvm/scripts/", f"{REPO}/scripts/"),
        ("/etc/systemd/system/", f"{root}/etc/systemd/system/"),
        ("/usr/local/bin/", f"{root}/usr/local/bin/"),
        ("/etc/sigit-dvm", f"{root}/etc/sigit-dvm"),
        ("/var/lib/sigit-dvm", f"{root}/var/lib/sigit-dvm"),
        ("/run/sigit-dvm-probe", f"{root}/run/sigit-dvm-probe"),
    ):
        text = text.replace(old, new)
    return text


def install_script(root: Path, relay_url: str) -> str:
    """The guide's commands without sudo, with what a test cannot do (clone, pip, systemctl) left
    out and the two manual edits (the password, the relay list) made."""
    out = []
    for line in documented_install().splitlines():
        if line.startswith(("sudo git clone", "sudo python3 -m venv", "sudo /opt/sigit-dvm/.venv/bin/pip")):
            continue
        if line.startswith(("sudo systemctl", "journalctl")):
            continue
        if line.startswith("sudoedit "):
            target = line.split()[1]
            out.append(f"printf '%s\\n' {shlex.quote(SMTP_PASSWORD)} > {target}")
            continue
        out.append(line.removeprefix("sudo "))
        if "relays.toml /etc/sigit-dvm/relays.toml" in line:  # "then edit the list"
            out.append(f"printf 'relays = [\"%s\"]\\n' {relay_url} > /etc/sigit-dvm/relays.toml")
    return localise("\n".join(out), root)


def unit_values(key: str, root: Path | None = None, unit: Path = UNIT) -> list[str]:
    """``key``'s values in the unit, and with ``root`` in the drop-ins installed under it too."""
    texts = [unit.read_text()]
    if root is not None:
        texts += [p.read_text() for p in sorted(root.glob("etc/systemd/system/sigit-dvm.service.d/*.conf"))]
    return [line.split("=", 1)[1] for t in texts for line in t.splitlines() if line.startswith(f"{key}=")]


def service_python(root: Path) -> tuple[str, dict[str, str]]:
    """An interpreter the service's user can run, with this checkout importable: the venv's own,
    or (when it lives where that user cannot reach, e.g. under /root) the system's python of the
    same version with the venv's packages on PYTHONPATH, or, when the checkout itself is out of
    that user's reach (a clone in a 0700 ``mktemp -d``), the same with a copy of the package and
    the venv's packages under ``root`` (hard links where the file system allows). The daemon
    spawns its opening worker with the same interpreter, so the probe spawns one too."""
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    system = str(Path(f"/usr/bin/python3.{sys.version_info.minor}"))
    candidates = [(sys.executable, {}), (system, {"PYTHONPATH": f"{REPO}:{site}"})]
    for python, env in candidates:
        if _importable(python, env):
            return python, env
    mirror = root / "checkout"
    shutil.copytree(REPO / "dvm", mirror / "dvm", ignore=shutil.ignore_patterns("__pycache__"))
    try:
        shutil.copytree(site, mirror / "site-packages", copy_function=os.link)
    except (OSError, shutil.Error):  # another file system: copy
        shutil.rmtree(mirror / "site-packages", ignore_errors=True)
        shutil.copytree(site, mirror / "site-packages")
    env = {"PYTHONPATH": f"{mirror}:{mirror / 'site-packages'}"}
    if _importable(system, env):
        return system, env
    pytest.skip(f"no python that uid {SERVICE_UID} can run with this checkout importable")


def _importable(python: str, env: dict[str, str]) -> bool:
    """Whether the service's user can import the daemon (and spawn a child that can) with it."""
    probe = (
        "import subprocess, sys; "
        "sys.exit(subprocess.run([sys.executable, '-c', 'import dvm.cli']).returncode)"
    )
    run = subprocess.run(
        as_service_user(python, "-c", probe), capture_output=True, env=os.environ | env, timeout=60
    )
    return run.returncode == 0


def as_service_user(*command: str) -> list[str]:
    uid = str(SERVICE_UID)
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--", *command]


@pytest.fixture
def world_root():
    """A root directory an unprivileged user can traverse (pytest's tmp_path is 0700 root's)."""
    root = Path(tempfile.mkdtemp(prefix="sigit-install-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    unit = tmp_path / "sigit-dvm.service"
    unit.write_text(UNIT.read_text().replace("/opt/sigit-dvm/.venv/bin/", f"{BIN}/"))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert str(unit) not in out.stderr + out.stdout, out.stderr  # no "Unknown key" or similar


def test_the_probe_units_pass_systemd_analyze_verify_and_share_the_daemons_user(tmp_path):
    """The probe runs as the daemon's dynamic user (the same name: the same user while both run)
    with its state directory, so it reads the outbox; it loads no credential."""
    assert unit_values("User", unit=PROBE_UNIT) == ["sigit-dvm"] == [UNIT.stem]
    assert unit_values("StateDirectory", unit=PROBE_UNIT) == unit_values("StateDirectory")
    assert unit_values("LoadCredential", unit=PROBE_UNIT) == []
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    for source in (PROBE_UNIT, PROBE_TIMER):
        (tmp_path / source.name).write_text(
            source.read_text().replace("/opt/sigit-dvm/.venv/bin/", f"{BIN}/")
        )
    units = [str(tmp_path / PROBE_UNIT.name), str(tmp_path / PROBE_TIMER.name)]
    out = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path) not in out.stderr + out.stdout, out.stderr


def test_the_unit_is_hardened_by_systemd_analyze_security():
    """The exposure score stays low, and the settings this round added are in force."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = out.stdout
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", report).group(1))
    documented = re.search(r"hardening scores ([0-9.]+)", OPERATIONS.read_text()).group(1)
    assert f"security --offline=true scripts/sigit-dvm.service: {documented}," in UNIT.read_text()
    assert score <= float(documented), report  # the guide, the unit's comment and the tool agree
    passed = {line.split()[1].split("=")[0] for line in report.splitlines() if line.startswith("✓")}
    assert {"ProtectProc", "ProcSubset", "PrivateUsers", "PrivateMounts", "ProtectSystem"} <= passed, report
    unit = UNIT.read_text()
    for setting in ("MemoryMax=", "TasksMax=", "IPAddressDeny="):
        assert f"\n{setting}" in unit, setting


def test_the_guide_and_the_unit_agree_on_paths():
    guide = documented_install()
    assert unit_values("ExecStart") == [
        "/opt/sigit-dvm/.venv/bin/sigit-dvm --config /etc/sigit-dvm/sigit-dvm.toml run"
    ]
    for credential in unit_values("LoadCredential"):
        name, path = credential.split(":")
        assert path == f"/etc/sigit-dvm/credentials/{name}" and path in guide
    assert unit_values("StateDirectory") == ["sigit-dvm"]
    assert 'path = "/var/lib/sigit-dvm/sigit-dvm.sqlite3"' in guide


async def test_the_documented_install_serves_a_signup_as_an_unprivileged_user(world_root, relay):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run the daemon as another user")
    root = world_root
    python, python_env = service_python(root)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    # systemd's StateDirectory=: the dynamic user's own 0700 directory (made at the unit's start).
    state = root / "var" / "lib" / "sigit-dvm"
    state.mkdir(parents=True)
    os.chown(state, SERVICE_UID, SERVICE_UID)
    state.chmod(0o700)
    # The SMTP server the guide's settings point at: STARTTLS and AUTH, with a certificate the
    # daemon trusts through SSL_CERT_FILE.
    cert, key = self_signed(root)
    cert.chmod(0o644)
    catcher = Catcher()
    smtp = start_smtp(catcher, starttls=server_tls(cert, key), auth=Authenticator("sigit", SMTP_PASSWORD))
    env = {
        "PATH": os.environ["PATH"],
        "SIGIT_MAIL_HOST": "127.0.0.1",
        "SIGIT_MAIL_PORT": str(smtp.port),
        "SSL_CERT_FILE": str(cert),
    }
    daemon = None
    try:
        steps = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "umask 022\n" + install_script(root, relay.url)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert steps.returncode == 0, steps.stdout + steps.stderr
        assert "configuration OK" in steps.stdout
        assert "ok: smtp 127.0.0.1" in steps.stdout and "STARTTLS, AUTH as sigit ok" in steps.stdout
        assert f"ok: relay {relay.url}: subscribed" in steps.stdout
        etc = root / "etc" / "sigit-dvm"
        modes = {p.relative_to(etc).as_posix(): p.stat().st_mode & 0o777 for p in [etc, *etc.rglob("*")]}
        assert modes == {
            ".": 0o755,
            "sigit-dvm.toml": 0o644,
            "relays.toml": 0o644,
            "credentials": 0o700,
            "credentials/dvm_key": 0o600,
            "credentials/code_secret": 0o600,
            "credentials/smtp_password": 0o600,
        }
        assert (root / "etc" / "systemd" / "system" / "sigit-dvm.service").read_text() == UNIT.read_text()

        # What systemd does at start: copy each LoadCredential= file into a directory only the
        # service's user reads, set $CREDENTIALS_DIRECTORY, run ExecStart= in WorkingDirectory=
        # with UMask= as that user.
        creds = root / "run" / "credentials" / "sigit-dvm.service"
        creds.mkdir(parents=True)
        assert (root / "usr" / "local" / "bin" / "sigit-dvm").resolve() == (BIN / "sigit-dvm").resolve()
        assert sorted(c.split(":")[0] for c in unit_values("LoadCredential", root)) == [
            "code_secret",
            "dvm_key",
            "smtp_password",  # from the guide's drop-in
        ]
        for credential in unit_values("LoadCredential", root):
            name, path = credential.split(":")
            # The drop-in was written by the localised guide: its path is under root already.
            shutil.copyfile(path if path.startswith(str(root)) else localise(path, root), creds / name)
            os.chown(creds / name, SERVICE_UID, SERVICE_UID)
            (creds / name).chmod(0o400)
        os.chown(creds, SERVICE_UID, SERVICE_UID)
        creds.chmod(0o500)
        (exec_start,) = unit_values("ExecStart")
        (umask,) = unit_values("UMask")
        (workdir,) = unit_values("WorkingDirectory")
        log = root / "daemon.log"
        with log.open("wb") as sink:
            program, *arguments = shlex.split(exec_start)
            assert program == "/opt/sigit-dvm/.venv/bin/sigit-dvm"
            daemon = subprocess.Popen(
                as_service_user(python, "-m", "dvm.cli", *(localise(a, root) for a in arguments)),
                cwd=localise(workdir, root),
                env=env | python_env | {"CREDENTIALS_DIRECTORY": str(creds)},
                stdout=sink,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.umask(int(umask, 8)),  # noqa: PLW1509 (the unit's UMask=)
            )
        await wait_until(lambda: "serving as" in log.read_text() or daemon.poll() is not None, timeout_s=30)
        assert daemon.poll() is None, log.read_text()

        # Root's CLI next to the service reads the same secrets, from the same files.
        cli = [str(BIN / "sigit-dvm"), "--config", str(etc / "sigit-dvm.toml")]
        cli += ["--credentials-dir", str(etc / "credentials")]
        shown = subprocess.run(
            [*cli, "pubkey", "--json"], capture_output=True, text=True, env=env, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        pubkey = json.loads(shown.stdout)["pubkey"]
        version = importlib.metadata.version("sigit-dvm")
        assert f"INFO sigit.daemon: sigit-dvm {version} serving as {pubkey}" in log.read_text()

        async with SdkBrowser([relay.url], pubkey, pow_bits=16) as browser:
            assert (await browser.call("request_account", {"email": "ana@example.org"})).code == "ok"
        await wait_until(lambda: len(catcher.messages) >= 1, timeout_s=30)
        assert catcher.messages[0]["To"] == "ana@example.org"
        sessions = subprocess.run(
            [*cli, "sessions", "list", "--json"], capture_output=True, text=True, env=env, timeout=60
        )
        assert sessions.returncode == 0, sessions.stderr
        (session,) = json.loads(sessions.stdout)
        assert session["email"] == "ana@example.org"
        # A command that needs the code secret, as the issue found failing next to the service.
        resend = subprocess.run(
            [*cli, "sessions", "resend-code", session["pubkey"]],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert resend.returncode == 0, resend.stderr
        await wait_until(lambda: len(catcher.messages) >= 2, timeout_s=30)  # the daemon's worker sent it

        # The probe, as its timer's unit runs it: the daemon's user, no credential (the guide wrote
        # the DVM's npub into [probe]), its metrics in its runtime directory; the database read.
        runtime = root / "run" / "sigit-dvm-probe"
        runtime.mkdir(parents=True)
        os.chown(runtime, SERVICE_UID, SERVICE_UID)
        (probe_start,) = unit_values("ExecStart", unit=PROBE_UNIT)
        program, *arguments = shlex.split(probe_start)
        assert program == "/opt/sigit-dvm/.venv/bin/sigit-dvm"
        (probe_dir,) = unit_values("WorkingDirectory", unit=PROBE_UNIT)
        probed = subprocess.run(
            as_service_user(python, "-m", "dvm.cli", *(localise(a, root) for a in arguments), "--json"),
            cwd=localise(probe_dir, root),
            env=env | python_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probed.returncode == 0, probed.stdout + probed.stderr
        report = json.loads(probed.stdout)
        steps = {step["step"]: step["status"] for step in report["steps"]}
        assert steps == {
            "dvm": "ok",
            "announce": "ok",
            "publish": "ok",
            "reply": "ok",
            "outbox": "ok",
            "mailbox": "skipped",  # the guide's probe has no mailbox to read
            "verify": "skipped",
        }, report
        assert report["email"] == "probe@sigit.example.org"
        metrics = (runtime / "sigit-dvm-probe.prom").read_text()
        assert "sigit_probe_success 1" in metrics
        # Root's CLI next to the service runs it too, as "Probe" shows (the code it mails now
        # joins the live one of the probe before: codes are shared per mailbox).
        again = subprocess.run(
            [*cli, "probe", "--json"], capture_output=True, text=True, env=env, timeout=120
        )
        assert again.returncode == 0, again.stdout + again.stderr
        outbox = next(s for s in json.loads(again.stdout)["steps"] if s["step"] == "outbox")
        assert outbox["status"] == "ok" and outbox["new_code"] is False
        await wait_until(
            lambda: any(m["To"] == "probe@sigit.example.org" for m in catcher.messages), timeout_s=30
        )

        database = state / "sigit-dvm.sqlite3"
        assert database.stat().st_uid == SERVICE_UID and database.stat().st_mode & 0o777 == 0o600

        daemon.send_signal(signal.SIGTERM)  # systemctl stop
        assert daemon.wait(timeout=30) == 0, log.read_text()
        lines = log.read_text().splitlines()
        assert lines and all(ISO_LINE.match(line) for line in lines), lines
        assert not [line for line in lines if " WARNING " in line or " ERROR " in line], lines
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        smtp.stop()


def test_the_daemon_refuses_unreadable_settings_in_one_line(world_root):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run as another user")
    etc = world_root / "etc"
    etc.mkdir(mode=0o700)  # the old guide's mode: the dynamic user cannot read the settings
    (etc / "sigit-dvm.toml").write_text("")
    python, python_env = service_python(world_root)
    out = subprocess.run(
        as_service_user(python, "-m", "dvm.cli", "--config", str(etc / "sigit-dvm.toml"), "run"),
        env=os.environ | python_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"sigit-dvm: cannot read settings file {etc / 'sigit-dvm.toml'}: Permission denied"
    ]
