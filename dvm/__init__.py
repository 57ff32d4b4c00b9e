"""sigit-dvm: a Nostr DVM that runs email signup and login for SIGit."""

from importlib import metadata

try:  # set at install time from git (setuptools-scm: pyproject.toml, docs/changelog.md)
    __version__ = metadata.version("sigit-dvm")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"
