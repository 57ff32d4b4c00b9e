"""sigit-dvm: a Nostr DVM that runs email signup and login for SIGit."""

__version__ = "0.1.0"
