"""A database not in UTF8 (``createdb`` on a cluster initialised under the C/POSIX locale is
SQL_ASCII; under a Latin-1 locale it is LATIN1): PostgreSQL then hands non-ASCII text back as
bytes, or psycopg cannot encode it at all. A stranger's non-ASCII address (which the protocol
accepts) then breaks requests that SQLite serves."""

from __future__ import annotations

import pytest

from dvm.store import database, postgres
from tests.support.flows import Harness, new_client

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("encoding", ["SQL_ASCII", "LATIN1"])
def test_a_non_utf8_database_is_refused_or_serves_non_ascii_addresses(pg_cluster, encoding):
    name = f"enc_{encoding.lower()}_{pg_cluster.databases}"
    pg_cluster.databases += 1
    pg_cluster.psql(
        f"CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    )
    try:
        conn = postgres.connect(pg_cluster.url(name))
    except database.StoreError as exc:  # refused at connect, with a reason: fine
        assert "UTF8" in str(exc)
        return
    h = Harness(conn)
    client = new_client(1)
    reply = h.send(client, "request_account", {"email": "łucja@example.org"})
    assert reply.error is None, reply
    reply = h.send(client, "verify_code", {"code": h.last_code("łucja@example.org")})
    assert reply.error is None, reply
