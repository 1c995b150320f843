"""The guard's direct notifications (issue 16), through ``apprise``: webhooks (``json://``),
Slack (``slack://``), email (``mailto://``), Telegram (``tgram://``) and the rest of apprise's list.

The URLs carry secrets (tokens, passwords): they come from ``--notify`` or the environment
(``DEALVAULT_NOTIFY``, space-separated) at run time, never from the repository, and they are never
printed (a target is named by its scheme and position only).

One notification per decision the guard takes (act, alert) and per new problem (a problem repeated
poll after poll, e.g. an RPC outage, is sent once until it stops), never one per poll. Sending runs
on a worker thread, so a slow or failing receiver never delays a poll; each target is tried
``attempts`` times with a doubling back-off; a failure is said (``say``) and the guard goes on.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import apprise

from dealvault.errors import InputError

if TYPE_CHECKING:
    from dealvault.guard.loop import PollReport

__all__ = ["ENV", "Message", "Notifier", "notify_urls"]

ENV = "DEALVAULT_NOTIFY"


def notify_urls(given: Sequence[str] = (), environ: dict[str, str] | None = None) -> list[str]:
    """The URLs of ``--notify`` and of ``DEALVAULT_NOTIFY`` (space-separated), each once."""
    env = os.environ if environ is None else environ
    urls = [*given, *env.get(ENV, "").split()]
    return list(dict.fromkeys(u for u in urls if u))


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    level: str = "warning"  # apprise's notify type: info, success, warning, failure


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|\d+")


class Notifier:
    """Sends :class:`Message`\\ s to every URL; ``on_poll(report)`` turns a guard poll into messages."""

    def __init__(self, urls: Sequence[str], *, attempts: int = 3, backoff: float = 1.0, timeout: float = 10.0,
                 say: Callable[[str], None] = print) -> None:
        self.targets: list[tuple[str, apprise.Apprise]] = []
        for i, url in enumerate(urls):
            a = apprise.Apprise()
            if not a.add(url):
                raise InputError(f"--notify #{i + 1} ({_scheme(url)}://...): not a URL apprise knows")
            self.targets.append((f"#{i + 1} {_scheme(url)}", a))
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self.say = say
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[Message | None] = queue.Queue()
        self._problems: set[str] = set()  # the previous poll's problems (their shape): said once while they last
        self._worker = threading.Thread(target=self._run, name="dealvault-notify", daemon=True)
        if self.targets:
            self._worker.start()

    # ---- what is sent

    def send(self, message: Message) -> None:
        """Queue ``message`` for every target (returns at once)."""
        if self.targets:
            self._queue.put(message)

    def on_poll(self, report: PollReport) -> None:
        """A message per act or alert decision, and per problem not already there at the last poll."""
        for d in report.decisions:
            if d.kind in ("act", "alert"):
                self.send(Message(f"DealVault guard: {d.deal_id} {d.rule} {d.kind}", d.text,
                                  "failure" if d.kind == "act" else "warning"))
        now = set()
        for text in report.problems:
            shape = _VARIABLE.sub("#", text)
            now.add(shape)
            if shape not in self._problems:
                self.send(Message("DealVault guard: problem", text, "failure"))
        self._problems = now

    # ---- delivery

    def _deliver(self, name: str, target: apprise.Apprise, m: Message) -> bool:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                if target.notify(body=m.body, title=m.title, notify_type=m.level, timeout=self.timeout):
                    return True
                why = "the receiver refused it or did not answer"
            except Exception as exc:  # apprise's own errors: never the guard's
                why = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        self.say(f"guard: problem: notification {name}: not sent after {self.attempts} attempts ({why}): {m.title}")
        return False

    def _run(self) -> None:
        while True:
            m = self._queue.get()
            try:
                if m is None:
                    return
                for name, target in self.targets:
                    if self._deliver(name, target, m):
                        self.sent += 1
                    else:
                        self.failed += 1
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued message has been sent or given up on."""
        if self.targets:
            self._queue.join()

    def close(self) -> None:
        """Send what is queued, then stop the worker."""
        if self.targets and self._worker.is_alive():
            self._queue.put(None)
            self._worker.join()
