"""Watching deals from outside: the read-only status API and its page (:mod:`dealvault.observe.api`)."""
