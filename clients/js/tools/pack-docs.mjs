// npm pack's prepack step: the README links docs/protocol.md, which lives in the repository's
// docs/; a copy goes into the package (docs/ is not committed here: the repository's file is the
// one source). Fails when the repository's file is missing, so no tarball goes out without it.
import { copyFileSync, mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..')
mkdirSync(join(pkg, 'docs'), { recursive: true })
copyFileSync(join(pkg, '..', '..', 'docs', 'protocol.md'), join(pkg, 'docs', 'protocol.md'))
