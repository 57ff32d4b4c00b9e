// The committed declarations (types/) are what tsc makes of the JSDoc in src/ today, the JS passes
// tsc's strict check, and test/usage.ts (the README's example) type-checks against them.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TSC = join(PACKAGE, 'node_modules', 'typescript', 'bin', 'tsc')

test('types/ is up to date with the JSDoc in src/ (npm run types), which tsc checks strictly', () => {
  const out = mkdtempSync(join(tmpdir(), 'sigit-types-'))
  try {
    execFileSync(process.execPath, [TSC, '-p', PACKAGE, '--outDir', out], { cwd: PACKAGE })
    const files = readdirSync(out).sort()
    assert.deepEqual(files, readdirSync(join(PACKAGE, 'types')).sort())
    for (const file of files) {
      assert.equal(readFileSync(join(out, file), 'utf8'), readFileSync(join(PACKAGE, 'types', file), 'utf8'), file)
    }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})

test('a TypeScript user of the package type-checks (test/usage.ts)', () => {
  execFileSync(process.execPath, [TSC, '-p', join(PACKAGE, 'test')], { cwd: PACKAGE })
})
