"""Which PostgreSQL driver for the store: asyncpg, psycopg 3 async, or psycopg 3 sync with the
whole transaction on one database thread (one hand-off per transaction, like the SQLite store).

Each transaction is shaped like a signup's commit: the write lock, seven lookups, four writes. The
figures are transactions/s with 1 and 8 callers, and this process's CPU per transaction.
Usage: scripts/bench pgdriver [--json]  (starts a throwaway cluster; SIGIT_BENCH_TX=2000)
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import psycopg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.support.postgres import start_cluster

TX = int(os.environ.get("SIGIT_BENCH_TX", "2000"))
SCHEMA = """
CREATE TABLE u (id TEXT PRIMARY KEY, email TEXT UNIQUE, n BIGINT);
CREATE TABLE s (pubkey TEXT PRIMARY KEY, user_id TEXT, n BIGINT);
CREATE TABLE r (event_id TEXT PRIMARY KEY, body TEXT);
"""
LOOKUPS = [
    "SELECT * FROM s WHERE pubkey = $1",
    "SELECT * FROM u WHERE id = $1",
    "SELECT * FROM u WHERE email = $1",
    "SELECT * FROM u WHERE email = $1",
    "SELECT * FROM r WHERE event_id = $1",
    "SELECT count(*) FROM s WHERE user_id = $1",
    "SELECT * FROM u WHERE id = $1",
]


def _pg(sql: str) -> str:
    for i in range(9, 0, -1):
        sql = sql.replace(f"${i}", "%s")
    return sql


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(name: str, one: Callable[[int], Awaitable[None]], callers: int) -> dict[str, float]:
    counter = iter(range(TX))

    async def caller() -> None:
        for i in counter:
            await one(i)

    started, cpu0 = time.perf_counter(), cpu()
    await asyncio.gather(*(caller() for _ in range(callers)))
    wall, used = time.perf_counter() - started, cpu() - cpu0
    return {"driver": name, "callers": callers, "tx_per_s": TX / wall, "cpu_us_per_tx": used / TX * 1e6}


async def with_asyncpg(url: str, callers: int) -> dict[str, float]:
    pool = await asyncpg.create_pool(url, min_size=callers, max_size=callers)
    tag = secrets.token_hex(4)

    async def one(i: int) -> None:
        key = f"{tag}{i}"
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(42)")
            for sql in LOOKUPS:
                await conn.fetchrow(sql, key)
            await conn.execute("INSERT INTO u VALUES ($1, $2, 1)", key, key + "@x")
            await conn.execute("INSERT INTO s VALUES ($1, $2, 1)", key, key)
            await conn.execute("INSERT INTO r VALUES ($1, $2)", key, "x" * 600)
            await conn.execute("UPDATE u SET n = n + 1 WHERE id = $1", key)

    try:
        return await run("asyncpg", one, callers)
    finally:
        await pool.close()


async def with_psycopg_async(url: str, callers: int) -> dict[str, float]:
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(callers)]
    free: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    tag = secrets.token_hex(4)

    async def one(i: int) -> None:
        key = f"{tag}{i}"
        conn = await free.get()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(42)")
                for sql in LOOKUPS:
                    await (await conn.execute(_pg(sql), (key,))).fetchone()
                await conn.execute("INSERT INTO u VALUES (%s, %s, 1)", (key, key + "@x"))
                await conn.execute("INSERT INTO s VALUES (%s, %s, 1)", (key, key))
                await conn.execute("INSERT INTO r VALUES (%s, %s)", (key, "x" * 600))
                await conn.execute("UPDATE u SET n = n + 1 WHERE id = %s", (key,))
        finally:
            free.put_nowait(conn)

    try:
        return await run("psycopg async", one, callers)
    finally:
        for c in conns:
            await c.close()


async def with_psycopg_thread(url: str, callers: int) -> dict[str, float]:
    conns = [psycopg.connect(url, autocommit=True, prepare_threshold=0) for _ in range(callers)]
    pool = ThreadPoolExecutor(callers)
    free: asyncio.Queue[psycopg.Connection] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    tag = secrets.token_hex(4)

    def tx(conn: psycopg.Connection, key: str) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(42)")
            for sql in LOOKUPS:
                conn.execute(_pg(sql), (key,)).fetchone()
            conn.execute("INSERT INTO u VALUES (%s, %s, 1)", (key, key + "@x"))
            conn.execute("INSERT INTO s VALUES (%s, %s, 1)", (key, key))
            conn.execute("INSERT INTO r VALUES (%s, %s)", (key, "x" * 600))
            conn.execute("UPDATE u SET n = n + 1 WHERE id = %s", (key,))

    async def one(i: int) -> None:
        conn = await free.get()
        try:
            await asyncio.get_running_loop().run_in_executor(pool, tx, conn, f"{tag}{i}")
        finally:
            free.put_nowait(conn)

    try:
        return await run("psycopg sync, one thread hand-off per tx", one, callers)
    finally:
        pool.shutdown()
        for c in conns:
            c.close()


async def main() -> None:
    cluster = start_cluster()
    if cluster is None:
        sys.exit("no PostgreSQL server binaries: run scripts/bootstrap_pg")
    try:
        url = cluster.new_database("bench")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        results = []
        for _round in range(2):  # interleaved
            for callers in (1, 8):
                for fn in (with_asyncpg, with_psycopg_async, with_psycopg_thread):
                    results.append(await fn(url, callers))
    finally:
        cluster.stop()
    if "--json" in sys.argv:
        print(json.dumps(results))
        return
    print(f"$ scripts/bench pgdriver   ({TX} signup-shaped transactions per run, two interleaved rounds)")
    for r in results:
        figures = f"{r['tx_per_s']:7.0f} tx/s  {r['cpu_us_per_tx']:6.0f} us CPU/tx"
        print(f"{r['driver']:42} callers={r['callers']}  {figures}")


if __name__ == "__main__":
    asyncio.run(main())
