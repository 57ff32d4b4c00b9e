// The demo's signup page, built only on sigit-dvm-client. Secrets (the password, the account key,
// the entropy) live in this page's memory while they are needed and are never logged or stored.
import { CancelledError, ProtocolError, SigitError, discover, getPublicKey, openBackup } from 'sigit-dvm-client'
import { npubEncode } from 'nostr-tools/nip19'

const $ = (id) => document.getElementById(id)

/** @type {import('sigit-dvm-client').SigitDvm | null} */
let dvm = null
let session = null // the ephemeral key of a signup or login in progress
let flow = null // 'signup' | 'login' | 'delete' while a code is awaited
let pending = null // {email, password} until the code step ends
let account = null // {key, entropy, email} while signed in
let abort = null

function show(state) {
  document.body.dataset.state = state
  $('signed-out').hidden = state !== 'signed-out'
  $('code-step').hidden = state !== 'code'
  $('signed-in').hidden = state !== 'signed-in'
}

function message(kind, text) {
  const other = kind === 'error' ? 'notice' : 'error'
  $(other).hidden = true
  $(kind).textContent = text
  $(kind).hidden = !text
}

function describe(err) {
  if (err instanceof ProtocolError) {
    let text = `${err.message} [${err.code}]`
    if (err.attemptsLeft !== undefined) text += ` ${err.attemptsLeft} attempt(s) left.`
    if (err.retryAfterS !== undefined) text += ` Try again in ${err.retryAfterS} s.`
    return text
  }
  if (err instanceof SigitError) return `${err.message} [${err.code}]`
  return `Something went wrong: ${err instanceof Error ? err.message : String(err)}`
}

/** Run one user action: buttons off, PoW progress shown, errors shown to the user. */
async function act(work) {
  message('error', '')
  message('notice', '')
  document.body.dataset.busy = 'true'
  for (const b of document.querySelectorAll('button:not(#pow-cancel)')) b.disabled = true
  abort = new AbortController()
  try {
    await work({ signal: abort.signal, onProgress })
  } catch (err) {
    if (err instanceof CancelledError) message('notice', 'Cancelled.')
    else message('error', describe(err))
  } finally {
    abort = null
    $('pow').hidden = true
    for (const b of document.querySelectorAll('button')) b.disabled = false
    document.body.dataset.busy = 'false'
  }
}

function onProgress(p) {
  $('pow').hidden = false
  $('pow-bar').value = p.fraction
  $('pow-label').textContent =
    p.fraction === 1
      ? `Proof of work done (${p.bits} bits, ${p.tries.toLocaleString('en')} tries): waiting for the service…`
      : `Proof of work (${p.bits} bits): ${p.tries.toLocaleString('en')} tries`
}

function askCode(kind, email) {
  flow = kind
  const titles = { signup: 'Confirm your address', login: 'Log in: enter the code', delete: 'Confirm the deletion' }
  $('code-title').textContent = titles[kind]
  $('code-help').textContent = `We emailed a six-digit code to ${email}.`
  $('code').value = ''
  show('code')
  fillCodeFromLink()
}

async function signedIn(key, entropy) {
  account = { key, entropy, email: '' }
  pending = null
  session?.close()
  session = null
  flow = null
  $('npub').textContent = npubEncode(getPublicKey(key))
  const status = await dvm.status(key)
  account.email = status.email
  $('account-email').textContent = status.email
  show('signed-in')
}

function signOut(text) {
  account?.key.fill(0)
  account = null
  session?.close()
  session = null
  flow = null
  pending = null
  show('signed-out')
  if (text) message('notice', text)
}

$('signup-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const email = $('signup-email').value
  const password = $('signup-password').value
  act(async (opts) => {
    session = dvm.session()
    try {
      await session.requestAccount(email, opts)
    } catch (err) {
      if (err instanceof ProtocolError && err.code === 'email_taken') $('login-email').value = email // go to login
      throw err
    }
    pending = { email, password }
    $('signup-password').value = ''
    askCode('signup', email)
  })
})

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const email = $('login-email').value
  const password = $('login-password').value
  act(async (opts) => {
    session = dvm.session()
    try {
      await session.requestLogin(email, opts)
    } catch (err) {
      if (err instanceof ProtocolError && err.code === 'unknown_email') $('signup-email').value = email // go to signup
      throw err
    }
    pending = { email, password }
    $('login-password').value = ''
    askCode('login', email)
  })
})

$('code-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const code = $('code').value.trim()
  act(async (opts) => {
    if (flow === 'delete') {
      await dvm.deleteAccount(account.key, code, opts)
      signOut('Your account was deleted.')
      return
    }
    const result = await session.verifyCode(code, opts)
    // The shape decides, not the method called (private mode): a backup means a login.
    if (result.backup) {
      const key = openBackup(result.backup, pending.password, result.entropy, { pubkey: result.pubkey })
      await signedIn(key, result.entropy)
      message('notice', 'Logged in: your key was recovered from its backup.')
    } else {
      const created = await session.createAccount(pending.password, result.entropy, opts)
      await signedIn(created.secretKey, result.entropy)
      message('notice', 'Welcome! Your account is active.')
    }
  })
})

$('resend').addEventListener('click', () =>
  act(async (opts) => {
    if (flow === 'delete') await dvm.resendCode(account.key, opts)
    else await session.resendCode(opts)
    message('notice', 'A new code is on its way.')
  }),
)

$('cancel-code').addEventListener('click', () => {
  message('error', '')
  if (flow === 'delete') {
    flow = null
    show('signed-in')
  } else signOut('')
})

$('pow-cancel').addEventListener('click', () => abort?.abort())

$('logout').addEventListener('click', () => signOut('Logged out. Your key is no longer in this page.'))

$('password-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const password = $('new-password').value
  act(async (opts) => {
    await dvm.changePassword(account.key, password, account.entropy, opts)
    $('new-password').value = ''
    message('notice', 'Password changed. Use the new one to log in from now on.')
  })
})

$('delete').addEventListener('click', () =>
  act(async (opts) => {
    await dvm.requestDeletion(account.key, opts)
    askCode('delete', account.email)
  }),
)

// The code email's link opens this page with #code=123456: fill it in when a code is awaited.
function fillCodeFromLink() {
  const match = /code=(\d{6})/.exec(location.hash)
  if (match && flow) $('code').value = match[1]
}
window.addEventListener('hashchange', fillCodeFromLink)

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
  show('loading')
  try {
    dvm = await discover(`dvm@${location.host}`)
    const i = dvm.info
    $('dvm').textContent =
      `Account service: ${i.name} (${npubEncode(i.pubkey).slice(0, 20)}…) on ${i.relays.join(', ')}, ` +
      `${i.protocol}, proof of work ${i.powBits.request_account}/${i.powBits.verify_code} bits.`
    document.body.dataset.ready = 'true'
    show('signed-out')
  } catch (err) {
    $('dvm').textContent = 'The account service could not be found.'
    message('error', describe(err))
  }
  pollInbox()
}

start()
