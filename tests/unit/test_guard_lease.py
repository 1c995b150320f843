"""The guard's leases (issue 15, "Scale"): each deal watched by exactly one guard at a time, across
processes; a dead guard's deals taken by the others on their next claim.

SQLite and a real PostgreSQL server (``DATABASE_URL``; ``eval "$(.ci/postgres.sh)"`` sets one up):
each test gets its own database; the multi-process takeover test is PostgreSQL only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
from helpers_db import BACKENDS, PG_SKIP_REASON, db_factory, pg_enabled
from sqlalchemy import create_engine, text

from dealvault.guard.lease import Leases, lease_key
from dealvault.record import RecordError, normalize_url, open_record
from dealvault.record.lock import advisory_key


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    with db_factory(request.param, tmp_path) as make:
        url = make()
        open_record(url).close()  # migrated once, before any guard opens it
        yield url


def deal_ids(n: int) -> list[str]:
    """Lease keys are server-wide on PostgreSQL: keep tests apart."""
    tag = uuid.uuid4().hex[:10]
    return [f"g-{tag}-{i:02d}" for i in range(n)]


def rows(url: str) -> list[tuple[str, str]]:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT deal_id, guard_id FROM guard_leases ORDER BY deal_id"))]
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------- one process, two guards


def test_one_guard_holds_a_deal_the_other_gets_it_after_release(db_url):
    ids = deal_ids(5)
    with Leases(db_url, "guard-a") as a, Leases(db_url, "guard-b") as b:
        assert a.claim(ids) == frozenset(ids) == a.held
        assert b.claim(ids) == frozenset()
        assert a.claim(ids) == frozenset(ids)  # kept, not taken twice
        assert a.holders() == b.holders() == dict.fromkeys(ids, "guard-a")
        a.release_all()
        assert a.held == frozenset() and a.holders() == {}
        assert b.claim(ids) == frozenset(ids)
        assert a.claim(ids) == frozenset()
        assert a.holders() == dict.fromkeys(ids, "guard-b")
    # closing releases: nothing held, no rows left
    with Leases(db_url, "guard-c") as c:
        assert c.holders() == {}
        assert c.claim(ids) == frozenset(ids)
    if db_url.startswith("postgresql"):
        assert rows(db_url) == []


def test_a_shrunk_set_releases_the_dropped_deals(db_url):
    ids = deal_ids(6)
    with Leases(db_url, "guard-a") as a, Leases(db_url, "guard-b") as b:
        assert a.claim(ids) == frozenset(ids)
        assert a.claim(ids[:2]) == frozenset(ids[:2])
        assert a.holders() == dict.fromkeys(ids[:2], "guard-a")
        assert b.claim(ids) == frozenset(ids[2:])
        assert a.holders() == {**dict.fromkeys(ids[:2], "guard-a"), **dict.fromkeys(ids[2:], "guard-b")}
        assert b.claim([]) == frozenset() and a.holders() == dict.fromkeys(ids[:2], "guard-a")
        assert a.claim(ids) == frozenset(ids)


def test_shares_spread_the_deals_over_the_guards_alive(db_url):
    """``share=True``: each guard holds at most ceil(deals / guards alive), releasing the excess
    for the others' next claims; a guard gone, the others' shares grow and cover its deals."""
    ids = deal_ids(7)
    with Leases(db_url, "guard-a") as a, Leases(db_url, "guard-b") as b:
        assert a.guards() == 0
        assert a.claim(ids, share=True) == frozenset(ids) and a.guards() == 1
        assert b.claim(ids, share=True) == frozenset() and a.guards() == b.guards() == 2
        assert len(a.claim(ids, share=True)) == 4  # its share of two
        assert len(b.claim(ids, share=True)) == 3 and a.held | b.held == frozenset(ids)
        with Leases(db_url, "guard-c") as c:
            assert c.claim(ids, share=True) == frozenset() and a.guards() == 3
            assert len(a.claim(ids, share=True)) == 3 and len(b.claim(ids, share=True)) == 3
            assert len(c.claim(ids, share=True)) == 1
            assert set(a.holders()) == set(ids) and sorted(a.holders().values()).count("guard-c") == 1
        assert a.guards() == 2
        assert len(a.claim(ids, share=True)) == 4 and len(b.claim(ids, share=True)) == 3
        assert a.holders() == {**dict.fromkeys(a.held, "guard-a"), **dict.fromkeys(b.held, "guard-b")}
        assert len(a.holders()) == 7
        assert a.claim(ids) == a.held  # without share: keeps what it has, takes what is free


def test_the_lease_is_not_the_deal_lock(db_url):
    """The guard watches a deal under its lease and takes the deal's own lock only to act:
    execute_deal (the deal lock) and the lease never exclude each other."""
    ids = deal_ids(1)
    assert lease_key(ids[0]) != advisory_key(ids[0])
    rec = open_record(db_url)
    try:
        with Leases(rec, "guard-a") as a:
            assert a.claim(ids) == frozenset(ids)
            with rec.lock(ids[0]):
                assert a.claim(ids) == frozenset(ids)
        assert rec.get_deal("nope") is None  # a Record given to Leases stays open
    finally:
        rec.close()


def test_invalid_deal_ids_are_refused(db_url):
    with Leases(db_url) as a:
        for bad in ["", "x" * 65, "a/b"]:
            with pytest.raises(RecordError, match="not a deal id"):
                a.claim([bad])
        assert a.guard_id == f"{os.getpid()}@{os.uname().nodename}"


def test_a_lost_connection_is_noticed_and_recovered():
    """PostgreSQL: the server ends the lease connection (pg_terminate_backend): its leases are
    gone at once (another guard takes them); the next claim notices, reconnects, starts over and
    never raises."""
    if not pg_enabled():
        pytest.skip(PG_SKIP_REASON)
    with db_factory("postgresql", None) as make:
        url = make()
        ids = deal_ids(4)
        admin = create_engine(normalize_url(url))
        with Leases(url, "guard-a") as a, Leases(url, "guard-b") as b:
            assert a.claim(ids) == frozenset(ids)
            with admin.begin() as conn:
                (pid,) = {r.backend_pid for r in conn.execute(text("SELECT backend_pid FROM guard_leases"))}
                assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            deadline = time.monotonic() + 10
            while b.claim(ids) != frozenset(ids):  # the server frees them as the backend exits
                assert time.monotonic() < deadline, "the terminated guard's leases were not freed"
                time.sleep(0.05)
            assert a.claim(ids) == frozenset() and a.reconnects == 1 and a.last_error is None
            assert a.holders() == dict.fromkeys(ids, "guard-b")
            b.release_all()
            assert a.claim(ids) == frozenset(ids)  # on its new connection
            # lost again while holding: the next claim takes them again on a new connection
            with admin.begin() as conn:
                conn.execute(text("SELECT pg_terminate_backend(backend_pid) FROM guard_leases WHERE guard_id = 'guard-a'"))
            wait_for(lambda: a.claim(ids) == frozenset(ids), 10, "the guard did not take its deals again")
            assert a.reconnects == 2 and a.last_error is None
            assert a.holders() == dict.fromkeys(ids, "guard-a")
        admin.dispose()


def test_a_takeover_beside_the_stale_row_sweep_keeps_its_row():
    """PostgreSQL: a guard takes over deals whose rows still name a dead guard while another guard
    sweeps stale rows in a loop. Every deal taken keeps its row (``holders()`` names its guard).
    Under READ COMMITTED the sweep deleted some of them (48 and 60 of these 150 rounds of 12 deals,
    in two runs): status and metrics then showed a held deal as unheld."""
    if not pg_enabled():
        pytest.skip(PG_SKIP_REASON)
    with db_factory("postgresql", None) as make:
        url = make()
        open_record(url).close()
        admin = create_engine(normalize_url(url))
        stale = text("INSERT INTO guard_leases (deal_id, guard_id, lock_key, backend_pid, acquired_at) "
                     "SELECT d, 'dead', k, 0, now() FROM unnest(CAST(:ids AS text[]), CAST(:keys AS bigint[])) AS t(d, k)")
        swept, skipped, done = [0], [0], threading.Event()
        with Leases(url, "guard-a") as a, Leases(url, "sweeper") as b:

            def sweeper() -> None:
                while not done.is_set():
                    n = b._backend.sweep()
                    swept[0] += n or 0
                    skipped[0] += n is None

            thread = threading.Thread(target=sweeper)
            thread.start()
            lost: list[str] = []
            try:
                for _ in range(150):
                    ids = deal_ids(12)
                    with admin.begin() as conn:
                        conn.execute(stale, {"ids": ids, "keys": [lease_key(d) for d in ids]})
                    assert a.claim(ids) == frozenset(ids)
                    h = a.holders()
                    lost += [d for d in ids if h.get(d) != "guard-a"]
                    a.release_all()
            finally:
                done.set()
                thread.join()
        admin.dispose()
    assert lost == [], f"{len(lost)} deals taken over lost their row to the sweep"
    assert swept[0] > 0  # the sweep ran against stale rows, beside the takeovers
    print(f"\nsweeps: {swept[0]} stale rows deleted, {skipped[0]} sweeps skipped beside a takeover")


# ------------------------------------------------------------------------------- processes

GUARD = textwrap.dedent(
    """
    import json, signal, sys, time
    from dealvault.guard.lease import Leases
    url, gid, out, interval, ids = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5].split(",")
    share = sys.argv[6] == "share"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Leases(url, gid) as leases, open(out, "a") as f:
        while True:
            held = leases.claim(ids, share=share)
            f.write(json.dumps({"t": time.time(), "held": sorted(held)}) + "\\n")
            f.flush()
            time.sleep(interval)
    """
)


def start_guard(url: str, gid: str, out, interval: float, ids: list[str], share: bool = False) -> subprocess.Popen:
    """The guard process; its stderr (the lease warnings) goes to ``<out>.err`` beside its reports."""
    with open(f"{out}.err", "w") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-c", GUARD, url, gid, str(out), str(interval), ",".join(ids),
                                 "share" if share else "all"],
                                stdout=subprocess.DEVNULL, stderr=err, text=True)


def reports(path) -> list[tuple[float, frozenset[str]]]:
    import json

    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.endswith("}"):
            r = json.loads(line)
            out.append((r["t"], frozenset(r["held"])))
    return out


def wait_for(cond, timeout: float, what: str, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, what
        time.sleep(step)


def stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_a_killed_guards_deals_are_taken_by_another(db_url, tmp_path):
    """Two guard processes: SIGKILL the one that holds the deals; the other holds them within two
    claim intervals (both backends: the server / the kernel frees a dead process's locks)."""
    ids, interval = deal_ids(4), 0.2
    first = start_guard(db_url, "first", tmp_path / "first.jsonl", interval, ids)
    procs = [first]
    try:
        with Leases(db_url, "observer") as obs:
            wait_for(lambda: obs.holders() == dict.fromkeys(ids, "first"), 60, "the first guard never held the deals")
            second = start_guard(db_url, "second", tmp_path / "second.jsonl", interval, ids)
            procs.append(second)
            wait_for(lambda: len(reports(tmp_path / "second.jsonl")) >= 2, 60, "the second guard never claimed")
            assert all(held == frozenset() for _, held in reports(tmp_path / "second.jsonl"))
            t_kill = time.time()
            os.kill(first.pid, signal.SIGKILL)
            wait_for(lambda: obs.holders() == dict.fromkeys(ids, "second"), 2 * interval + 1,
                     "the second guard did not take the deals", step=0.02)
            took = time.time() - t_kill
            assert took < 2 * interval, f"takeover took {took:.3f} s"
    finally:
        stop(procs)


def believed(spans: dict[str, list[tuple[float, float, frozenset[str]]]], t: float) -> dict[str, frozenset[str]]:
    """What each guard believed it held at time ``t``."""
    return {n: next((h for s, e, h in ss if s <= t < e), frozenset()) for n, ss in spans.items()}


def test_three_guards_share_twelve_deals_and_survive_a_sigkill(tmp_path):
    """The issue's test: three guard processes claim the same 12 deals every 0.2 s (sharing them,
    4 each). At every sampled moment (from the database: pg_locks joined with guard_leases) each
    deal is held by exactly one guard and all 12 are held; no two guards ever believe they hold a
    deal at the same time (their own reports). SIGKILL one: within two intervals its deals are
    held by the two others (6 each), which still never both hold a deal."""
    if not pg_enabled():
        pytest.skip(PG_SKIP_REASON)
    ids, interval = deal_ids(12), 0.2
    with db_factory("postgresql", tmp_path) as make:
        url = make()
        open_record(url).close()
        names = ["g0", "g1", "g2"]
        outs = {n: tmp_path / f"{n}.jsonl" for n in names}
        procs = {n: start_guard(url, n, outs[n], interval, ids, share=True) for n in names}
        admin = create_engine(normalize_url(url))

        def sample(obs: Leases, alive: set[str]) -> dict[str, str]:
            h = obs.holders()
            assert set(h) == set(ids), f"unheld: {sorted(set(ids) - set(h))}"
            assert set(h.values()) <= alive, h
            with admin.connect() as conn:  # one granted lock per lease key, whatever the rows say
                counts = dict(conn.execute(text(
                    "SELECT g.deal_id, count(l.pid) FROM guard_leases g LEFT JOIN pg_locks l "
                    "ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND ((l.classid::bigint << 32) | l.objid::bigint) = g.lock_key GROUP BY g.deal_id")).all())
            assert {d: counts.get(d) for d in ids} == dict.fromkeys(ids, 1)
            return h

        def per_guard(h: dict[str, str]) -> list[int]:
            return sorted(list(h.values()).count(n) for n in set(h.values()))

        try:
            with Leases(url, "observer") as obs:
                # one read per check: two reads could each see a different moment
                wait_for(lambda: (h := obs.holders()) and set(h) == set(ids) and per_guard(h) == [4, 4, 4],
                         60, "the three guards never shared the 12 deals")
                n_samples, t_end = 0, time.monotonic() + 2.0
                while time.monotonic() < t_end:
                    h = sample(obs, set(names))
                    assert per_guard(h) == [4, 4, 4], h  # steady: no deal changes hands
                    n_samples += 1
                    time.sleep(0.02)
                assert n_samples >= 20
                victim = names[1]
                assert list(h.values()).count(victim) == 4
                t_kill = time.time()
                os.kill(procs[victim].pid, signal.SIGKILL)
                survivors = set(names) - {victim}
                # one read per check: with two, the first could see the killed guard still holding its
                # deals and the second see them freed but not yet taken (the CI flake of 2026-11-30)
                wait_for(lambda: (h := obs.holders()) and set(h) == set(ids) and set(h.values()) <= survivors,
                         2 * interval + 2, "the survivors did not take the killed guard's deals")
                took = time.time() - t_kill
                procs[victim].wait(timeout=20)
                t_end = time.monotonic() + 1.5
                while time.monotonic() < t_end:
                    h = sample(obs, survivors)
                    time.sleep(0.02)
                assert per_guard(h) == [6, 6], h
                t_stop = time.time()
        finally:
            stop(procs.values())
            admin.dispose()

        # the guards' own beliefs: report i holds from its time to the next report (the killed
        # guard's last until its death, the others' until the sampling stopped)
        spans: dict[str, list[tuple[float, float, frozenset[str]]]] = {}
        for n in names:
            rs = [r for r in reports(outs[n]) if r[0] < t_stop]
            ends = [t for t, _ in rs[1:]] + [t_kill if n == victim else t_stop]
            spans[n] = [(t, e, held) for (t, held), e in zip(rs, ends, strict=True) if t < e]
        moments = sorted({s for ss in spans.values() for s, _, _ in ss})
        for t in moments:
            b = believed(spans, t)
            for i, x in enumerate(names):
                for y in names[i + 1:]:
                    assert not (b[x] & b[y]), f"{x} and {y} both believed they held {sorted(b[x] & b[y])} at {t}"
        # by their own reports too, the survivors cover the 12 deals within two intervals of the kill
        covered = next(t for t in moments if t > t_kill and frozenset().union(*believed(spans, t).values()) == frozenset(ids))
        print(f"\ntakeover after SIGKILL: {took * 1000:.0f} ms seen in the database, "
              f"{(covered - t_kill) * 1000:.0f} ms by the survivors' reports (claim interval {interval * 1000:.0f} ms)")
        assert took < 2 * interval and covered - t_kill < 2 * interval, (took, covered - t_kill)
        # the survivors released theirs on SIGTERM; the killed guard's rows were taken over
        assert rows(url) == []
