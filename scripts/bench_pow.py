"""NIP-13 PoW time of the JS client (clients/js), as a SIGit page pays it: in headless Chromium
(Debian's, over the DevTools protocol) and in Node, at 16 and 12 bits (docs/protocol.md's
defaults), median and p90 over SIGIT_BENCH_POW_RUNS mines (default 25) of request-sized events
with fresh keys, each timed from the call to the nonce (worker start included).
SIGIT_BENCH_POW_BITS (default 16,12) mines at other difficulties."""

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

# One mining loop for both places; MODULE is where minePow comes from.
BENCH_JS = """
const { minePow } = await import(MODULE)
const rng = globalThis.crypto ?? (await import('node:crypto')).webcrypto
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
  out[bits] = runs
}
"""


def script(module: str, runs: int) -> str:
    return f"const MODULE = {json.dumps(module)}, BITS = {list(BITS)}, RUNS = {runs};\n{BENCH_JS}"


def in_node(runs: int) -> dict[str, list[list[float]]]:
    code = script((CLIENT_DIR / "src" / "pow.js").as_uri(), runs) + "\nconsole.log(JSON.stringify(out))\n"
    out = subprocess.run(
        ["node", "--input-type=module", "-e", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


async def in_chromium(runs: int) -> tuple[dict[str, list[list[float]]], str]:
    web = DemoWebServer(lambda: []).start()
    try:
        async with Chromium() as browser:
            page = await browser.new_page()
            await page.goto(web.url + "style.css")  # an origin to import from; no app running
            version = (await browser.send("Browser.getVersion"))["product"]
            code = script("/client/pow.js", runs)
            result = await page.evaluate(f"(async () => {{ {code}\n return out }})()")
            return result, version
    finally:
        web.stop()


def summary(where: str, bits: str, runs: list[list[float]]) -> dict[str, object]:
    times = sorted(t for t, _ in runs)
    tries = sum(n for _, n in runs)
    return {
        "where": where,
        "bits": int(bits),
        "runs": len(times),
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[max(0, round(0.9 * len(times)) - 1)], 1),
        "max_ms": round(times[-1], 1),
        "khash_per_s": round(tries / sum(times), 1),  # tries per ms = thousands per second
    }


def main() -> None:
    runs = int(os.environ.get("SIGIT_BENCH_POW_RUNS", "25"))
    as_json = "--json" in sys.argv
    if not client_ready():
        sys.exit("bench pow: clients/js has no node_modules (scripts/bootstrap_js --browser)")
    rows = []
    node_version = subprocess.run(
        ["node", "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    for bits, data in sorted(in_node(runs).items(), reverse=True):
        rows.append(summary(f"node {node_version}", bits, data))
    if chromium_path() is None:
        print("bench pow: no chromium binary: Node figures only", file=sys.stderr)
    else:
        data_by_bits, version = asyncio.run(in_chromium(runs))
        for bits, data in sorted(data_by_bits.items(), reverse=True):
            rows.append(summary(version, bits, data))
    if as_json:
        print(json.dumps(rows))
        return
    print(f"pow: JS client minePow (one worker), {runs} mines each, {os.cpu_count()} cores")
    print(f"{'where':<28} {'bits':>4} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'khash/s':>8}")
    for row in rows:
        print(
            f"{row['where']:<28} {row['bits']:>4} {row['median_ms']:>10} {row['p90_ms']:>8} "
            f"{row['max_ms']:>8} {row['khash_per_s']:>8}"
        )


if __name__ == "__main__":
    main()
