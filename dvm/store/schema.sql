-- sigit-dvm schema: the single source of truth. dvm/store/database.py applies it to a new
-- database and steps PRAGMA user_version through migrations for older ones.
-- Times are integer Unix seconds. Booleans are 0/1 with CHECKs.

PRAGMA user_version = 9;

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,              -- normalised: trimmed, lower-case, IDNA domain
    verified    INTEGER NOT NULL CHECK (verified IN (0, 1)),
    activated   INTEGER NOT NULL CHECK (activated IN (0, 1)),
    entropy     TEXT NOT NULL DEFAULT '',          -- drawn once at first verification
    pubkey      TEXT NOT NULL DEFAULT '',          -- the user's real Nostr key, set at activation only
    bkp         TEXT NOT NULL DEFAULT '',          -- the client-encrypted key backup (opaque; SIGit's column name)
    bkp_previous TEXT NOT NULL DEFAULT '',         -- the backup before the last update_backup
    pending_email TEXT NOT NULL DEFAULT '',        -- an email change awaiting its code (reserves nothing)
    grace_deadline INTEGER,                        -- when the pending change lapses
    notify_login INTEGER NOT NULL DEFAULT 1 CHECK (notify_login IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    suspended_at INTEGER,                          -- set by an admin: every request is refused
    last_login_at INTEGER,                         -- the last login code that matched
    last_seen   INTEGER,                           -- activation or the last login (SIGit's column); NULL: never finished
    auth_epoch  INTEGER NOT NULL DEFAULT 0,        -- moves when the account revokes its sessions
    lang        TEXT NOT NULL DEFAULT '',          -- BCP 47 language of its last proven request ('' default)
    CHECK (activated = 0 OR verified = 1),
    CHECK (activated = 0 OR (pubkey <> '' AND bkp <> ''))
);
CREATE UNIQUE INDEX users_pubkey ON users (pubkey) WHERE pubkey <> '';
CREATE INDEX users_pending_email ON users (pending_email) WHERE pending_email <> '';

CREATE TABLE sessions (
    pubkey           TEXT PRIMARY KEY,             -- the browser's ephemeral key
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,  -- NULL: a private-mode decoy
    purpose          TEXT NOT NULL
        CHECK (purpose IN ('signup', 'login', 'email_change', 'deletion', 'register')),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'consumed', 'locked')),
    code_hmac        TEXT NOT NULL,                -- versions before 8: the session's own code's HMAC
    code_sent_at     INTEGER NOT NULL,
    code_expires_at  INTEGER NOT NULL,
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    verified_at      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    subject          TEXT NOT NULL DEFAULT '',     -- 'h:' + salted hash of the mailbox its codes go to
    decoy            INTEGER NOT NULL DEFAULT 0 CHECK (decoy IN (0, 1)),  -- private mode: no code sent
    auth_until       INTEGER,                      -- until then the key may act for the account
    claim_pubkey     TEXT NOT NULL DEFAULT '',     -- register: the key its code will activate
    claim_backup     TEXT NOT NULL DEFAULT '',     -- register: the backup its code will activate
    auth_epoch       INTEGER NOT NULL DEFAULT 0,   -- void once the account's epoch moved on
    address          TEXT NOT NULL DEFAULT ''      -- 'h:' + salted hash of the exact address its codes go to
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Codes mailed to an address: every session of that address and kind may redeem its live ones.
CREATE TABLE codes (
    id          INTEGER PRIMARY KEY,
    mailbox     TEXT NOT NULL,                     -- salted hash of the canonical mailbox (names nobody)
    address     TEXT NOT NULL,                     -- salted hash of the exact address it went to
    kind        TEXT NOT NULL CHECK (kind IN ('signup', 'login', 'email_change', 'deletion')),
    code_hmac   TEXT NOT NULL,                     -- HMAC of "<kind>:<digits>"; '-' a decoy's (matches nothing)
    used        INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),  -- a code works once
    long        INTEGER NOT NULL DEFAULT 0 CHECK (long IN (0, 1)),  -- 16 digits (the mailbox was guessed at)
    minted_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL                   -- moves when a request joins it
);
CREATE INDEX codes_mailbox ON codes (mailbox, minted_at);
CREATE INDEX codes_address ON codes (mailbox, address, minted_at);
CREATE INDEX codes_expires ON codes (expires_at);

-- Seals carried by a request: a seal is used once (until its own created_at window closes).
CREATE TABLE seals (
    id          TEXT PRIMARY KEY,                  -- the seal event's id
    until       INTEGER NOT NULL
);

-- One row per code minted: the hourly caps per mailbox and per address count here (exactly).
CREATE TABLE code_sends (
    mailbox  TEXT NOT NULL,                        -- salted hash of the canonical mailbox (names nobody)
    address  TEXT NOT NULL DEFAULT '',             -- salted hash of the exact address
    sent_at  INTEGER NOT NULL
);
CREATE INDEX code_sends_mailbox ON code_sends (mailbox, sent_at);
CREATE INDEX code_sends_address ON code_sends (mailbox, address, sent_at);
CREATE INDEX code_sends_time ON code_sends (sent_at);

-- Codes emailed per minute to one domain (scope: salted hash of the domain) and to all ('*'): the
-- per-domain and overall hourly caps read a few rows a minute here instead of counting every send.
-- Each writer counts in a row of its own (shard), so daemons counting at once never wait for a row.
CREATE TABLE code_send_minutes (
    scope    TEXT NOT NULL,
    minute   INTEGER NOT NULL,                     -- Unix time // 60
    shard    INTEGER NOT NULL DEFAULT 0,           -- the writer's own row (PostgreSQL: its backend)
    sends    INTEGER NOT NULL,
    PRIMARY KEY (scope, minute, shard)
) WITHOUT ROWID;

-- One row per wrong code tried on a mailbox's codes: the guessing budget counts here.
CREATE TABLE code_failures (
    subject  TEXT NOT NULL,                        -- salted hash of the mailbox
    at       INTEGER NOT NULL
);
CREATE INDEX code_failures_subject ON code_failures (subject, at);

-- Every answered request: the dedupe record AND the reply outbox. A request id seen again is
-- answered from reply_event, never decided twice.
CREATE TABLE requests (
    event_id         TEXT PRIMARY KEY,
    pubkey           TEXT NOT NULL,
    method           TEXT NOT NULL,                -- '' when the request could not be decoded
    outcome          TEXT NOT NULL,                -- 'ok' or an error code
    created_at       INTEGER NOT NULL,             -- the request event's created_at
    processed_at     INTEGER NOT NULL,
    reply_id         TEXT NOT NULL UNIQUE,
    reply_event      TEXT NOT NULL,                -- the signed reply, as JSON
    published_at     INTEGER,                      -- NULL until a relay accepted it
    publish_attempts INTEGER NOT NULL DEFAULT 0,
    next_publish_at  INTEGER NOT NULL
);
CREATE INDEX requests_unpublished ON requests (next_publish_at) WHERE published_at IS NULL;
CREATE INDEX requests_created ON requests (created_at);
CREATE INDEX requests_processed ON requests (processed_at);  -- where a restart's catch-up begins

-- The mail outbox. params holds template values (a code among them) only until the mail is sent.
CREATE TABLE mail (
    id               INTEGER PRIMARY KEY,
    message_id       TEXT NOT NULL UNIQUE,
    user_id          TEXT,
    request_id       TEXT,
    kind             TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    params           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    claimed_by       TEXT,                         -- the worker run sending it now (NULL: nobody)
    lang             TEXT NOT NULL DEFAULT ''      -- the templates' language (BCP 47; '' the default)
);
CREATE INDEX mail_queued ON mail (next_attempt_at) WHERE status = 'queued';
CREATE INDEX mail_user ON mail (user_id);
-- Mail that outlives its user (deletion notices), by address: a later erasure finds it.
CREATE INDEX mail_orphans ON mail (recipient) WHERE user_id IS NULL;

-- Every admin action taken through the CLI: who, when, what, on what. user_id ties a row to the
-- user it concerns, so erasing the user can find (and scrub the addresses of) its rows.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '',
    user_id TEXT
);
CREATE INDEX audit_user ON audit (user_id) WHERE user_id IS NOT NULL;

-- Addresses and domains refused at signup, login and email change (email_blocked).
CREATE TABLE blocks (
    value       TEXT PRIMARY KEY,                  -- a normalised address, or a lower-case domain
    kind        TEXT NOT NULL CHECK (kind IN ('address', 'domain')),
    reason      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    actor       TEXT NOT NULL
);

-- Erased users' addresses, as HMAC-SHA256 under meta's erasure_salt: "was this address deleted?"
CREATE TABLE erased_addresses (
    address_hash TEXT PRIMARY KEY,
    erased_at    INTEGER NOT NULL,
    erased_by    TEXT NOT NULL                     -- 'admin <actor>' or 'the account owner'
);

-- Of several daemons on one database (PostgreSQL), the one running each singleton (reply
-- retries, pruning, the announcement) until a time; another takes over once that has passed.
CREATE TABLE leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,                         -- a daemon run's random id
    until   INTEGER NOT NULL
);

-- Values the database keeps about itself.
CREATE TABLE meta (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
INSERT INTO meta (name, value) VALUES ('erasure_salt', lower(hex(randomblob(32))));
