"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's server binaries, a data
directory under a temporary directory, run as an unprivileged user, on 127.0.0.1.

``scripts/bootstrap_pg`` installs the server (``apt-get install postgresql``) where the machine
allows. As root, the cluster runs as the ``postgres`` system user (initdb refuses root); as anyone
else, as that user. Authentication is ``trust`` on loopback: nothing else can reach the cluster,
and it lives only as long as the test session.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def server_bin() -> Path | None:
    """Debian's newest PostgreSQL server binaries (``/usr/lib/postgresql/<major>/bin``), or None."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*/bin") if (p / "postgres").exists()), key=lambda p: int(p.parent.name)
    )
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """One running cluster; ``url(db)`` is a ``postgresql://`` URL for a database in it."""

    directory: Path
    port: int
    user: str
    bin: Path
    databases: int = field(default=0)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database and return its URL."""
        self.databases += 1
        name = f"{prefix}_{os.getpid()}_{self.databases}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [str(self.bin / "psql"), "-XqAt", "-v", "ON_ERROR_STOP=1", "-c", sql, self.url(database)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        )
        return out.stdout

    def stop(self) -> None:
        data = str(self.directory / "data")
        _as_owner(self, [str(self.bin / "pg_ctl"), "-D", data, "-m", "immediate", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_owner(cluster_or_user: Cluster | str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    user = cluster_or_user if isinstance(cluster_or_user, str) else cluster_or_user.user
    if os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, check=False, capture_output=True, text=True)


def as_owner(cluster: Cluster, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a server command (pg_ctl) as the cluster's owner."""
    return _as_owner(cluster, argv)


def start_command(cluster: Cluster) -> list[str]:
    """``pg_ctl start`` for the cluster, as first started (a test may stop and start it again)."""
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
        f"-c unix_socket_directories={cluster.directory} "
        "-c fsync=on -c max_connections=100 -c shared_buffers=64MB"
    )
    data, log = str(cluster.directory / "data"), str(cluster.directory / "log")
    return [str(cluster.bin / "pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", "start"]


def start_cluster() -> Cluster | None:
    """Start a cluster, or return None when the server binaries are missing (the caller skips)."""
    bin_dir = server_bin()
    if bin_dir is None:
        return None
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    directory = Path(tempfile.mkdtemp(prefix="sigit-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(user)
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    data = directory / "data"
    init = _as_owner(
        user,
        [str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"],
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
    port = _free_port()
    cluster = Cluster(directory, port, user, bin_dir)
    start = _as_owner(user, start_command(cluster))
    if start.returncode != 0:
        log = (directory / "log").read_text() if (directory / "log").exists() else ""
        with contextlib.suppress(Exception):
            cluster.stop()
        raise RuntimeError(f"pg_ctl start failed: {start.stderr or start.stdout}\n{log}")
    deadline = time.monotonic() + 20
    while True:
        try:
            cluster.psql("SELECT 1")
            return cluster
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


TABLES = (
    "users",
    "sessions",
    "code_sends",
    "code_send_minutes",
    "code_failures",
    "requests",
    "mail",
    "audit",
    "blocks",
    "erased_addresses",
    "leases",
)


def empty_tables(conn) -> None:
    """Empty every table but ``meta`` (one database reused across a property test's examples)."""
    conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
