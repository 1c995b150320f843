"""Scenario 8: the Aave admin freezes or pauses a reserve mid-deal (the overlay's aave admin).

Mid-deal (MONETIZING: collateral, debt, USDTz and cUSDT on the books) every leg is *probed* under
each reserve state (simulated with eth_call from its sender at the latest block, so nothing
moves), so one deal shows exactly which legs fail, with which error, for:

* WETH frozen / cUSDT frozen (Aave error '28' RESERVE_FROZEN: no new supply or borrow);
* WETH paused / cUSDT paused (Aave error '29' RESERVE_PAUSED: nothing moves on that reserve).

The failing legs on the exit path are then sent for real and revert cleanly (state unchanged). The legs that do not touch the pool (redeem,
sell, buy) and the lens's riskView keep working. Then the deal closes once the reserves are
unfrozen / unpaused; a frozen reserve never blocks the exit (repay, withdraw, close run while
frozen), a paused cUSDT reserve blocks the repayment until it is unpaused.

v2 outcomes asserted here:
* before the probes the operator takes a new TWAP observation at the moved pair price (0.90) and
  waits a window, so the buy and the operator's sell pass their TWAP checks and any refusal is
  the reserve's (without it the sell would be PriceBelowTwap: the pair fell below its TWAP);
* a paused WETH reserve no longer blocks ``close`` (v1: RESERVE_PAUSED): close withdraws what the
  reserve can pay now (nothing), leaves the collateral booked as aTokens (Closed.collateralLeft),
  and counts it in the PnL; the aTokens cannot move while the reserve is paused (the owner's
  withdraw of them reverts '29'); once unpaused the owner withdraws them, and through them the WETH.
"""

from __future__ import annotations

from decimal import Decimal

import ape

from dealvault.kit.evm import impersonating, send
from dealvault.kit.funding import fund
from dealvault.kit.overlay import erc20, set_reserve_frozen, set_reserve_paused

DEADLINE = 2**64
ETH = 10**18
USD = 10**6
MONETIZING, CLOSED = 4, 6
OK = "ok"
FROZEN, PAUSED = "28", "29"  # Aave V3 Errors.RESERVE_FROZEN / RESERVE_PAUSED

# leg -> (method, args builder, sender role)
LEGS = {
    "supply": ("supply", lambda d: (d.weth9, ETH), "operator"),
    "addCollateral": ("addCollateral", lambda d: (d.weth9, ETH), "operator"),
    "borrow": ("borrow", lambda d: (d.cusdt, 1_000 * USD), "operator"),
    "buy": ("buy", lambda d: (d.cusdt, 1_000 * USD, 0, DEADLINE), "operator"),
    "redeem": ("redeem", lambda d: (d.cusdt, 10_000 * USD), "operator"),
    "sell": ("sell", lambda d: (d.cusdt, 1_000 * USD, 0, DEADLINE), "operator"),
    "repay": ("repay", lambda d: (d.cusdt, 1_000 * USD), "operator"),
    "ownerRepay": ("ownerRepay", lambda d: (d.cusdt, 1_000 * USD), "owner"),
    "withdrawCollateral": ("withdrawCollateral", lambda d: (d.weth9, ETH), "operator"),
    "deleverage": ("deleverage", lambda d: (d.weth9, d.cusdt, ETH, 0, DEADLINE), "operator"),
}

# What each reserve state does to each leg (from Aave V3 ValidationLogic: supply/borrow check
# frozen and paused of their reserve; repay, withdraw check paused only).
EXPECTED = {
    ("WETH", "frozen"): {"supply": FROZEN, "addCollateral": FROZEN},
    ("cUSDT", "frozen"): {"borrow": FROZEN},
    ("WETH", "paused"): {"supply": PAUSED, "addCollateral": PAUSED, "withdrawCollateral": PAUSED, "deleverage": PAUSED},
    ("cUSDT", "paused"): {"borrow": PAUSED, "repay": PAUSED, "ownerRepay": PAUSED, "deleverage": PAUSED},
}


def _set(w3, market, asset: str, mode: str, on: bool) -> None:
    (set_reserve_frozen if mode == "frozen" else set_reserve_paused)(w3, market, asset, on)


def _flags(market, w3, asset: str) -> tuple[bool, bool]:
    """(frozen, paused) read from the data provider (raw)."""
    dp = market.data_provider_contract(w3)
    frozen = dp.functions.getReserveConfigurationData(asset).call()[-1]
    paused = dp.functions.getPaused(asset).call()
    return bool(frozen), bool(paused)


def _web3_vault(deal):
    """The vault as a web3 contract (eth_call probes: no mining, no ape trace on a revert)."""
    import json

    abi, seen = [], set()
    for a in deal.vault.contract_type.abi:  # the compiler's ABI may list a getter twice: web3 refuses that
        entry = a.model_dump(mode="json", by_alias=True)
        key = (entry["type"], entry.get("name"), json.dumps([i["type"] for i in entry.get("inputs", [])]))
        if key not in seen:
            seen.add(key)
            abi.append(entry)
    return deal.w3.eth.contract(address=str(deal.vault.address), abi=abi)


def _errors_by_selector(deal) -> dict[bytes, str]:
    from eth_utils import keccak

    out = {}
    for a in deal.vault.contract_type.abi:
        if a.type == "error":
            out[keccak(text=a.selector)[:4]] = a.name
    return out


def probe(deal, leg: str) -> str:
    """Simulate ``leg`` (eth_call from its sender at the latest block): "ok" or its revert reason
    (Aave's string, or the vault's custom error name). Nothing is sent, so nothing can change."""
    from eth_abi import decode
    from web3.exceptions import ContractLogicError

    method, args, role = LEGS[leg]
    sender = str((deal.owner if role == "owner" else deal.operator).address)
    fn = getattr(_web3_vault(deal).functions, method)(*args(deal))
    try:
        fn.call({"from": sender, "gas": 3_000_000})  # redeem needs >= 567,301 (v2)
        return OK
    except ContractLogicError as exc:
        data = exc.data if isinstance(exc.data, (bytes, str)) else None
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else (data or b"")
        if raw[:4] == bytes.fromhex("08c379a0"):
            return decode(["string"], raw[4:])[0]
        return _errors_by_selector(deal).get(raw[:4], f"0x{raw.hex()}")


def _mid_deal(deal, w3, market, owner):
    pos = deal.position(5_000 * ETH, 2900, keep_working=10 * ETH)
    deal.leg("redeem", deal.cusdt, 50_000 * USD, label="redeem r0 50,000")
    # the pair at 0.90: a buy passes the discount limit (<= 0.95) and a sell the floor (>= 0.85), so
    # a refusal of either would be the reserve's; v2: observed at that price a window ago, so both
    # pass their TWAP checks too
    deal.reopen_discount(price=Decimal("0.90"))
    deal.observe_and_wait()
    t = deal.lens.twap(deal.vault.address, deal.cusdt)
    assert t.spotE6 == t.twapE6 and 899_000 <= t.spotE6 <= 900_000
    fund(w3, deal.cusdt, str(owner.address), 100_000 * USD)
    w3.eth.wait_for_transaction_receipt(erc20(w3, deal.cusdt).functions.approve(str(deal.vault.address), 2**256 - 1).transact({"from": str(owner.address)}))  # mined before ape picks this sender's next nonce
    assert deal.view().phase == MONETIZING
    return pos


def _matrix(deal, w3, market, mode: str) -> None:
    # baseline: every leg passes with the reserves open
    base = {leg: probe(deal, leg) for leg in LEGS}
    assert base == {leg: OK for leg in LEGS}, base
    for symbol in ("WETH", "cUSDT"):
        asset = deal.weth9 if symbol == "WETH" else deal.cusdt
        _set(w3, market, asset, mode, True)
        assert _flags(market, w3, asset) == ((True, False) if mode == "frozen" else (False, True))
        got = {leg: probe(deal, leg) for leg in LEGS}
        want = {leg: EXPECTED[(symbol, mode)].get(leg, OK) for leg in LEGS}
        deal.note(f"{symbol} {mode}: " + ", ".join(f"{k} {'ok' if v == OK else 'x ' + v}" for k, v in got.items()))
        assert got == want, (symbol, mode, got)
        s = deal.view()  # the lens's risk view still answers, with the pool's account data
        assert s.debt == s.poolDebt == deal.raw.debt() and (s.poolCollateralBase, s.poolDebtBase) == deal.raw.account()[:2]
        _set(w3, market, asset, mode, False)
        assert _flags(market, w3, asset) == (False, False)


def _close_and_check(deal, pos):
    raw = deal.raw
    tx = deal.leg("close")
    s = deal.view()
    assert s.phase == CLOSED and s.realizedPnlEth == 0 and raw.eth() == 5_000 * ETH
    assert s.realizedPnlUsd == (raw.bal(deal.cusdt) - s.ownerRepaid) * 100
    assert s.writtenOffUsdtz == 0 and s.repaidOnBehalf == 0
    ev = [e for e in tx.events if e.event_name == "Closed"][0]
    assert ev.collateralLeft == 0 and ev.realizedPnlUsd == s.realizedPnlUsd
    return tx


def test_reserve_frozen_mid_deal(fork_vault, make_deal, w3, market, owner):
    deal = make_deal(fork_vault, "scenario 8a: Aave reserves frozen mid-deal")
    pos = _mid_deal(deal, w3, market, owner)
    _matrix(deal, w3, market, "frozen")

    # both frozen: the exit runs (redeem, repay, even close); the deal closes after the unfreeze
    set_reserve_frozen(w3, market, deal.weth9, True)
    set_reserve_frozen(w3, market, deal.cusdt, True)
    deal.row("WETH+cUSDT frozen")
    deal.redeem_all()
    deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all (frozen)")
    assert deal.raw.debt() == 0
    assert probe_close(deal) == OK  # a frozen reserve does not block close
    set_reserve_frozen(w3, market, deal.weth9, False)
    set_reserve_frozen(w3, market, deal.cusdt, False)
    deal.note("the admin unfreezes both reserves")
    _close_and_check(deal, pos)


def probe_close(deal) -> str:
    LEGS["close"] = ("close", lambda d: (), "operator")
    try:
        return probe(deal, "close")
    finally:
        del LEGS["close"]


def test_reserve_paused_mid_deal(fork_vault, make_deal, w3, market, owner):
    deal = make_deal(fork_vault, "scenario 8b: Aave reserves paused mid-deal")
    v, raw = deal.vault, deal.raw
    pos = _mid_deal(deal, w3, market, owner)
    _matrix(deal, w3, market, "paused")

    # both paused: monetizing still works (no pool), repaying does not
    set_reserve_paused(w3, market, deal.weth9, True)
    set_reserve_paused(w3, market, deal.cusdt, True)
    deal.row("WETH+cUSDT paused")
    deal.redeem_all()
    deal.refused(PAUSED, "repay", deal.cusdt, 2**256 - 1)
    # DebtOutstanding names the debt at the second the leg ran (between the reads around it)
    t0 = raw.now()
    deal.refused(v.DebtOutstanding, "close",
                 expect_fn=lambda e: e["debt"] in {raw.debt_at(t) for t in range(t0, raw.now() + 2)})
    # cUSDT unpaused: the debt is repaid
    set_reserve_paused(w3, market, deal.cusdt, False)
    deal.note("the admin unpauses cUSDT")
    deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
    assert raw.debt() == 0

    # v2: close runs with WETH still paused; the collateral cannot leave the paused reserve, so it
    # stays booked as aTokens (collateralLeft) and counts in the PnL
    coll = deal.collateral_of(deal.weth9)
    assert coll == pos["working"]
    a_before = raw.atoken("WETH")
    tx = deal.leg("close", label="close (WETH paused)")
    s = deal.view()
    ev = [e for e in tx.events if e.event_name == "Closed"][0]
    assert s.phase == CLOSED and ev.collateralLeft == coll and s.collateralBooked == coll
    assert s.realizedPnlEth == ev.realizedPnlEth == 0 and raw.eth() == 5_000 * ETH - coll
    assert s.realizedPnlUsd == (raw.bal(deal.cusdt) - s.ownerRepaid) * 100 and s.writtenOffUsdtz == 0
    assert raw.atoken("WETH") == a_before >= pos["working"]  # nothing left the paused reserve
    # the aTokens cannot move while the reserve is paused
    a_weth = market.a_tokens["WETH"]
    with ape.reverts(PAUSED):
        v.withdraw(a_weth, coll, sender=owner)
    set_reserve_paused(w3, market, deal.weth9, False)
    deal.note("the admin unpauses WETH")
    # after CLOSED the owner takes the aTokens (all of them: the booked collateral and its interest)
    a_all = raw.atoken("WETH")
    o = str(owner.address)
    o_a = raw.bal(a_weth, o)
    deal.leg("withdraw", a_weth, a_all, sender=owner, label="owner withdraws aWETH")
    assert raw.atoken("WETH") == 0 and raw.bal(a_weth, o) - o_a >= a_all - 1  # aToken transfers round by a wei
    # ... and the WETH through them, from the pool
    pool = market.pool_contract(w3)
    weth_before = raw.bal(deal.weth9, o)
    with impersonating(w3, o):
        send(w3, pool.functions.withdraw(deal.weth9, 2**256 - 1, o), o)
    assert raw.bal(deal.weth9, o) - weth_before >= coll
    # the owner's ETH: everything else the vault holds
    deal.leg("withdraw", "0x0000000000000000000000000000000000000000", raw.eth(), sender=owner, label="owner withdraws ETH")
    assert raw.eth() == 0
