// NIP-13 proof of work over a NIP-01 event id: a self-contained SHA-256 (no imports, so the same file
// runs in a browser's module Worker, where import maps do not apply, and in Node's worker_threads).

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])
const IV = new Uint32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
])
const W = new Uint32Array(64)

/**
 * One SHA-256 compression of the 64-byte block at `buf[off]` into the state `H`.
 * @param {Uint32Array} H @param {Uint8Array} buf @param {number} off
 */
function compress(H, buf, off) {
  for (let i = 0; i < 16; i++) {
    const j = off + 4 * i
    W[i] = (buf[j] << 24) | (buf[j + 1] << 16) | (buf[j + 2] << 8) | buf[j + 3]
  }
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15]
    const b = W[i - 2]
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3)
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10)
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0
  }
  let a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7]
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0
  }
  H[0] = (H[0] + a) | 0; H[1] = (H[1] + b) | 0; H[2] = (H[2] + c) | 0; H[3] = (H[3] + d) | 0
  H[4] = (H[4] + e) | 0; H[5] = (H[5] + f) | 0; H[6] = (H[6] + g) | 0; H[7] = (H[7] + h) | 0
}

const TAIL = new Uint8Array(128)

/**
 * SHA-256 of `buf[0..len)`, starting from `mid` (the state after `skip` whole blocks, or the IV).
 * @param {Uint8Array} buf
 * @param {number} len
 * @param {Uint32Array} mid
 * @param {number} skip bytes already absorbed into `mid` (a multiple of 64)
 * @param {Uint32Array} H out: the digest as eight big-endian words
 */
export function sha256From(buf, len, mid, skip, H) {
  H.set(mid)
  let off = skip
  for (; off + 64 <= len; off += 64) compress(H, buf, off)
  const rest = len - off
  TAIL.fill(0)
  TAIL.set(buf.subarray(off, len))
  TAIL[rest] = 0x80
  const blocks = rest + 9 <= 64 ? 1 : 2
  const bits = len * 8
  const end = blocks * 64
  TAIL[end - 4] = bits >>> 24
  TAIL[end - 3] = bits >>> 16
  TAIL[end - 2] = bits >>> 8
  TAIL[end - 1] = bits
  TAIL[end - 5] = Math.floor(bits / 2 ** 32)
  compress(H, TAIL, 0)
  if (blocks === 2) compress(H, TAIL, 64)
}

/**
 * The SHA-256 digest of `bytes`, as lower-case hex (for tests).
 * @param {Uint8Array} bytes @returns {string}
 */
export function sha256Hex(bytes) {
  const H = new Uint32Array(8)
  sha256From(bytes, bytes.length, IV, 0, H)
  return Array.from(H, (w) => (w >>> 0).toString(16).padStart(8, '0')).join('')
}

/**
 * Leading zero bits of a digest given as eight words.
 * @param {Uint32Array} H @returns {number}
 */
export function leadingZeroBits(H) {
  let bits = 0
  for (let i = 0; i < 8; i++) {
    if (H[i] === 0) {
      bits += 32
      continue
    }
    return bits + Math.clz32(H[i])
  }
  return bits
}

export const NONCE_MARK = '@@sigit-nonce@@'

/**
 * Find a nonce that gives the serialized event at least `bits` leading zero bits.
 *
 * `serialized` is the NIP-01 serialization `[0,pubkey,created_at,kind,tags,content]` with
 * NONCE_MARK where the nonce counter goes; nothing else in it changes while mining (the
 * `created_at` stays fixed). Calls `progress(tries)` every `every` tries.
 * @param {string} serialized
 * @param {number} bits
 * @param {{start?: number, step?: number, every?: number, progress?: (tries: number) => void}} [opts]
 * @returns {{nonce: string, tries: number, id: string}}
 */
export function mine(serialized, bits, opts = {}) {
  const at = serialized.indexOf(NONCE_MARK)
  if (at < 0) throw new Error('serialized event has no nonce mark')
  const enc = new TextEncoder()
  const prefix = enc.encode(serialized.slice(0, at))
  const suffix = enc.encode(serialized.slice(at + NONCE_MARK.length))
  const buf = new Uint8Array(prefix.length + 20 + suffix.length)
  buf.set(prefix)
  const skip = prefix.length - (prefix.length % 64)
  const mid = new Uint32Array(IV)
  for (let off = 0; off < skip; off += 64) compress(mid, buf, off)
  const H = new Uint32Array(8)
  const step = opts.step ?? 1
  const every = opts.every ?? 16384
  let nonce = opts.start ?? 0
  let digits = -1
  let tries = 0
  for (;;) {
    const text = String(nonce)
    if (text.length !== digits) {
      digits = text.length
      buf.set(suffix, prefix.length + digits)
    }
    for (let i = 0; i < digits; i++) buf[prefix.length + i] = text.charCodeAt(i)
    const len = prefix.length + digits + suffix.length
    sha256From(buf, len, mid, skip, H)
    tries++
    if (leadingZeroBits(H) >= bits) {
      const id = Array.from(H, (w) => (w >>> 0).toString(16).padStart(8, '0')).join('')
      return { nonce: text, tries, id }
    }
    if (opts.progress && tries % every === 0) opts.progress(tries)
    nonce += step
  }
}
