"""The JS client's (clients/js) work that a SIGit page pays for, in headless Chromium (Debian's, over
the DevTools protocol) and in Node: NIP-13 PoW at 16 and 12 bits (docs/protocol.md's defaults;
SIGIT_BENCH_POW_BITS mines at others), median and p90 over SIGIT_BENCH_POW_RUNS mines (default 25)
of request-sized events with fresh keys, each timed from the call to the nonce (worker start
included); and the NIP-49 key backup at log_n 16 (made, then opened), over SIGIT_BENCH_BACKUP_RUNS
(default 5). Both run in the client's worker; in Chromium, the page's main thread is watched
meanwhile (PerformanceObserver ``longtask``) and its longest task printed next to the 200 ms a page
may block at most."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys

from dvm.demo.web import CLIENT_DIR, DemoWebServer, client_ready
from tests.support.cdp import Chromium, chromium_path

BITS = tuple(int(b) for b in os.environ.get("SIGIT_BENCH_POW_BITS", "16,12").split(","))
BACKUP_LOG_N = 16
LONG_TASK_LIMIT_MS = 200

# One loop for both places; CLIENT is the module the client is imported from.
BENCH_JS = """
const { minePow, makeBackup, openBackup, generateSecretKey } = await import(CLIENT)
const rng = globalThis.crypto
const bytes = (n) => rng.getRandomValues(new Uint8Array(n))
const hex = (n) => Array.from(bytes(n), (b) => b.toString(16).padStart(2, '0')).join('')
const out = {}
for (const bits of BITS) {
  const runs = []
  for (let i = 0; i < RUNS; i++) {
    const created_at = Math.floor(Date.now() / 1000)
    const template = {
      pubkey: hex(32), created_at, kind: 5780,
      tags: [['p', hex(32)], ['encrypted'], ['expiration', String(created_at + 3600)]],
      content: btoa(String.fromCharCode(...bytes(162))),  // a request_account's NIP-44 payload
    }
    const started = performance.now()
    const mined = await minePow(template, bits)
    runs.push([performance.now() - started, mined.tries])
  }
  out[`pow ${bits} bits`] = runs
}
const made = [], opened = []
for (let i = 0; i < BACKUP_RUNS; i++) {
  const key = generateSecretKey()
  let started = performance.now()
  const backup = await makeBackup(key, 'correct horse battery staple', '', { logN: LOG_N })
  made.push([performance.now() - started, 0])
  started = performance.now()
  await openBackup(backup, 'correct horse battery staple', '')
  opened.push([performance.now() - started, 0])
}
out[`backup made, log_n ${LOG_N}`] = made
out[`backup opened, log_n ${LOG_N}`] = opened
"""


def script(client: str, runs: int, backup_runs: int) -> str:
    head = (
        f"const CLIENT = {json.dumps(client)}, BITS = {list(BITS)}, RUNS = {runs}, "
        f"BACKUP_RUNS = {backup_runs}, LOG_N = {BACKUP_LOG_N};\n"
    )
    return head + BENCH_JS


Runs = dict[str, list[list[float]]]


def in_node(runs: int, backup_runs: int) -> Runs:
    code = script((CLIENT_DIR / "src" / "node.js").as_uri(), runs, backup_runs)
    code += "\nconsole.log(JSON.stringify(out))\n"
    out = subprocess.run(
        ["node", "--input-type=module", "-e", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


async def in_chromium(runs: int, backup_runs: int) -> tuple[Runs, str, list[float]]:
    """On the demo's page (its import map; no DVM behind it, so the page just says so)."""
    web = DemoWebServer(lambda: []).start()
    try:
        async with Chromium() as browser:
            page = await browser.new_page()
            await page.goto(web.url)
            await page.wait_for("document.body.dataset.ready === 'offline'", 30)
            version = (await browser.send("Browser.getVersion"))["product"]
            browser.long_tasks.clear()  # the page's own start
            code = script("sigit-dvm-client", runs, backup_runs)
            result = await page.evaluate(f"(async () => {{ {code}\n return out }})()")
            await asyncio.sleep(0.5)  # the observer reports a task once it ended
            return result, version, [task.ms for task in browser.long_tasks]
    finally:
        web.stop()


def summary(where: str, what: str, runs: list[list[float]]) -> dict[str, object]:
    times = sorted(t for t, _ in runs)
    tries = sum(n for _, n in runs)
    return {
        "where": where,
        "what": what,
        "runs": len(times),
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[max(0, round(0.9 * len(times)) - 1)], 1),
        "max_ms": round(times[-1], 1),
        "khash_per_s": round(tries / sum(times), 1) if tries else None,  # tries per ms
    }


def main() -> None:
    runs = int(os.environ.get("SIGIT_BENCH_POW_RUNS", "25"))
    backup_runs = int(os.environ.get("SIGIT_BENCH_BACKUP_RUNS", "5"))
    as_json = "--json" in sys.argv
    if not client_ready():
        sys.exit("bench pow: clients/js has no node_modules (scripts/bootstrap_js --browser)")
    rows = []
    long_tasks: list[float] | None = None
    node_version = subprocess.run(
        ["node", "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    for what, data in in_node(runs, backup_runs).items():
        rows.append(summary(f"node {node_version}", what, data))
    if chromium_path() is None:
        print("bench pow: no chromium binary: Node figures only", file=sys.stderr)
    else:
        data_by_what, version, long_tasks = asyncio.run(in_chromium(runs, backup_runs))
        for what, data in data_by_what.items():
            rows.append(summary(version, what, data))
    longest = max(long_tasks, default=0.0) if long_tasks is not None else None
    if as_json:
        print(json.dumps({"rows": rows, "long_tasks_ms": long_tasks, "longest_task_ms": longest}))
        return
    print(
        f"pow: JS client minePow (one worker), {runs} mines each; key backup (NIP-49, in the "
        f"worker), {backup_runs} each; {os.cpu_count()} cores"
    )
    print(f"{'where':<28} {'what':<24} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'khash/s':>8}")
    for row in rows:
        print(
            f"{row['where']:<28} {row['what']:<24} {row['median_ms']:>10} {row['p90_ms']:>8} "
            f"{row['max_ms']:>8} {row['khash_per_s'] or '':>8}"
        )
    if long_tasks is not None:
        verdict = "ok" if (longest or 0) <= LONG_TASK_LIMIT_MS else "OVER THE LIMIT"
        print(
            f"Chromium main thread meanwhile: {len(long_tasks)} long tasks (>= 50 ms), the longest "
            f"{longest:.0f} ms (a page may block {LONG_TASK_LIMIT_MS} ms at most: {verdict})"
        )


if __name__ == "__main__":
    main()
