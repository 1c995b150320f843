"""DealVault (v2) against adversaries: a leaked operator key, donations, reentering venues, and the
stablecoin issuer blacklisting the vault on cUSDT.

Expectations are computed here from raw reads (pair reserves and price accumulators with the
Uniswap V2 formulas, the feed, the pool's index, the debt token, balances and Transfer logs), never
from the vault's own math; the vault's state is read through the lens (helpers_vault.risk_view).

What v2 changes here (each test's docstring says where): buys and the operator's sells are bounded
against the pair's own TWAP since the vault's observation (PriceAboveTwap / PriceBelowTwap, a buy
needs the observation ``twapWindow`` old); deleverage may not sell more than the debt needs
(DeleverageTooLarge); the operator's realized losses, a close's write-off included, are bounded by
the per-deal loss budget (LossBudgetExceeded); a repayment made on the vault's behalf directly on
the pool never loosens a cap and is booked as ``repaidOnBehalf`` (RepaidOnBehalf) at the vault's next
own debt action, and ``realizedPnlUsd`` subtracts it; the setters are one ``setParam``.
"""

from __future__ import annotations

import math
from decimal import Decimal

import ape
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address
from helpers_revert import deploy_reverts
from helpers_vault import collateral_of, compounded, lens_call, params, ray_mul, risk_view, stable_of

from dealvault.kit import fiattoken
from dealvault.kit import overlay as ov
from dealvault.kit.evm import impersonating, role_address, rpc, send
from dealvault.kit.funding import balance_of, fund
from tests.model import ceil_div, reserves, uni_out

ETH = 10**18
USD = 10**6
BPS = 10_000
DEADLINE = 2**63
MAX = 2**256 - 1
MASK192 = (1 << 192) - 1
ZERO = "0x0000000000000000000000000000000000000000"
FUNDED, SPLIT, WORKING, POSITIONED, MONETIZING, HOLDING, CLOSED = range(7)
LEG_SELL, LEG_DELEVERAGE, LEG_CLOSE = 5, 10, 11
N_PARAMS = 11  # IDealVault.Param
TRANSFER = keccak(text="Transfer(address,address,uint256)")


def sel(sig: str) -> bytes:
    return keccak(text=sig)[:4]


def events(contract, tx, name):
    return list(getattr(contract, name).from_receipt(tx))


def debt_of(w3, market, vault, symbol="cUSDT") -> int:
    return balance_of(w3, market.variable_debt_tokens[symbol], vault.address)


def price_now(w3, mirror) -> int:
    from dealvault.kit.mirror import feed

    return feed(w3, mirror.eth_usd_feed).functions.latestRoundData().call()[1]


_SCALED_ABI = [{"type": "function", "name": "scaledBalanceOf", "stateMutability": "view",
                "inputs": [{"type": "address", "name": "u"}], "outputs": [{"type": "uint256", "name": ""}]}]
_NORMALIZED_ABI = [{"type": "function", "name": "getReserveNormalizedVariableDebt", "stateMutability": "view",
                    "inputs": [{"type": "address", "name": "asset"}], "outputs": [{"type": "uint256", "name": ""}]}]


def scaled_debt(w3, market, vault, symbol="cUSDT", block="latest") -> int:
    c = w3.eth.contract(address=market.variable_debt_tokens[symbol], abi=_SCALED_ABI)
    return c.functions.scaledBalanceOf(vault.address).call(block_identifier=block)


def debt_index(w3, market, stable, block="latest") -> int:
    """The pool's normalized variable debt of ``stable`` (at ``block``'s timestamp)."""
    c = w3.eth.contract(address=market.pool, abi=_NORMALIZED_ABI)
    return c.functions.getReserveNormalizedVariableDebt(stable).call(block_identifier=block)


def next_block_at(w3, seconds: int = 1) -> int:
    """Pins the next block's timestamp (latest + seconds) and returns it."""
    ts = w3.eth.get_block("latest")["timestamp"] + seconds
    rpc(w3, "evm_setNextBlockTimestamp", [ts])
    return ts


def twap_ready(w3, vault, stable: str) -> None:
    """Moves the clock until a buy may use the vault's TWAP observation of ``stable``'s pair:
    observedAt (the lens's twap) + twapWindow (the lens's params). (helpers_vault.twap_ready reads
    twap().readyAt, which the lens computes from the wrong storage word: it equals observedAt.)"""
    observed_at = lens_call("twap", vault.address, stable)[2]
    assert observed_at > 0
    ready = observed_at + params(vault).twapWindow
    now = w3.eth.get_block("latest")["timestamp"]
    if ready > now:
        rpc(w3, "evm_increaseTime", [ready - now])
        rpc(w3, "evm_mine")  # a block at that time: an evm_revert to a later snapshot keeps it


# --- the pair's own TWAP, re-derived from its reserves and price accumulators -----------------------


def pair_state(w3, market, pair: str, block="latest") -> tuple[int, int, int]:
    """(spot, cumulative, lastTimestamp) of USDTz priced in the pair's stablecoin, UQ112x112 (the
    pair's own price{0,1}CumulativeLast and reserves)."""
    pc = market.pair_contract(w3, pair)
    r0, r1, last = pc.functions.getReserves().call(block_identifier=block)
    if pc.functions.token0().call().lower() == market.usdtz.lower():
        rz, rs, cum = r0, r1, pc.functions.price0CumulativeLast().call(block_identifier=block)
    else:
        rz, rs, cum = r1, r0, pc.functions.price1CumulativeLast().call(block_identifier=block)
    return (rs << 112) // rz, cum, last


def cumulative_at(state: tuple[int, int, int], ts: int) -> int:
    """The pair's cumulative price at ``ts`` (counterfactually accrued since its last update)."""
    spot, cum, last = state
    return (cum + spot * ((ts - last) % 2**32)) % 2**256


def observation(w3, market, pair: str, block: int) -> tuple[int, int]:
    """(cumulative mod 2**192, timestamp) the vault observed in ``block`` (split or observe)."""
    ts = w3.eth.get_block(block)["timestamp"]
    return cumulative_at(pair_state(w3, market, pair, block), ts) & MASK192, ts


def twap_at(w3, market, pair: str, obs: tuple[int, int], ts: int) -> int:
    """The TWAP (UQ112x112) since ``obs`` at ``ts``, from the pair's state now."""
    return ((cumulative_at(pair_state(w3, market, pair), ts) - obs[0]) & MASK192) // (ts - obs[1])


def e6(x112: int) -> int:
    return x112 * 10**6 >> 112


def pump_within(w3, market, stable: str, pair: str, factor_bps: int) -> int:
    """The largest stable amount a trader can swap into the pair while the USDTz spot stays at most
    factor_bps / 1e4 of the spot now (binary search on the pair formula)."""
    spot0 = pair_state(w3, market, pair)[0]
    r_in, r_out = reserves(w3, market, pair, stable)
    lo, hi = 0, r_in
    while lo < hi:
        mid = (lo + hi + 1) // 2
        out = uni_out(mid, r_in, r_out)
        if ((r_in + mid) << 112) // (r_out - out) * BPS <= spot0 * factor_bps:
            lo = mid
        else:
            hi = mid - 1
    return lo


def dump_to(w3, market, pair: str, target_e6: int) -> int:
    """USDTz a trader sells into the pair for a spot of about ``target_e6`` (sqrt(k / p))."""
    r_z, r_s = reserves(w3, market, pair, market.usdtz)
    r_z_target = math.isqrt(r_z * r_s * 10**6 // target_e6)
    return (r_z_target - r_z) * 1000 // 997


# --- transfers -------------------------------------------------------------------------------------


def token_transfers_from(w3, tx, who: str) -> list[tuple[str, str, int]]:
    """Every ERC-20 Transfer in the receipt whose sender is ``who``: (token, to, amount)."""
    receipt = w3.eth.get_transaction_receipt(tx.txn_hash)
    out = []
    for log in receipt["logs"]:
        t = log["topics"]
        if len(t) == 3 and bytes(t[0]) == TRANSFER and to_checksum_address(bytes(t[1])[-20:]) == who:
            out.append((log["address"], to_checksum_address(bytes(t[2])[-20:]), int.from_bytes(bytes(log["data"]), "big")))
    return out


def venue_set(mirror, market) -> set[str]:
    """Where the vault's tokens may go: the pool's reserves (aTokens hold the underlying), the pool,
    the four pairs, the desk, the wrappers, and the zero address (burns)."""
    s = {market.pool, market.desk, market.pair_usdtz_cusdt, market.pair_usdtz_cusdc, market.pair_weth_cusdt,
         market.pair_weth_cusdc, mirror.weth9, mirror.weth10, ZERO}
    s |= set(market.a_tokens.values())
    return {to_checksum_address(a) for a in s}


COLS = ("phase", "collateralWeth", "debt", "ltvBps", "nav", "exposureBps", "rung", "stableHeld", "usdtzHeld",
        "operatorLoss", "repaidOnBehalf")


def print_table(title, rows):
    print(f"\n== {title}")
    print(" | ".join(["leg".ljust(24)] + [c[:10].rjust(12) for c in COLS]))
    for label, rv in rows:
        print(" | ".join([label[:24].ljust(24)] + [str(int(getattr(rv, c)))[:12].rjust(12) for c in COLS]))


def base_loop(w3, vault, mirror, owner, operator, *, buy=20_000 * USD):
    """fund 100 ETH, split, supply 30 WETH9, borrow 22,500 cUSDT, buy (once the TWAP is ready).
    Returns the split's receipt (the TWAP observation's block)."""
    vault.fund(value=100 * ETH, sender=owner)
    split = vault.split(sender=operator)
    vault.supply(mirror.weth9, 30 * ETH, sender=operator)
    vault.borrow(mirror.cusdt, 22_500 * USD, sender=operator)
    if buy:
        twap_ready(w3, vault, mirror.cusdt)
        vault.buy(mirror.cusdt, buy, 0, DEADLINE, sender=operator)
    return split


# --- 3. leaked operator ---------------------------------------------------------------------

# A tightening and a loosening value of each Param (IDealVault.Param order) against DEFAULT_RISK.
PARAM_VALUES = [(2000, 3000), (100, 2500), (0, 100), (1, 3600), (9000, 500), (0, 100), (10**6, 850_000),
                (10**12, 1), (0, 50), (65_535, 1), (30 * 86_400, 0)]


def test_leaked_operator_cannot_extract_beyond_bounds(w3, mirror, market, vault, owner, operator, guardian):
    """Leaked operator key (scenario for the README).

    The attacker holds the operator key and a funded third-party account it controls on the
    Uniswap pairs ("attacker.trader"). It tries to take value out of the vault:

    1. Recipients and routes: no leg has a recipient or a path parameter. Every swap pays the
       vault itself, on the fixed path [stable, USDTz], [USDTz, stable] or [WETH9, stable];
       a foreign token as stable or wrapper is refused (UnknownStable / UnknownWrapper). Every
       ERC-20 Transfer out of the vault in every leg below goes to a venue (pool reserve, pair,
       desk, wrapper); the attacker's accounts never receive anything from the vault.
    2. Owner powers: withdraw, ownerRepay, setParam (every parameter, tighter or looser), resume,
       unpause, fund, role changes and ownership transfer revert NotOwner; hold, pause and
       revokeParam revert NotGuardian; acceptParam has nothing queued to apply (NothingQueued).
    3. Prices (v2), with minOut = 0 on every leg:
       - buy: the pair's spot before the swap must be within maxSlippageBps (1 %) above its TWAP
         since the vault's observation: a pump in the same block is refused (PriceAboveTwap),
         even one v1 accepted (to ~$0.90); a pump within 1 % passes and the vault's loss against
         the honest market is at most 1 % of the face bought. A pump held across blocks (the key
         can call observe() and wait twapWindow) moves the TWAP too, but the fixed limit still
         binds: the buy clears only at an effective price <= (1 - minDiscount) = $0.95
         (PriceAboveLimit);
       - sell: a dump more than 1 % below the TWAP is refused (PriceBelowTwap); within it the sale
         still clears only at >= sellFloorPrice (PriceBelowFloor); a sale above cost counts nothing
         against the loss budget;
       - deleverage: it may not sell more collateral than the debt needs (DeleverageTooLarge);
         the attacker dumps WETH first; the sale must pay >= collateral * oracle price *
         (1 - maxSlippage), else the router reverts (INSUFFICIENT_OUTPUT_AMOUNT); what it pays
         below the oracle value counts against the budget;
       - redeem: the desk pays par minus at most maxDeskFee, or the tranche fails into HOLDING;
       - close: the operator may not write the USDTz off past the budget (LossBudgetExceeded).
       The attacker's sandwich profit comes out of the pair, bounded by those per-leg limits, and
       the operator's realized losses by the per-deal budget.
    Remedy: the owner calls setOperator(new key) (or the guardian pauses/holds meanwhile).
    """
    v = vault
    trader = role_address("attacker.trader")
    attacker = [operator.address, trader]
    tokens = [mirror.cusdt, mirror.cusdc, market.usdtz, mirror.weth9, mirror.weth10,
              market.a_tokens["WETH"], market.variable_debt_tokens["cUSDT"]]
    venues = venue_set(mirror, market)
    pair = market.pair_usdtz_cusdt
    p = params(v)
    slip = p.maxSlippageBps
    rows = []

    def watch(tx, label):
        for token, to, amount in token_transfers_from(w3, tx, v.address):
            assert to in venues, (label, token, to, amount)
            assert to not in attacker
        rows.append((label, risk_view(v)))

    split = base_loop(w3, v, mirror, owner, operator, buy=0)
    obs = observation(w3, market, pair, split.block_number)
    budget = risk_view(v).lossBudget
    assert budget == 1_500 * USD  # 100 ETH x $3,000 x 50 bps
    loss = 0  # the operator's realized loss, computed here
    op_before = {t: balance_of(w3, t, operator.address) for t in tokens}

    # 1. foreign tokens / wrappers
    fake = market.a_tokens["WETH"]
    with ape.reverts(v.UnknownStable, token=market.usdtz):
        v.buy(market.usdtz, USD, 0, DEADLINE, sender=operator)
    with ape.reverts(v.UnknownStable, token=fake):
        v.borrow(fake, USD, sender=operator)
    with ape.reverts(v.UnknownWrapper, token=mirror.cusdt):
        v.supply(mirror.cusdt, 1, sender=operator)
    with ape.reverts(v.UnknownWrapper, token=mirror.cusdt):
        v.deleverage(mirror.cusdt, mirror.cusdt, 1, 0, DEADLINE, sender=operator)

    # 2. owner and guardian powers
    owner_only = [(v.withdraw, (ZERO, 1)), (v.withdraw, (mirror.cusdt, 1)), (v.ownerRepay, (mirror.cusdt, 1)),
                  (v.setOperator, (trader,)), (v.setGuardian, (trader,)), (v.transferOwnership, (trader,)),
                  (v.renounceOwnership, ()), (v.resume, ()), (v.unpause, ())]
    owner_only += [(v.setParam, (i, value)) for i, pair_values in enumerate(PARAM_VALUES) for value in pair_values]
    for fn, args in owner_only:
        with ape.reverts(v.NotOwner, caller=operator.address):
            fn(*args, sender=operator)
    with ape.reverts(v.NotOwner, caller=operator.address):
        v.fund(value=1, sender=operator)
    for fn in (v.hold, v.pause):
        with ape.reverts(v.NotGuardian, caller=operator.address):
            fn(sender=operator)
    for i in range(N_PARAMS):
        with ape.reverts(v.NotGuardian, caller=operator.address):
            v.revokeParam(i, sender=operator)
        with ape.reverts(v.NothingQueued, param=i):
            v.acceptParam(i, sender=operator)

    # 3a. pump before a buy (minOut 0)
    twap_ready(w3, v, mirror.cusdt)
    amount_in = 10_000 * USD
    limit_e6 = (BPS - p.minDiscountBps) * 100
    r_in, r_out = reserves(w3, market, pair, mirror.cusdt)
    honest_out = uni_out(amount_in, r_in, r_out)
    # a pump in the block before the buy, to ~$1.16 and to ~$0.90 (v1 let the latter through): refused
    for pump in (2_000_000 * USD, 490_000 * USD):
        snap = rpc(w3, "evm_snapshot")
        ov.swap_on_pair(w3, market, mirror.cusdt, market.usdtz, pump, trader=trader)
        ts = next_block_at(w3)
        spot, twap = pair_state(w3, market, pair)[0], twap_at(w3, market, pair, obs, ts)
        assert spot * BPS > twap * (BPS + slip)
        with ape.reverts(v.PriceAboveTwap, spotE6=e6(spot), twapE6=e6(twap)):
            v.buy(mirror.cusdt, amount_in, 0, DEADLINE, sender=operator)
        rpc(w3, "evm_revert", [snap])
    # held across blocks: the key observes the pumped pair (~$0.97) and waits the window; the
    # TWAP agrees with the spot then, and only the fixed limit ($0.95) refuses the buy
    snap = rpc(w3, "evm_snapshot")
    ov.swap_on_pair(w3, market, mirror.cusdt, market.usdtz, 810_000 * USD, trader=trader)
    v.observe(sender=operator)
    twap_ready(w3, v, mirror.cusdt)
    r_in2, r_out2 = reserves(w3, market, pair, mirror.cusdt)
    out = uni_out(amount_in, r_in2, r_out2)
    assert amount_in * 10**6 > limit_e6 * out
    with ape.reverts(v.PriceAboveLimit, priceE6=ceil_div(amount_in * 10**6, out), limitE6=limit_e6):
        v.buy(mirror.cusdt, amount_in, 0, DEADLINE, sender=operator)
    rpc(w3, "evm_revert", [snap])
    # a pump within the band (spot <= TWAP x 1.009) passes; the loss is bounded by the band
    trader_c0 = balance_of(w3, mirror.cusdt, trader)
    trader_c_spent = pump_within(w3, market, mirror.cusdt, pair, BPS + slip - 10)
    assert trader_c_spent > 0
    got_z = ov.swap_on_pair(w3, market, mirror.cusdt, market.usdtz, trader_c_spent, trader=trader)
    r_in, r_out = reserves(w3, market, pair, mirror.cusdt)
    pumped_out = uni_out(amount_in, r_in, r_out)
    assert pumped_out * limit_e6 >= amount_in * 10**6  # still under the price limit
    tx = v.buy(mirror.cusdt, amount_in, 0, DEADLINE, sender=operator)
    watch(tx, "buy after pump")
    bought = events(v, tx, "Bought")[0]
    assert bought.amountOut == pumped_out
    held, cost = pumped_out, amount_in  # the USDTz books, kept here
    lost = honest_out - pumped_out
    bound = honest_out - ceil_div(amount_in * 10**6, limit_e6)  # v1's bound: the fixed limit
    assert 0 < lost <= bound
    assert lost * BPS <= honest_out * slip  # v2: within maxSlippageBps of the honest output
    # the attacker back-runs: dumps its USDTz; its profit is what the vault overpaid, at most
    back = ov.swap_on_pair(w3, market, market.usdtz, mirror.cusdt, got_z, trader=trader)
    profit = back - trader_c_spent
    print(f"\nsandwich: vault lost {Decimal(lost) / USD} USDTz of face (v1 bound {Decimal(bound) / USD}); "
          f"attacker's cUSDT profit {Decimal(profit) / USD}")
    # the vault's overpayment in cUSDT at the honest rate; the sandwich can take at most that
    overpay = amount_in - pumped_out * amount_in // honest_out
    assert profit <= overpay
    # its cUSDT came from the pair only (swap_on_pair mints the trader what it swaps in first)
    assert balance_of(w3, mirror.cusdt, trader) == trader_c0 + back

    # 3b. redeem one tranche, then dump before a sell
    with ape.reverts(v.UnknownStable, token=market.usdtz):
        v.sell(market.usdtz, 1, 0, DEADLINE, sender=operator)
    with ape.reverts(v.UnknownStable, token=market.usdtz):
        v.redeem(market.usdtz, 1, sender=operator)
    tx = v.redeem(mirror.cusdt, 5_000 * USD, sender=operator)
    watch(tx, "redeem")
    cost -= ceil_div(cost * 5_000 * USD, held)
    held -= 5_000 * USD
    floor = p.sellFloorPrice
    ov.swap_on_pair(w3, market, mirror.cusdt, market.usdtz, 700_000 * USD)  # the market lifts USDTz to ~$0.95
    assert risk_view(v).usdtzHeld == held
    sell_amt = held // 2
    # a dump far below the TWAP: refused before any swap
    snap = rpc(w3, "evm_snapshot")
    ov.swap_on_pair(w3, market, market.usdtz, mirror.cusdt, 2_000_000 * USD, trader=trader)
    ts = next_block_at(w3)
    spot, twap = pair_state(w3, market, pair)[0], twap_at(w3, market, pair, obs, ts)
    assert spot * BPS < twap * (BPS - slip)
    with ape.reverts(v.PriceBelowTwap, spotE6=e6(spot), twapE6=e6(twap)):
        v.sell(mirror.cusdt, sell_amt, 0, DEADLINE, sender=operator)
    rpc(w3, "evm_revert", [snap])
    # a dump to ~$0.83: within the TWAP band (the TWAP is still ~$0.80), below the floor: refused
    snap = rpc(w3, "evm_snapshot")
    ov.swap_on_pair(w3, market, market.usdtz, mirror.cusdt, dump_to(w3, market, pair, 830_000), trader=trader)
    ts = next_block_at(w3)
    spot, twap = pair_state(w3, market, pair)[0], twap_at(w3, market, pair, obs, ts)
    assert spot * BPS >= twap * (BPS - slip)
    r_in, r_out = reserves(w3, market, pair, market.usdtz)
    out = uni_out(sell_amt, r_in, r_out)
    assert out * 10**6 < floor * sell_amt
    with ape.reverts(v.PriceBelowFloor, priceE6=out * 10**6 // sell_amt, floorE6=floor):
        v.sell(mirror.cusdt, sell_amt, 0, DEADLINE, sender=operator)
    rpc(w3, "evm_revert", [snap])
    # a dump to ~$0.87 (spot): within the TWAP band and still above the floor: the sale passes
    ov.swap_on_pair(w3, market, market.usdtz, mirror.cusdt, dump_to(w3, market, pair, 870_000), trader=trader)
    r_in, r_out = reserves(w3, market, pair, market.usdtz)
    out = uni_out(sell_amt, r_in, r_out)
    assert out * 10**6 >= floor * sell_amt
    sold_cost = ceil_div(cost * sell_amt, held)
    assert out >= sold_cost  # above cost: nothing against the budget
    tx = v.sell(mirror.cusdt, sell_amt, 0, DEADLINE, sender=operator)
    watch(tx, "sell after dump")
    assert events(v, tx, "Sold")[0].amountOut == out  # >= floor * amount: the per-leg bound
    assert not events(v, tx, "OperatorLoss")
    cost -= sold_cost
    held -= sell_amt

    # 3c. deleverage: no more than the debt needs; a WETH dump first (minOut 0): the oracle bound holds
    price = price_now(w3, mirror)
    big = 10 * ETH
    ts = next_block_at(w3)
    debt_then = ray_mul(scaled_debt(w3, market, v), _index_at(w3, market, mirror.cusdt, ts))
    big_bound = (big * price // 10**20) * (BPS - slip) // BPS
    assert big_bound * BPS > debt_then * (BPS + 100)
    with ape.reverts(v.DeleverageTooLarge, proceedsBound=big_bound, debt=debt_then):
        v.deleverage(mirror.weth9, mirror.cusdt, big, 0, DEADLINE, sender=operator)
    coll = 3 * ETH
    value = coll * price // 10**20
    bound_out = value * (BPS - slip) // BPS
    snap = rpc(w3, "evm_snapshot")
    ov.swap_on_pair(w3, market, mirror.weth9, mirror.cusdt, 200 * ETH, trader=trader)  # ~6 % down
    r_in, r_out = reserves(w3, market, market.pair_weth_cusdt, mirror.weth9)
    assert uni_out(coll, r_in, r_out) < bound_out
    with ape.reverts("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"):
        v.deleverage(mirror.weth9, mirror.cusdt, coll, 0, DEADLINE, sender=operator)
    rpc(w3, "evm_revert", [snap])
    r_in, r_out = reserves(w3, market, market.pair_weth_cusdt, mirror.weth9)
    out = uni_out(coll, r_in, r_out)
    assert out >= bound_out
    tx = v.deleverage(mirror.weth9, mirror.cusdt, coll, 0, DEADLINE, sender=operator)
    watch(tx, "deleverage")
    assert events(v, tx, "Deleveraged")[0].received == out
    if value > out:  # the fee and price impact against the oracle: a realized loss, counted
        loss += value - out
        assert [(e.leg, e.loss, e.total, e.budget) for e in events(v, tx, "OperatorLoss")] == [
            (LEG_DELEVERAGE, value - out, loss, budget)]
    assert risk_view(v).operatorLoss == loss <= budget

    # the rest of the legs with a leaked key: repay, withdraw (no recipient: into the books)
    tx = v.repay(mirror.cusdt, MAX, sender=operator)
    watch(tx, "repay max")
    assert debt_of(w3, market, v) == 0
    tx = v.withdrawCollateral(mirror.weth9, collateral_of(v, mirror.weth9), sender=operator)
    watch(tx, "withdrawCollateral")
    # v2: closing now would write the USDTz left off at cost, past the budget: refused
    assert risk_view(v).usdtzCost == cost
    with ape.reverts(v.LossBudgetExceeded, lossAfter=loss + cost, budget=budget):
        v.close(sender=operator)
    tx = v.redeem(mirror.cusdt, held, sender=operator)  # the rest of it
    watch(tx, "redeem the rest")
    assert tx.return_value is True
    tx = v.close(sender=operator)
    watch(tx, "close")
    assert events(v, tx, "Closed")[0].writtenOffUsdtz == 0
    # the operator received nothing at all; only the owner can take the funds out
    assert {t: balance_of(w3, t, operator.address) for t in tokens} == op_before
    with ape.reverts(v.NotOwner, caller=operator.address):
        v.withdraw(ZERO, 1, sender=operator)
    # remedy: the owner replaces the key
    v.setOperator(trader, sender=owner)
    with ape.reverts(v.NotOperator, caller=operator.address):
        v.renounceOperator(sender=operator)
    print_table("leaked operator", rows)


def _index_at(w3, market, stable, ts: int) -> int:
    """The stable reserve's borrow index at ``ts`` from its stored index and rate (Aave's math)."""
    rd = market.pool_contract(w3).functions.getReserveData(stable).call()
    index, rate, last = rd[3], rd[4], rd[6]
    return ray_mul(compounded(rate, last, ts), index) if ts > last else index


# --- 4. donations -------------------------------------------------------------------------------


def _run_with_donations(w3, mirror, market, v, owner, operator, stranger, project, donate: bool):
    """The same loop at fixed timestamps (identical interest), with or without donations."""
    t0 = w3.eth.get_block("latest")["timestamp"] + 100  # the same start in both runs (reverted chain)
    step = [0]

    def at():  # legs at fixed times, 200 s apart (the feed stays fresh: max age 3,600 s)
        step[0] += 1
        rpc(w3, "evm_setNextBlockTimestamp", [t0 + 200 * step[0]])

    views = []
    donated = {}
    at()
    v.fund(value=100 * ETH, sender=owner)
    at()
    v.split(sender=operator)
    at()
    v.supply(mirror.weth9, 30 * ETH, sender=operator)
    at()
    v.borrow(mirror.cusdt, 22_500 * USD, sender=operator)
    views.append(risk_view(v))
    books = {k: as_dict(views[-1])[k] for k in BOOK_FIELDS}
    if donate:
        fs = project.ForceSend.deploy(sender=stranger)
        fs.forceSend(v.address, value=3 * ETH, sender=stranger)
        donated[ZERO] = 3 * ETH
        s = stranger.address
        for token, amount in ((mirror.weth9, 2 * ETH), (market.usdtz, 7_000 * USD), (mirror.cusdt, 9_000 * USD),
                              (mirror.cusdc, 4_000 * USD)):
            fund(w3, token, s, amount)
            with impersonating(w3, s):
                send(w3, ov.erc20(w3, token).functions.transfer(v.address, amount), s)
            donated[token] = amount
        # aTokens: the stranger supplies WETH on Aave on the vault's behalf
        fund(w3, mirror.weth9, s, 5 * ETH)
        with impersonating(w3, s):
            send(w3, ov.erc20(w3, mirror.weth9).functions.approve(market.pool, 5 * ETH), s)
            send(w3, market.pool_contract(w3).functions.supply(mirror.weth9, 5 * ETH, v.address, 0), s)
        donated[market.a_tokens["WETH"]] = 5 * ETH
        # the donations moved raw balances, never the books (the views are compared after each
        # leg, at the same timestamps in both runs; here only the books, as time has moved)
        assert w3.eth.get_balance(v.address) >= 50 * ETH + 3 * ETH
        assert balance_of(w3, market.usdtz, v.address) == 7_000 * USD
        assert {k: as_dict(risk_view(v))[k] for k in BOOK_FIELDS} == books
    at()
    v.buy(mirror.cusdt, 20_000 * USD, 0, DEADLINE, sender=operator)  # 600 s after split's observation
    views.append(risk_view(v))
    at()
    v.redeem(mirror.cusdt, risk_view(v).usdtzHeld, sender=operator)  # all of it (< rung 0)
    views.append(risk_view(v))
    at()
    v.repay(mirror.cusdt, MAX, sender=operator)
    views.append(risk_view(v))
    at()
    v.close(sender=operator)
    views.append(risk_view(v))
    return views, donated


def as_dict(rv) -> dict:
    """A RiskView (helpers_vault.risk_view: a namespace with the struct's field names) as a dict."""
    return dict(vars(rv))


BOOK_FIELDS = ("phase", "coreEth", "workingEth", "opportunisticEth", "collateralWeth", "stableHeld", "usdtzHeld",
               "usdtzCost", "exposureBps", "rung", "rungProgress", "redeemedTotal", "fundedCapital", "legSeq",
               "collateralBooked", "ownerRepaid", "repaidOnBehalf", "operatorLoss", "splitValue", "lossBudget",
               "ethReturned")


# riskView fields that the pool computes itself (the donated aTokens are real collateral to Aave);
# the vault's caps use its own books, and the stricter of the two checks counts.
POOL_FIELDS = {"poolCollateralBase", "healthFactor"}


def test_donations_change_no_cap_bucket_or_pnl(w3, mirror, market, vault_factory, owner, operator, stranger, project):
    snap = rpc(w3, "evm_snapshot")
    v1 = vault_factory()
    plain, _ = _run_with_donations(w3, mirror, market, v1, owner, operator, stranger, project, donate=False)
    rpc(w3, "evm_revert", [snap])
    v2 = vault_factory()
    assert v2.address == v1.address  # same deployment, same nonce: a like-for-like comparison
    gifted, donated = _run_with_donations(w3, mirror, market, v2, owner, operator, stranger, project, donate=True)
    for i, (a, b) in enumerate(zip(plain, gifted)):
        da, db = as_dict(a), as_dict(b)
        assert len(da) == 40  # every RiskView field is compared (v1's 33 + v2's 7)
        diff = {k: (da[k], db[k]) for k in da if da[k] != db[k] and k not in POOL_FIELDS | {"priceUpdatedAt"}}
        assert not diff, (i, diff)
    final = gifted[-1]
    assert final.phase == CLOSED and final.operatorLoss == 0 and final.repaidOnBehalf == 0
    print(f"\nPnL with and without donations: {final.realizedPnlEth} wei, {final.realizedPnlUsd} USD e8 (equal)")

    # the owner withdraws the surplus: exactly the donations (plus the aWETH interest, never booked)
    v = v2
    surplus_eth = w3.eth.get_balance(v.address) - (final.coreEth + final.workingEth + final.opportunisticEth)
    assert surplus_eth >= donated[ZERO] + donated[market.a_tokens["WETH"]]
    for token, amount in donated.items():
        if token in (ZERO, market.a_tokens["WETH"]):
            continue
        before = balance_of(w3, token, owner.address)
        v.withdraw(token, amount, sender=owner)
        assert balance_of(w3, token, owner.address) == before + amount
    before = w3.eth.get_balance(owner.address)
    tx = v.withdraw(ZERO, surplus_eth, sender=owner)
    assert w3.eth.get_balance(owner.address) == before + surplus_eth - tx.gas_used * tx.gas_price


def test_donated_surplus_withdrawable_before_close_but_not_the_books(w3, mirror, market, vault, owner, operator,
                                                                    stranger, project):
    base_loop(w3, vault, mirror, owner, operator)
    v = vault
    rv0 = risk_view(v)
    assert rv0.phase == POSITIONED
    fs = project.ForceSend.deploy(sender=stranger)
    fs.forceSend(v.address, value=ETH, sender=stranger)
    s = stranger.address
    fund(w3, market.usdtz, s, 1_000 * USD)
    with impersonating(w3, s):
        send(w3, ov.erc20(w3, market.usdtz).functions.transfer(v.address, 1_000 * USD), s)
    assert risk_view(v).usdtzHeld == rv0.usdtzHeld and risk_view(v).exposureBps == rv0.exposureBps
    # plain ETH from a stranger is refused (only the wrappers may send ETH)
    with ape.reverts(v.EthNotAccepted, **{"from": s}):
        stranger.transfer(v.address, 1)
    # one wei more than the surplus is refused; the surplus itself is fine; the books stay
    with ape.reverts(v.InsufficientBucket, bucket=6, available=ETH, needed=ETH + 1):
        v.withdraw(ZERO, ETH + 1, sender=owner)
    with ape.reverts(v.InsufficientBucket, bucket=6, available=1_000 * USD, needed=1_000 * USD + 1):
        v.withdraw(market.usdtz, 1_000 * USD + 1, sender=owner)
    with ape.reverts(v.InsufficientBucket, bucket=6, available=0, needed=1):
        v.withdraw(market.a_tokens["WETH"], 1, sender=owner)
    v.withdraw(ZERO, ETH, sender=owner)
    v.withdraw(market.usdtz, 1_000 * USD, sender=owner)
    rv = risk_view(v)
    assert rv.usdtzHeld == balance_of(w3, market.usdtz, v.address) == rv0.usdtzHeld
    assert w3.eth.get_balance(v.address) == rv.coreEth + rv.workingEth + rv.opportunisticEth
    assert rv.ethReturned == 0  # nothing came from the books


# --- 5. reentrancy ------------------------------------------------------------------------------

REENTRANT = sel("ReentrancyGuardReentrantCall()")


def _vault_with(project, deployer, vault_config, *, router=None, desk=None):
    cfg = list(vault_config())
    if router:
        cfg[6] = router
    if desk:
        cfg[7] = desk
    core = project.DealVault.deploy(tuple(cfg), sender=deployer)
    return project.IDealVault.at(core.address)


def _state(w3, mirror, market, v):
    rv = risk_view(v)
    bal = {t: balance_of(w3, t, v.address) for t in (mirror.cusdt, market.usdtz, mirror.weth9, market.a_tokens["WETH"])}
    return rv, bal, w3.eth.get_balance(v.address)


def test_reentering_router_is_rejected(w3, mirror, market, project, deployer, vault_config, owner, operator, stranger):
    """A router that calls back into the vault mid-swap (buy, deleverage) hits the reentrancy guard,
    on the core's legs and the extension's functions alike (one guard in slot 0); a view reentry
    is not blocked.

    v2: the constructor reads the router's WETH() and then its factory() (the USDTz pairs): the
    double answers both once set (RouterWethMismatch(0) before)."""
    venue = project.ReenteringVenue.deploy(sender=deployer)
    cfg = list(vault_config())
    cfg[6] = venue.address
    deploy_reverts(project, deployer, tuple(cfg), "RouterWethMismatch", routerWeth=ZERO)
    venue.setWETH(mirror.weth9, sender=deployer)
    venue.setFactory(market.uniswap_factory, sender=deployer)
    v = _vault_with(project, deployer, vault_config, router=venue.address)
    v.fund(value=100 * ETH, sender=owner)
    v.split(sender=operator)
    v.supply(mirror.weth9, 30 * ETH, sender=operator)
    v.borrow(mirror.cusdt, 22_500 * USD, sender=operator)
    twap_ready(w3, v, mirror.cusdt)
    before = _state(w3, mirror, market, v)
    callbacks = [v.repay.encode_input(mirror.cusdt, 1), v.withdraw.encode_input(mirror.cusdt, 1),
                 v.borrow.encode_input(mirror.cusdt, 1), v.observe.encode_input(),
                 v.ownerRepay.encode_input(mirror.cusdt, 1)]
    for data in callbacks:
        venue.arm(v.address, data, sender=stranger)
        with ape.reverts(v.ReentrancyGuardReentrantCall):
            v.buy(mirror.cusdt, 1_000 * USD, 0, DEADLINE, sender=operator)
        venue.arm(v.address, data, sender=stranger)
        with ape.reverts(v.ReentrancyGuardReentrantCall):
            v.deleverage(mirror.weth9, mirror.cusdt, ETH, 0, DEADLINE, sender=operator)
    assert _state(w3, mirror, market, v)[1:] == before[1:]
    after = risk_view(v)
    assert (after.stableHeld, after.usdtzHeld, after.collateralWeth, after.legSeq) == (
        before[0].stableHeld, before[0].usdtzHeld, before[0].collateralWeth, before[0].legSeq)
    # a view reentry is not blocked (it changes nothing): the venue then reports ReentrySucceeded
    # with the view's answer (phase() = WORKING)
    venue.arm(v.address, v.phase.encode_input(), sender=stranger)
    with ape.reverts(venue.ReentrySucceeded, target=v.address, returnData=encode(["uint8"], [WORKING])):
        v.buy(mirror.cusdt, 1_000 * USD, 0, DEADLINE, sender=operator)


def test_reentering_desk_fails_the_tranche_into_holding(w3, mirror, market, project, deployer, vault_config, owner,
                                                       operator, stranger):
    venue = project.ReenteringVenue.deploy(sender=deployer)
    v = _vault_with(project, deployer, vault_config, desk=venue.address)
    base_loop(w3, v, mirror, owner, operator)
    rv0, bal0, eth0 = _state(w3, mirror, market, v)
    venue.arm(v.address, v.sell.encode_input(mirror.cusdt, rv0.usdtzHeld, 0, DEADLINE), sender=stranger)
    tx = v.redeem(mirror.cusdt, 5_000 * USD, sender=operator)
    assert tx.return_value is False  # the leg itself does not revert: the desk call failed
    failed = events(v, tx, "RedemptionFailed")[0]
    assert bytes(failed.reason) == REENTRANT
    rv, bal, eth = _state(w3, mirror, market, v)
    assert rv.phase == HOLDING and rv.phaseBeforeHolding == POSITIONED
    assert bal == bal0 and eth == eth0  # nothing moved
    assert (rv.usdtzHeld, rv.usdtzCost, rv.stableHeld, rv.redeemedTotal, rv.operatorLoss) == (
        rv0.usdtzHeld, rv0.usdtzCost, rv0.stableHeld, 0, 0)
    assert ov.erc20(w3, market.usdtz).functions.allowance(v.address, venue.address).call() == 0


# --- 6. the stablecoin issuer blacklists the vault on cUSDT --------------------------------------


def test_vault_blacklisted_on_cusdt(w3, mirror, market, vault, owner, operator):
    """Findings (for the README): the cUSDT issuer blacklists the vault (FiatToken blacklist).

    - Fails (reverts, nothing changes), with these revert reasons:
      ``borrow(cUSDT)``: "Blacklistable: account is blacklisted" (the pool's transfer to the vault);
      ``buy`` with cUSDT: "TransferHelper: TRANSFER_FROM_FAILED" (FiatToken V2_2 lets a
      blacklisted holder approve, the router's transferFrom then fails);
      ``repay(cUSDT)``: "Blacklistable: account is blacklisted" (the pool's transferFrom);
      ``ownerRepay(cUSDT)``: "Blacklistable: account is blacklisted" (owner -> vault transfer);
      ``sell`` into cUSDT and ``deleverage`` into cUSDT: "UniswapV2: TRANSFER_FAILED" (the pair's
      payment to the vault).
    - Fails softly: ``redeem`` paid in cUSDT (the desk's payment reverts): RedemptionFailed with
      "Blacklistable: account is blacklisted", HOLDING, the USDTz stays booked and held.
    - Still works: the lens's ``riskView`` (it reads balances only), everything in cUSDC
      (``borrow(cUSDC)`` within the caps while active, ``redeem`` into cUSDC even in HOLDING),
      ``addCollateral``, ``withdrawCollateral`` once the debt is gone.
    - Nothing else is lost: ETH, collateral, USDTz and the cUSDT on the books stay where they are
      (the cUSDT is frozen in the vault, still booked in stableHeld).
    - The way out: the owner repays the cUSDT debt on the vault's behalf directly on the pool
      (``pool.repay(cUSDT, amount, 2, onBehalfOf = vault)``): the pool's debt is then zero, the
      collateral can be withdrawn and the deal closed.
    - v2: that direct repayment never loosens a cap (the caps' debt still counts it until the vault
      books it), and the vault's next own debt action (here ``withdrawCollateral``) books it as
      ``repaidOnBehalf`` (RepaidOnBehalf event: the scaled debt that vanished x the pool's index
      then); ``realizedPnlUsd`` subtracts it, exactly (v1 overstated the PnL by the direct
      repayment). The frozen cUSDT still counts at par in ``stableHeld`` (the owner nets it off by
      hand). The USDTz left is written off at close, past the operator's budget: the owner closes.
    """
    v = vault
    base_loop(w3, v, mirror, owner, operator)
    v.redeem(mirror.cusdt, 5_000 * USD, sender=operator)
    rows = [("before blacklist", risk_view(v))]
    fiattoken.freeze(w3, mirror.cusdt_token, v.address)
    rv0, bal0, eth0 = _state(w3, mirror, market, v)
    blk = "Blacklistable: account is blacklisted"
    with ape.reverts(blk):
        v.borrow(mirror.cusdt, USD, sender=operator)
    with ape.reverts("TransferHelper: TRANSFER_FROM_FAILED"):
        v.buy(mirror.cusdt, USD, 0, DEADLINE, sender=operator)
    with ape.reverts(blk):
        v.repay(mirror.cusdt, USD, sender=operator)
    with ape.reverts("UniswapV2: TRANSFER_FAILED"):
        v.sell(mirror.cusdt, USD, 0, DEADLINE, sender=operator)
    with ape.reverts("UniswapV2: TRANSFER_FAILED"):
        v.deleverage(mirror.weth9, mirror.cusdt, ETH, 0, DEADLINE, sender=operator)
    fund(w3, mirror.cusdt, owner.address, 30_000 * USD)
    with impersonating(w3, owner.address):
        send(w3, ov.erc20(w3, mirror.cusdt).functions.approve(v.address, MAX), owner.address)
    with ape.reverts(blk):
        v.ownerRepay(mirror.cusdt, USD, sender=owner)
    assert _state(w3, mirror, market, v)[1:] == (bal0, eth0)
    assert risk_view(v).legSeq == rv0.legSeq  # no leg went through

    tx = v.redeem(mirror.cusdt, 5_000 * USD, sender=operator)
    assert tx.return_value is False
    reason = bytes(events(v, tx, "RedemptionFailed")[0].reason)
    assert reason[:4] == sel("Error(string)") and decode(["string"], reason[4:])[0] == blk
    rv = risk_view(v)  # still answers
    assert rv.phase == HOLDING and rv.usdtzHeld == rv0.usdtzHeld == balance_of(w3, market.usdtz, v.address)
    rows.append(("redeem cUSDT fails", rv))
    # cUSDC still works, even in HOLDING
    c_before = balance_of(w3, mirror.cusdc, v.address)
    tx = v.redeem(mirror.cusdc, 5_000 * USD, sender=operator)
    assert tx.return_value is True
    paid = 5_000 * USD - ceil_div(5_000 * USD * market.desk_contract(w3).functions.feeBps().call(), BPS)
    assert balance_of(w3, mirror.cusdc, v.address) == c_before + paid
    rows.append(("redeem cUSDC ok", risk_view(v)))

    # the way out: the owner repays on the vault's behalf directly on the pool
    pool = market.pool_contract(w3)
    debt = debt_of(w3, market, v)
    scaled_book = scaled_debt(w3, market, v)  # the vault's scaled debt, as its last own debt action left it
    owner_c = balance_of(w3, mirror.cusdt, owner.address)
    with impersonating(w3, owner.address):
        send(w3, ov.erc20(w3, mirror.cusdt).functions.approve(market.pool, MAX), owner.address)
        # Aave refuses MAX on behalf of another account (error 40): an explicit amount, capped at the debt
        send(w3, pool.functions.repay(mirror.cusdt, debt + 100 * USD, 2, v.address), owner.address)
    paid_direct = owner_c - balance_of(w3, mirror.cusdt, owner.address)
    assert debt <= paid_direct <= debt + debt // 10**6 + 1
    rv = risk_view(v)
    assert rv.poolDebt == 0 == debt_of(w3, market, v)  # the pool is paid
    # v2: not a looser cap: the caps' debt is still the vault's scaled book at the pool's index
    booked_debt = ray_mul(scaled_book, debt_index(w3, market, mirror.cusdt))
    price = price_now(w3, mirror)
    assert rv.debt == booked_debt >= paid_direct and rv.repaidOnBehalf == 0
    assert rv.ltvBps == ceil_div(booked_debt * 10**20 * BPS, rv.collateralWeth * price) > 0
    rows.append(("owner repays on pool", rv))
    tx = v.withdrawCollateral(mirror.weth9, collateral_of(v, mirror.weth9), sender=operator)
    # the vault's next own debt action books the repayment made on its behalf
    on_behalf = ray_mul(scaled_book, debt_index(w3, market, mirror.cusdt, tx.block_number))
    assert on_behalf >= paid_direct
    assert [(e.stable, e.amount) for e in events(v, tx, "RepaidOnBehalf")] == [(mirror.cusdt, on_behalf)]
    rv = risk_view(v)
    assert rv.repaidOnBehalf == on_behalf and rv.ownerRepaid == 0 and rv.poolDebt == 0
    rows.append(("withdrawCollateral", rv))
    usdtz_cost = rv.usdtzCost
    frozen_cusdt = stable_of(v, mirror.cusdt)
    assert frozen_cusdt == balance_of(w3, mirror.cusdt, v.address)
    budget = rv.lossBudget
    assert budget == 1_500 * USD and rv.operatorLoss == 0 and usdtz_cost > budget
    with ape.reverts(v.LossBudgetExceeded, lossAfter=usdtz_cost, budget=budget):
        v.close(sender=operator)
    tx = v.close(sender=owner)
    rv = risk_view(v)
    rows.append(("close (owner)", rv))
    assert rv.phase == CLOSED and rv.realizedPnlEth == 0 and rv.ownerRepaid == 0
    assert rv.writtenOffUsdtz == usdtz_cost and rv.operatorLoss == 0
    stable = frozen_cusdt + balance_of(w3, mirror.cusdc, v.address)
    closed = events(v, tx, "Closed")[0]
    assert closed.stableSurplus == stable and closed.writtenOffUsdtz == usdtz_cost and closed.collateralLeft == 0
    # v2: the direct repayment is netted off (v1 asserted stable * 100: the overstatement)
    assert rv.realizedPnlUsd == closed.realizedPnlUsd == (stable - on_behalf) * 100
    # the caps' debt keeps counting what others repaid; the pool is owed nothing
    assert rv.debt == rv.repaidOnBehalf == on_behalf and rv.poolDebt == 0
    print_table("cUSDT blacklist", rows)
    print(f"realizedPnlUsd {rv.realizedPnlUsd / 10**8} includes frozen cUSDT {frozen_cusdt / USD} and nets off the "
          f"owner's direct repayment {paid_direct / USD} (booked {on_behalf / USD} with interest)")
