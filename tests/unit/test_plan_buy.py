"""The buy's size search (dealvault.run.steps.plan_buy) quotes its binary search's next levels in
one JSON-RPC batch: it must pick exactly the amount the one-quote-per-step search picks, in a few
round trips. No chain: the router's quotes and the cap verdict are stand-ins here; the real ones
run in test_orchestrator (the demo deal's buy is bounded by the price limit)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from dealvault.run import steps
from dealvault.units import E6


def one_quote_per_step(held: int, good) -> int:
    """The search as it was before the batching (one getAmountsOut per step)."""
    if good(held):
        return held
    lo, hi, stop = 0, held, max(held // E6, 1)
    while hi - lo > stop:
        mid = (lo + hi) // 2
        if good(mid):
            lo = mid
        else:
            hi = mid
    return lo // E6 * E6 if lo > E6 else lo


def cases():
    rnd = random.Random(138)
    fixed = [(0, 0), (1, 0), (1, 1), (E6, E6 - 1), (E6 + 1, E6), (10**13, 0), (10**13, 10**13 - 1), (10**13, 10**13)]
    drawn = []
    for _ in range(300):
        held = rnd.choice([rnd.randrange(1, 2 * E6), rnd.randrange(1, 10**13), rnd.randrange(1, 10**18)])
        drawn.append((held, rnd.randrange(0, held + 2)))
    return fixed + drawn


def test_batched_search_picks_the_same_amount_in_at_most_six_round_trips(monkeypatch):
    monkeypatch.setattr(steps, "nav_e26", lambda rv: 0)
    for held, limit in cases():
        batches: list[list[int]] = []

        def quotes(amounts, path, batches=batches):
            batches.append(list(amounts))
            return [3 * a + 7 for a in amounts]

        run = SimpleNamespace(stable="S", venues=SimpleNamespace(usdtz="U"), stable_books=lambda s, held=held: held, quotes=quotes)
        monkeypatch.setattr(steps, "buy_within", lambda a, out, limit=limit, **kw: out == 3 * a + 7 and a <= limit)
        amount, quote, info = steps.plan_buy(run, SimpleNamespace(usdtzHeld=0), SimpleNamespace(buy_limit_e6=lambda: 0))
        want = one_quote_per_step(held, lambda a, limit=limit: a <= limit)
        assert amount == want, (held, limit)
        assert quote == (3 * amount + 7 if amount else 0)
        assert info["bounded_by"] == ("stable held" if limit >= held else "price limit / exposure cap")
        assert len(batches) <= 6 and all(len(b) <= 2**steps.SEARCH_DEPTH for b in batches), (held, [len(b) for b in batches])
        assert all(a > 0 for b in batches for a in b)  # the router refuses a zero amount: never asked


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_midpoints_are_those_the_search_can_visit(depth):
    lo, hi, stop = 0, 1_000, 1
    pts = steps.midpoints(lo, hi, depth, stop)
    assert len(pts) == 2**depth - 1 and pts[0] == 500
    # every path of `depth` steps only visits listed points
    for bits in range(2**depth):
        a, b = lo, hi
        for k in range(depth):
            mid = (a + b) // 2
            assert mid in pts
            a, b = (mid, b) if bits >> k & 1 else (a, mid)
