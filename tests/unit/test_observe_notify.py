"""The guard's notifications (issue 16) through apprise's ``json://`` to a real local HTTP receiver:
one message per decision and per new problem, retried on failure, never raising into the guard."""

from __future__ import annotations

import time

import pytest
from helpers_http import Receiver

from dealvault.errors import InputError
from dealvault.guard.loop import PollReport
from dealvault.guard.rules import Decision, Rule
from dealvault.observe.notify import ENV, Message, Notifier, notify_urls


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_each_decision_and_each_new_problem_is_one_message(receiver):
    lines: list[str] = []
    n = Notifier([receiver.url()], backoff=0.05, say=lines.append)
    act = Decision("guard-001", Rule.ORACLE, "act", "the ETH price is 172800 s old (max 3600): hold")
    alert = Decision("guard-001", Rule.LOSS_BUDGET, "alert", "the operator's loss is 60% of its budget")
    n.on_poll(PollReport(block=1, decisions=[act, alert, Decision("guard-001", Rule.LTV, "clear", "cleared")]))
    n.on_poll(PollReport(block=2))  # a quiet poll: nothing
    for i in (3, 4, 5):  # the same outage poll after poll: said once
        n.on_poll(PollReport(block=None, problems=[f"poll {i}: the chain could not be read (ConnectionError: 0x{i:x})"]))
    n.on_poll(PollReport(block=6))
    n.on_poll(PollReport(block=None, problems=["poll 7: the chain could not be read (ConnectionError: 0x7)"]))  # again: new
    n.close()
    titles = [p["title"] for p in receiver.posts]
    assert titles == ["DealVault guard: guard-001 oracle act", "DealVault guard: guard-001 loss-budget alert",
                      "DealVault guard: problem", "DealVault guard: problem"], receiver.posts
    assert receiver.posts[0]["message"] == act.text and receiver.posts[0]["type"] == "failure"
    assert receiver.posts[1]["type"] == "warning"
    assert "poll 3" in receiver.posts[2]["message"] and "poll 7" in receiver.posts[3]["message"]
    assert {p["path"] for p in receiver.posts} == {"/hook"}
    assert n.sent == 4 and n.failed == 0 and lines == []


def test_a_receiver_failing_the_first_attempt_gets_the_message_on_the_retry():
    r = Receiver(fail_first=1)
    try:
        n = Notifier([r.url()], attempts=3, backoff=0.2, say=print)
        t0 = time.monotonic()
        n.send(Message("DealVault guard: d oracle act", "hold"))
        n.flush()
        took = time.monotonic() - t0
        assert r.answers == [500, 200] and [p["title"] for p in r.posts] == ["DealVault guard: d oracle act"]
        assert took >= 0.2  # the back-off before the retry
        assert n.sent == 1 and n.failed == 0
        n.close()
    finally:
        r.close()


def test_a_receiver_that_keeps_failing_is_given_up_after_the_attempts_and_nothing_raises():
    bad = Receiver(fail_first=100)
    good = Receiver()
    try:
        lines: list[str] = []
        n = Notifier([bad.url("/secret-token-path"), good.url()], attempts=3, backoff=0.05, say=lines.append)
        t0 = time.monotonic()
        n.on_poll(PollReport(block=1, decisions=[Decision("d", Rule.DESK, "act", "the desk is halted: hold")]))
        assert time.monotonic() - t0 < 0.5  # the poll does not wait for delivery
        n.close()
        assert bad.answers == [500, 500, 500] and bad.posts == []
        assert [p["title"] for p in good.posts] == ["DealVault guard: d desk act"]  # the other target still gets it
        assert n.sent == 1 and n.failed == 1
        assert len(lines) == 1 and "not sent after 3 attempts" in lines[0] and "#1 json" in lines[0]
        assert "secret-token-path" not in lines[0]  # a URL (its secrets) is never said
    finally:
        bad.close()
        good.close()


def test_nothing_listening_is_a_failure_said_not_raised():
    from dealvault.kit.anvil import free_port

    lines: list[str] = []
    n = Notifier([f"json://127.0.0.1:{free_port()}/x"], attempts=2, backoff=0.01, say=lines.append)
    n.send(Message("t", "b"))
    n.close()
    assert n.failed == 1 and "not sent after 2 attempts" in lines[0]


def test_urls_from_options_and_the_environment_and_bad_ones_refused():
    env = {ENV: "json://a/x  tgram://bot/chat json://a/x"}
    assert notify_urls(["slack://t/a/b", "json://a/x"], env) == ["slack://t/a/b", "json://a/x", "tgram://bot/chat"]
    assert notify_urls([], {}) == []
    with pytest.raises(InputError, match="#1") as e:
        Notifier(["nosuchscheme://tok3n@host"])
    assert "tok3n" not in str(e.value)
    assert Notifier([]).targets == []
