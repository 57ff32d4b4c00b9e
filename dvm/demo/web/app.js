// The demo's signup page, built only on sigit-dvm-client. Secrets (the password, the account key,
// the entropy) live in this page's memory while they are needed and are never logged; the flow
// waiting for a code (its ephemeral key) is kept in localStorage, so a reload or the emailed link
// (#/verify?code=...) finds it, and deleted when the code is used.
import {
  BackupError,
  CancelledError,
  FLOW_STORAGE_KEY,
  ProtocolError,
  discover,
  getPublicKey,
  userMessage,
} from 'sigit-dvm-client'
import { npubEncode } from 'nostr-tools/nip19'

const $ = (id) => document.getElementById(id)
const storage = window.localStorage

/** @type {import('sigit-dvm-client').SigitDvm | null} */
let dvm = null
/** @type {import('sigit-dvm-client').Session | null} */
let session = null // the signup or login in progress
let deleting = false // the code step is for a deletion
let pending = null // what this page still holds from the first step: {password, key?}
let passwordMode = null // the password step: 'choose' (signup), 'unlock' (login, register)
let account = null // {key, entropy, email} while signed in
let abort = null
let lastAction = null // re-run by "Try again" after a failure worth retrying
let started = false // focus moves only once the page has shown its first state

const FOCUS = {
  offline: 'offline-title',
  'signed-out': 'signup-title',
  code: 'code',
  password: 'unlock-password',
  'signed-in': 'account-title',
}

/** Show one step; move the focus to its first field or heading (not on the page's first paint). */
function show(state) {
  document.body.dataset.state = state
  $('offline').hidden = state !== 'offline'
  $('signed-out').hidden = state !== 'signed-out'
  $('code-step').hidden = state !== 'code'
  $('password-step').hidden = state !== 'password'
  $('signed-in').hidden = state !== 'signed-in'
  if (started && FOCUS[state]) $(FOCUS[state]).focus()
  started = true
}

function notice(text) {
  $('notice').textContent = text
  $('notice').hidden = !text
}

function clearMessages() {
  $('error').hidden = true
  $('error').removeAttribute('data-code')
  notice('')
}

const RETRYABLE = new Set(['timeout', 'relay_refused', 'discovery_failed', 'internal_error', 'bad_reply', 'worker_failed'])

/** The message for people, the developer's detail under it, and "Try again" where it may help. */
function showError(err) {
  const code = typeof err?.code === 'string' ? err.code : 'unknown'
  $('error-text').textContent = userMessage(err)
  $('error-detail').textContent = `${code}: ${err instanceof Error ? err.message : String(err)}`
  $('error').dataset.code = code
  $('retry').hidden = !(RETRYABLE.has(code) && lastAction)
  notice('')
  $('error').hidden = false
}

/** Run one user action: buttons off, progress shown, errors shown to the user. */
async function act(work) {
  lastAction = work
  clearMessages()
  document.body.dataset.busy = 'true'
  for (const b of document.querySelectorAll('button:not(#progress-cancel)')) b.disabled = true
  abort = new AbortController()
  try {
    await work({ signal: abort.signal, onProgress })
    lastAction = null
  } catch (err) {
    if (err instanceof CancelledError) {
      lastAction = null
      notice('Cancelled.')
    } else showError(err)
  } finally {
    abort = null
    $('progress').hidden = true
    $('progress-status').textContent = ''
    for (const b of document.querySelectorAll('button')) b.disabled = false
    document.body.dataset.busy = 'false'
  }
}

/** 1234567 -> "1,234,567" (toLocaleString's first call loads the locale data: a long task). */
const grouped = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',')

/** One line per phase for screen readers (role=status), the bar for everything in between. */
function onProgress(p) {
  $('progress').hidden = false
  $('progress-bar').value = p.fraction
  let phase
  if (p.stage === 'backup') {
    phase = p.fraction === 1 ? 'Key encrypted.' : 'Encrypting or opening your key…'
    $('progress-label').textContent = 'Key backup (scrypt)'
  } else {
    phase = p.fraction === 1 ? 'Waiting for the service…' : 'Working on your request…'
    $('progress-label').textContent =
      p.fraction === 1
        ? `Proof of work done (${p.bits} bits, ${grouped(p.tries)} tries)`
        : `Proof of work (${p.bits} bits): ${grouped(p.tries)} tries`
  }
  if ($('progress-status').textContent !== phase) $('progress-status').textContent = phase
}

function askCode(email) {
  const titles = { signup: 'Confirm your address', register: 'Confirm your address', login: 'Log in: enter the code' }
  $('code-title').textContent = deleting ? 'Confirm the deletion' : titles[session?.flow] ?? 'Enter the code'
  $('code-help').textContent = `We emailed a code to ${email}. It is 6 digits (12 if many wrong codes were tried).`
  $('code').value = ''
  show('code')
}

/** After the code: the password step, for what this page no longer holds (a reload, the link). */
function askPassword(mode, help) {
  passwordMode = mode
  $('password-title').textContent = mode === 'choose' ? 'Choose your password' : 'Enter your password'
  $('unlock-label').textContent = mode === 'choose' ? 'New password' : 'Password'
  $('unlock-password').autocomplete = mode === 'choose' ? 'new-password' : 'current-password'
  $('unlock-password').value = ''
  $('unlock-username').value = session?.email ?? ''
  $('password-help').textContent = help
  show('password')
}

async function signedIn(key, entropy, text) {
  account = { key, entropy: entropy ?? '', email: '' }
  const email = session?.email ?? ''
  await session?.close()
  session = null
  pending = null
  passwordMode = null
  $('npub').textContent = npubEncode(getPublicKey(key))
  const status = await dvm.status(key)
  account.email = status.email || email
  $('account-email').textContent = account.email
  $('password-username').value = account.email
  show('signed-in')
  notice(text)
}

function signOut(text) {
  account?.key.fill(0)
  account = null
  session?.close()
  session = null
  deleting = false
  pending = null
  passwordMode = null
  show('signed-out')
  notice(text)
}

/** The code matched: finish with what this page holds, or ask for the password. */
async function afterCode(result, opts) {
  // The shape decides, not the method called (private mode): a backup means a login.
  if (result.backup) {
    if (!pending?.password) return askPassword('unlock', 'Your key is stored encrypted with your password.')
    try {
      const key = await session.unlock(pending.password, opts)
      return signedIn(key, result.entropy, 'Logged in: your key was recovered from its backup.')
    } catch (err) {
      if (!(err instanceof BackupError && err.code === 'wrong_password')) throw err
      askPassword('unlock', 'That password does not open your key. The code was accepted: only the password is needed.')
      throw err
    }
  }
  if (session.flow === 'register') {
    if (pending?.key) return signedIn(pending.key, '', 'Welcome! Your account is active.')
    return askPassword('unlock', 'Your account is active. Enter the password you chose to open your key on this page.')
  }
  if (!pending?.password) return askPassword('choose', 'Your address is confirmed. Choose the password that protects your key.')
  const created = await session.createAccount(pending.password, result.entropy, opts)
  return signedIn(created.secretKey, result.entropy, 'Welcome! Your account is active.')
}

$('signup-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const email = $('signup-email').value
  const password = $('signup-password').value
  const register = $('flow-register').checked
  act(async (opts) => {
    session = dvm.session()
    deleting = false
    try {
      if (register) {
        const made = await session.signUp(email, password, opts)
        pending = { password, key: made.secretKey }
      } else {
        await session.requestAccount(email, opts)
        pending = { password }
      }
    } catch (err) {
      if (err instanceof ProtocolError && err.code === 'email_taken') $('login-email').value = email // go to login
      throw err
    }
    $('signup-password').value = ''
    askCode(session.email)
  })
})

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const email = $('login-email').value
  const password = $('login-password').value
  act(async (opts) => {
    session = dvm.session()
    deleting = false
    try {
      await session.requestLogin(email, opts)
    } catch (err) {
      if (err instanceof ProtocolError && err.code === 'unknown_email') $('signup-email').value = email // go to signup
      throw err
    }
    pending = { password }
    $('login-password').value = ''
    askCode(session.email)
  })
})

function submitCode(code) {
  act(async (opts) => {
    if (deleting) {
      await dvm.deleteAccount(account.key, code, opts)
      signOut('Your account was deleted.')
      return
    }
    const result = await session.verifyCode(code, opts)
    await afterCode(result, opts)
  })
}

$('code-form').addEventListener('submit', (e) => {
  e.preventDefault()
  submitCode($('code').value)
})

$('unlock-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const password = $('unlock-password').value
  act(async (opts) => {
    try {
      if (passwordMode === 'choose') {
        const created = await session.createAccount(password, undefined, opts)
        await signedIn(created.secretKey, session?.verified?.entropy, 'Welcome! Your account is active.')
      } else {
        const key = await session.unlock(password, opts)
        await signedIn(key, session?.verified?.entropy, 'Logged in: your key was recovered from its backup.')
      }
    } catch (err) {
      $('unlock-password').value = ''
      $('unlock-password').focus()
      throw err
    }
  })
})

$('resend').addEventListener('click', () =>
  act(async (opts) => {
    if (deleting) await dvm.resendCode(account.key, opts)
    else await session.resendCode(opts)
    notice('A new code is on its way.')
  }),
)

function startAgain() {
  clearMessages()
  if (deleting) {
    deleting = false
    show('signed-in')
  } else signOut('')
}
$('cancel-code').addEventListener('click', startAgain)
$('cancel-unlock').addEventListener('click', startAgain)

$('progress-cancel').addEventListener('click', () => abort?.abort())
$('retry').addEventListener('click', () => lastAction && act(lastAction))
$('reconnect').addEventListener('click', () => start())

$('logout').addEventListener('click', () => signOut('Logged out. Your key is no longer in this page.'))

$('password-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const password = $('new-password').value
  act(async (opts) => {
    await dvm.changePassword(account.key, password, account.entropy, opts)
    $('new-password').value = ''
    notice('Password changed. Use the new one to log in from now on.')
  })
})

$('delete').addEventListener('click', () =>
  act(async (opts) => {
    await dvm.requestDeletion(account.key, opts)
    deleting = true
    askCode(account.email)
  }),
)

/** The code in the emailed link: #/verify?code=123456 (or the older #code=123456). */
function codeFromLink() {
  const match = /[#?&]code=([\d%20 +]+)/.exec(location.hash)
  return match ? decodeURIComponent(match[1].replace(/\+/g, ' ')) : null
}

// Another tab finished (or abandoned) the flow this one waits for.
window.addEventListener('storage', (e) => {
  if (e.key === FLOW_STORAGE_KEY && e.newValue === null && document.body.dataset.state === 'code' && !deleting) {
    signOut('This signup or login was finished in another tab.')
  }
})

// The demo's inbox: what the mail catcher caught, newest first.
let shown = -1
async function pollInbox() {
  try {
    const res = await fetch('/demo/mail', { cache: 'no-store' })
    const mails = await res.json()
    if (mails.length !== shown) {
      shown = mails.length
      document.body.dataset.mails = String(shown)
      $('inbox').replaceChildren(
        ...mails.reverse().map((m) => {
          const li = document.createElement('li')
          const to = document.createElement('div')
          to.className = 'to'
          to.textContent = `to ${m.to}`
          const subject = document.createElement('div')
          subject.textContent = m.subject
          li.append(to, subject)
          if (m.code) {
            const use = document.createElement('button')
            use.type = 'button'
            use.className = 'link use-code'
            use.dataset.code = m.code
            use.dataset.to = m.to
            use.textContent = `Use code ${m.code}`
            use.addEventListener('click', () => {
              $('code').value = m.code
            })
            li.append(use)
          }
          if (m.link) {
            const open = document.createElement('a')
            open.className = 'mail-link'
            open.href = m.link
            open.target = '_blank'
            open.dataset.to = m.to
            open.textContent = 'Open the link'
            li.append(' ', open)
          }
          return li
        }),
      )
    }
  } catch {
    // the demo was stopped: keep the last list
  }
  setTimeout(pollInbox, 1000)
}

async function start() {
  document.body.dataset.ready = 'false'
  clearMessages()
  $('dvm').textContent = 'Finding the account service…'
  try {
    // lang: the DVM's mails in the reader's language, where its operator has templates for it.
    const lang = /^[A-Za-z0-9-]{1,35}$/.test(navigator.language) ? navigator.language : undefined
    dvm = await discover(`dvm@${location.host}`, { storage, lang })
  } catch (err) {
    $('dvm').textContent = 'The account service could not be found.'
    show('offline')
    showError(err)
    document.body.dataset.ready = 'offline'
    return
  }
  const i = dvm.info
  $('dvm').textContent =
    `Account service: ${i.name} (${npubEncode(i.pubkey).slice(0, 20)}…) on ${i.relays.join(', ')}, ` +
    `sigit-dvm/${dvm.version}, proof of work ${i.powBits.request_account}/${i.powBits.verify_code} bits.`
  const code = codeFromLink()
  if (code) history.replaceState(null, '', location.pathname) // the code is spent once used
  session = await dvm.resume()
  if (session) {
    askCode(session.email)
    notice('Welcome back: your signup or login continues here.')
    document.body.dataset.ready = 'true'
    if (code) {
      $('code').value = code
      submitCode(code)
    }
    return
  }
  show('signed-out')
  if (code) notice('This link belongs to a signup or login started in another browser, or one that ended. Type the code there, or start again here.')
  document.body.dataset.ready = 'true'
}

start()
pollInbox()
