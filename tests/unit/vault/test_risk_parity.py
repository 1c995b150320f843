"""dealvault/vault/risk.py (the harness's cap math) against contracts/libraries/RiskLib.sol itself
(through contracts/test/RiskLibHarness.sol), by eth_call: every function, the edges and random
inputs over the vault's bounds (price <= 1e16, amounts < 1e30). One JSON-RPC batch per function."""

from __future__ import annotations

import random

import pytest

from dealvault.vault import risk

N = 400  # random cases per function, besides the edges
PRICE_MAX = 10**16
AMOUNT_MAX = 10**30
EDGES = (0, 1, 2, 10**6, 10**18, 3_000 * 10**8, PRICE_MAX - 1, PRICE_MAX, AMOUNT_MAX - 1)


@pytest.fixture(scope="module")
def harness(project, deployer, w3):
    c = project.RiskLibHarness.deploy(sender=deployer)
    from dealvault.artifacts import own

    return w3.eth.contract(address=c.address, abi=own("RiskLibHarness").abi)


def _r(rng: random.Random, top: int) -> int:
    """Random over [0, top), log-uniform half the time (small and large values alike)."""
    if rng.random() < 0.5:
        return rng.randrange(top)
    return rng.randrange(10 ** rng.randrange(0, len(str(top))) or 1) % top


def _cases(rng: random.Random, tops: tuple[int, ...]) -> list[tuple[int, ...]]:
    edge = [tuple(min(e, t - 1) if t > 0 else e for t in tops) for e in EDGES]
    return edge + [tuple(_r(rng, t) for t in tops) for _ in range(N)]


def _batch(w3, fn, cases):
    with w3.batch_requests() as batch:
        for c in cases:
            batch.add(fn(*c).call())
        return batch.execute()


FUNCS = [
    ("ethValue", risk.eth_value, (AMOUNT_MAX, PRICE_MAX + 1)),
    ("ltvWithin", risk.ltv_within, (AMOUNT_MAX, AMOUNT_MAX, PRICE_MAX + 1, 3001)),
    ("ltvBps", risk.ltv_bps, (AMOUNT_MAX, AMOUNT_MAX, PRICE_MAX + 1)),
    ("poolLtvBps", risk.pool_ltv_bps, (AMOUNT_MAX, AMOUNT_MAX)),
    ("navE26", risk.nav_e26, (AMOUNT_MAX, PRICE_MAX + 1, AMOUNT_MAX, AMOUNT_MAX, AMOUNT_MAX)),
    ("costOut", risk.cost_out, (AMOUNT_MAX, AMOUNT_MAX, AMOUNT_MAX)),
    ("rayMul", risk.ray_mul, (AMOUNT_MAX, 10**30)),
]


@pytest.mark.parametrize("name,py,tops", FUNCS, ids=[f[0] for f in FUNCS])
def test_python_equals_risklib(harness, w3, name, py, tops):
    rng = random.Random(name)
    cases = _cases(rng, tops)
    got = _batch(w3, getattr(harness.functions, name), cases)
    for c, sol in zip(cases, got, strict=True):
        assert py(*c) == sol, (name, c, py(*c), sol)


@pytest.mark.parametrize("name,py", [("exposureWithin", risk.exposure_within), ("exposureBps", risk.exposure_bps)])
def test_exposure_with_signed_nav(harness, w3, name, py):
    """NAV may be negative (debt above the assets): the exposure predicates' edge."""
    rng = random.Random(name)
    cases = []
    for usdtz, nav, cap in _cases(rng, (AMOUNT_MAX, AMOUNT_MAX * 10**20, 2501)):
        signed = -nav if rng.random() < 0.3 else nav
        cases.append((usdtz, signed, cap) if name == "exposureWithin" else (usdtz, signed))
    cases += [(1, 0, 2500), (1, -1, 2500), (0, -5, 0)] if name == "exposureWithin" else [(1, 0), (1, -1), (0, -5)]
    got = _batch(w3, getattr(harness.functions, name), cases)
    for c, sol in zip(cases, got, strict=True):
        assert py(*c) == sol, (name, c, py(*c), sol)


def test_nav_usd_rounds_like_the_contract(harness, w3):
    rng = random.Random("navUsd")
    cases = [(v,) for v in (0, -1, 1, 10**18 - 1, 10**18, 10**18 + 1, -(10**40))]
    cases += [((-1 if rng.random() < 0.3 else 1) * _r(rng, 10**50),) for _ in range(N)]
    got = _batch(w3, harness.functions.navUsd, cases)
    for c, sol in zip(cases, got, strict=True):
        assert risk.nav_usd(*c) == sol, (c, sol)


def test_the_cap_edges_agree_exactly(harness, w3):
    """At an LTV cap's exact edge (debt = cap x collateral value) both sides say within, one unit
    of debt more both say above; the same for the exposure cap."""
    coll, price, cap = 30 * 10**18, 3_000 * 10**8, 3000
    edge = cap * coll * price // (10**20 * 10**4)
    cases = [(edge, coll, price, cap), (edge + 1, coll, price, cap)]
    got = _batch(w3, harness.functions.ltvWithin, cases)
    assert got == [risk.ltv_within(*c) for c in cases] == [True, False]
    nav = 300_000 * 10**26
    top = 2500 * nav // (10**20 * 10**4)
    cases = [(top, nav, 2500), (top + 1, nav, 2500)]
    got = _batch(w3, harness.functions.exposureWithin, cases)
    assert got == [risk.exposure_within(*c) for c in cases] == [True, False]
