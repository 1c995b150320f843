"""Observing deals (issue 16): Prometheus metrics (:mod:`.metrics`), direct notifications (:mod:`.notify`),
the read-only status API and its page (:mod:`.api`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dealvault.guard.loop import PollReport

__all__ = ["hooks"]


def hooks(*calls: Callable[[PollReport], None] | None) -> Callable[[PollReport], None] | None:
    """One ``on_poll`` hook calling each of ``calls`` (None ones left out); None if there are none.
    One that raises does not stop the others (the guard reports it and goes on)."""
    live = [c for c in calls if c is not None]
    if not live:
        return None

    def on_poll(report: PollReport) -> None:
        errors: list[Exception] = []
        for c in live:
            try:
                c(report)
            except Exception as exc:  # raised again after the others ran
                errors.append(exc)
        if errors:
            raise errors[0]

    return on_poll
