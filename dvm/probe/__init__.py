"""``sigit-dvm probe``: an installed daemon checked end to end, through its real relays, as a
browser signs up (:mod:`dvm.probe.run` says what it does and what it leaves behind)."""
