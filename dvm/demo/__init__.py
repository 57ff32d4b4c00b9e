"""``scripts/demo``: a local relay, a mail catcher, the daemon, and a simulated SIGit browser.

Development tooling, not part of the service: it needs the ``test`` extra (nostr-relay,
aiosmtpd, nostr-sdk), which ``scripts/demo`` installs.
"""
