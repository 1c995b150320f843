"""The venues overlay: what a deal needs that Chain 138 does not publish.

:func:`deploy_overlay` installs, on any chain that has the mirror contracts (a local mirror or a
fork of the real chain), and returns an :class:`Overlay` with every address:

* a real Aave V3 market (:mod:`dealvault.kit.aave`, ``@aave/core-v3@1.19.3`` bytecode): WETH9 and
  WETH10 as collateral priced by the mirror's ETH/USD feed, cUSDT and cUSDC borrowable at a
  variable rate priced by a $1 :class:`PriceFeed` deployed here, each seeded with liquidity
  supplied by the liquidity provider;
* real Uniswap V2 (``@uniswap/v2-core`` factory + ``@uniswap/v2-periphery`` Router02, WETH =
  WETH9): USDTz/cUSDT and USDTz/cUSDC pairs at a price below par (default 0.80 stable per
  USDTz) and WETH9/cUSDT and WETH9/cUSDC pairs at the feed price. The router's hard-coded pair
  init code hash is checked against ``keccak256`` of the v2-core ``UniswapV2Pair`` creation code
  (they match for the pinned packages; a mismatch is refused, as the router could not find pairs);
* USDTz: a Circle FiatToken (6 decimals) whose issuer holds the owner, master-minter, minter,
  pauser and blacklister roles: freezing is blacklisting, pausing stops every transfer;
* the USDTz redemption desk (``contracts/test/RedemptionDesk.sol``) paying cUSDT or cUSDC 1:1
  minus a fee out of the stock it holds.

Roles belong to named accounts (:func:`dealvault.kit.evm.role_address`), never to a vault under test;
the helpers at the end act for them by impersonation. Everything but the USDTz token is sent
through one pipelined :class:`dealvault.kit.evm.TxBatch`, so the overlay builds in well under a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from dealvault.artifacts import own, uniswap
from dealvault.kit import fiattoken
from dealvault.kit.aave import STABLE_STRATEGY, WETH_STRATEGY, AaveMarket, RateStrategy, ReserveSpec, deploy_aave_market
from dealvault.kit.errors import KitError
from dealvault.kit.evm import TxBatch, act_as, contract_at, create2_address, impersonating, role_address, send, set_balance
from dealvault.kit.fiattoken import FiatToken, FiatTokenRoles
from dealvault.kit.funding import fund
from dealvault.units import E8, ETH_DECIMALS, STABLE_DECIMALS

DEADLINE = 2**64  # router deadlines: far future
_MAX = 2**256 - 1

# Named roles of the overlay (nobody holds their keys).
AAVE_ADMIN = "aave.admin"
AAVE_TREASURY = "aave.treasury"
ISSUER = "usdtz.issuer"
USDTZ_PROXY_ADMIN = "usdtz.proxy_admin"
DESK_OPERATOR = "desk.operator"
LIQUIDITY_PROVIDER = "overlay.liquidity_provider"
DEPLOYER = "overlay.deployer"
STABLE_FEED_OWNER = "stable_feed.owner"
UNISWAP_FEE_TO_SETTER = "uniswap.fee_to_setter"
TRADER = "uniswap.third_party_trader"

_ERC20_ABI = [
    {"type": "function", "name": "balanceOf", "stateMutability": "view", "inputs": [{"type": "address", "name": "a"}], "outputs": [{"type": "uint256", "name": ""}]},
    {"type": "function", "name": "approve", "stateMutability": "nonpayable", "inputs": [{"type": "address", "name": "s"}, {"type": "uint256", "name": "v"}], "outputs": [{"type": "bool", "name": ""}]},
    {"type": "function", "name": "transfer", "stateMutability": "nonpayable", "inputs": [{"type": "address", "name": "to"}, {"type": "uint256", "name": "v"}], "outputs": [{"type": "bool", "name": ""}]},
    {"type": "function", "name": "allowance", "stateMutability": "view", "inputs": [{"type": "address", "name": "o"}, {"type": "address", "name": "s"}], "outputs": [{"type": "uint256", "name": ""}]},
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8", "name": ""}]},
    {"type": "function", "name": "symbol", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string", "name": ""}]},
    {"type": "function", "name": "totalSupply", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint256", "name": ""}]},
]


class OverlayError(KitError):
    """The overlay cannot be deployed here, or did not come out as configured."""


@dataclass(frozen=True)
class OverlayParams:
    """Knobs of the overlay. Token amounts are whole tokens; Aave parameters are basis points."""

    # Aave: WETH9 / WETH10 collateral
    weth_ltv: int = 8_000
    weth_liquidation_threshold: int = 8_250
    weth_liquidation_bonus: int = 10_500
    weth_reserve_factor: int = 1_500
    weth_strategy: RateStrategy = WETH_STRATEGY
    # Aave: cUSDT / cUSDC borrowable (variable rate)
    stable_reserve_factor: int = 1_000
    stable_strategy: RateStrategy = STABLE_STRATEGY
    stable_price: int = E8  # the $1 feed's answer (8 decimals)
    aave_seed: int = 50_000_000  # of each stablecoin, supplied by the liquidity provider
    # Uniswap V2: USDTz pairs
    usdtz_price: Decimal = Decimal("0.80")  # stablecoin per USDTz
    usdtz_pair_depth: int = 10_000_000  # USDTz side of each USDTz pair
    # Uniswap V2: WETH9 / stablecoin pairs at the ETH/USD feed's price
    weth_pair_depth: int = 20_000_000  # stablecoin side of each WETH pair
    # Redemption desk
    desk_fee_bps: int = 10  # 0.1 %
    desk_flat_fee: int = 0  # base units of USDTz
    desk_max_per_request: int = 5_000_000
    desk_stock: int = 20_000_000  # of each stablecoin


@dataclass(frozen=True)
class Overlay:
    """Every address the overlay deployed, and the accounts holding its roles."""

    # Aave V3
    addresses_provider: str
    acl_manager: str
    pool: str
    pool_configurator: str
    aave_oracle: str
    data_provider: str
    a_tokens: Mapping[str, str]  # by symbol: WETH, WETH10, cUSDT, cUSDC
    variable_debt_tokens: Mapping[str, str]
    stable_debt_tokens: Mapping[str, str]
    stable_feed: str  # the $1 AggregatorV3 pricing cUSDT and cUSDC
    # Uniswap V2
    uniswap_factory: str
    uniswap_router: str
    pair_usdtz_cusdt: str
    pair_usdtz_cusdc: str
    pair_weth_cusdt: str
    pair_weth_cusdc: str
    # USDTz and its desk
    usdtz: str
    desk: str
    # roles
    aave_admin: str  # ACL admin, pool admin, risk admin, emergency admin
    issuer: str  # USDTz owner, (master) minter, pauser, blacklister; halts the desk
    desk_operator: str
    liquidity_provider: str
    stable_feed_owner: str
    # the underlying records
    mirror_tokens: Mapping[str, str]  # symbol -> address of the mirror's assets
    usdtz_token: FiatToken
    aave: AaveMarket
    params: OverlayParams = field(default_factory=OverlayParams)

    # typed accessors (the Aave ones are the market's) ---------------------------------------
    def pool_contract(self, w3: Web3) -> Contract:
        return self.aave.pool_contract(w3)

    def configurator_contract(self, w3: Web3) -> Contract:
        return self.aave.configurator_contract(w3)

    def oracle_contract(self, w3: Web3) -> Contract:
        return self.aave.oracle_contract(w3)

    def data_provider_contract(self, w3: Web3) -> Contract:
        return self.aave.data_provider_contract(w3)

    def router_contract(self, w3: Web3) -> Contract:
        return contract_at(w3, self.uniswap_router, uniswap("UniswapV2Router02").abi)

    def factory_contract(self, w3: Web3) -> Contract:
        return contract_at(w3, self.uniswap_factory, uniswap("UniswapV2Factory").abi)

    def pair_contract(self, w3: Web3, pair: str) -> Contract:
        return contract_at(w3, pair, uniswap("UniswapV2Pair").abi)

    def usdtz_contract(self, w3: Web3) -> Contract:
        return self.usdtz_token.contract(w3)

    def desk_contract(self, w3: Web3) -> Contract:
        return contract_at(w3, self.desk, own("RedemptionDesk").abi)

    def stable_feed_contract(self, w3: Web3) -> Contract:
        return contract_at(w3, self.stable_feed, own("PriceFeed").abi)

    def erc20(self, w3: Web3, token: str) -> Contract:
        return erc20(w3, token)

    def token(self, symbol: str) -> str:
        """Address by symbol: USDTz or one of the mirror's (WETH, WETH10, cUSDT, cUSDC)."""
        return self.usdtz if symbol == "USDTz" else self.mirror_tokens[symbol]

    def usdtz_pair(self, stable_symbol: str) -> str:
        """The USDTz pair of the stablecoin ``stable_symbol`` (cUSDT or cUSDC; KeyError otherwise)."""
        return {"cUSDT": self.pair_usdtz_cusdt, "cUSDC": self.pair_usdtz_cusdc}[stable_symbol]


def erc20(w3: Web3, token: str) -> Contract:
    """A minimal ERC-20 (balanceOf, approve, transfer, allowance, decimals, symbol, totalSupply) at ``token``."""
    return contract_at(w3, token, _ERC20_ABI)


def units(amount: int | Decimal, decimals: int = STABLE_DECIMALS) -> int:
    """Whole tokens to base units (integer; Decimal amounts are rounded down)."""
    return int((Decimal(amount) * 10**decimals).to_integral_value(rounding=ROUND_DOWN))


def check_pair_init_code_hash() -> bytes:
    """keccak256 of v2-core's UniswapV2Pair creation code; raise if Router02 does not embed it.

    ``UniswapV2Library.pairFor`` in the router computes pair addresses with a hard-coded init
    code hash; if it differs from the factory's pair code, the router cannot find any pair.
    """
    pair_hash = keccak(hexstr=uniswap("UniswapV2Pair").bytecode)
    router_code = uniswap("UniswapV2Router02").deployed_bytecode.lower()
    if pair_hash.hex() not in router_code:
        raise OverlayError(
            f"UniswapV2Router02 does not embed the v2-core pair init code hash 0x{pair_hash.hex()}: "
            "the router would compute wrong pair addresses"
        )
    return pair_hash


def _sorted(a: str, b: str) -> tuple[str, str]:
    a, b = to_checksum_address(a), to_checksum_address(b)
    return (a, b) if int(a, 16) < int(b, 16) else (b, a)


def _pair_address(factory: str, a: str, b: str, init_hash: bytes) -> str:
    t0, t1 = _sorted(a, b)
    return create2_address(factory, keccak(bytes.fromhex(t0[2:]) + bytes.fromhex(t1[2:])), init_hash)


def deploy_overlay(w3: Web3, mirror: Any, params: OverlayParams = OverlayParams()) -> Overlay:
    """Deploy the venues overlay on top of ``mirror`` (a :class:`dealvault.kit.mirror.Mirror`, or
    any record with ``weth9``, ``weth10``, ``cusdt``, ``cusdc`` and ``eth_usd_feed``)."""
    init_hash = check_pair_init_code_hash()
    weth9, weth10 = to_checksum_address(mirror.weth9), to_checksum_address(mirror.weth10)
    cusdt, cusdc = to_checksum_address(mirror.cusdt), to_checksum_address(mirror.cusdc)
    eth_feed = to_checksum_address(mirror.eth_usd_feed)
    eth_usd = erc_feed_answer(w3, eth_feed)
    if eth_usd <= 0:
        raise OverlayError(f"ETH/USD feed at {eth_feed} answers {eth_usd}; the WETH pairs need a positive price")

    admin = role_address(AAVE_ADMIN)
    issuer = role_address(ISSUER)
    operator = role_address(DESK_OPERATOR)
    lp = role_address(LIQUIDITY_PROVIDER)
    deployer = role_address(DEPLOYER)
    feed_owner = role_address(STABLE_FEED_OWNER)

    # USDTz: a real FiatToken (sequential sends; shares the mirror's implementation when known).
    usdtz_roles = FiatTokenRoles(
        owner=issuer, master_minter=issuer, pauser=issuer, blacklister=issuer, rescuer=issuer,
        proxy_admin=role_address(USDTZ_PROXY_ADMIN), minter=issuer,
    )
    usdtz_token = fiattoken.deploy_fiat_token(
        w3, "USDTz", "USDTz", "USD", usdtz_roles, decimals=STABLE_DECIMALS,
        implementation=getattr(mirror, "fiat_implementation", None),
    )
    usdtz = usdtz_token.address

    p = params
    stable_seed = units(p.aave_seed)
    usdtz_depth = units(p.usdtz_pair_depth)
    usdtz_pair_stable = units(p.usdtz_pair_depth * p.usdtz_price)
    weth_pair_stable = units(p.weth_pair_depth)
    weth_pair_eth = weth_pair_stable * 10 ** (ETH_DECIMALS - STABLE_DECIMALS) * E8 // eth_usd
    desk_stock = units(p.desk_stock)
    stable_need = stable_seed + usdtz_pair_stable + weth_pair_stable

    b = TxBatch(w3)
    try:
        # $1 feed for the stablecoins
        stable_feed = b.deploy(deployer, own("PriceFeed"), feed_owner, p.stable_price)

        # Aave V3 (flushes the batch)
        reserves = [
            ReserveSpec(weth9, "WETH", 18, eth_feed, p.weth_strategy, p.weth_ltv, p.weth_liquidation_threshold,
                        p.weth_liquidation_bonus, reserve_factor=p.weth_reserve_factor),
            ReserveSpec(weth10, "WETH10", 18, eth_feed, p.weth_strategy, p.weth_ltv, p.weth_liquidation_threshold,
                        p.weth_liquidation_bonus, reserve_factor=p.weth_reserve_factor),
            ReserveSpec(cusdt, "cUSDT", STABLE_DECIMALS, stable_feed, p.stable_strategy, borrowable=True,
                        reserve_factor=p.stable_reserve_factor),
            ReserveSpec(cusdc, "cUSDC", STABLE_DECIMALS, stable_feed, p.stable_strategy, borrowable=True,
                        reserve_factor=p.stable_reserve_factor),
        ]
        market = deploy_aave_market(w3, reserves, admin=admin, treasury=role_address(AAVE_TREASURY), batch=b)

        # Uniswap V2 and the desk
        factory = b.deploy(deployer, uniswap("UniswapV2Factory"), role_address(UNISWAP_FEE_TO_SETTER))
        router = b.deploy(deployer, uniswap("UniswapV2Router02"), factory, weth9)
        desk = b.deploy(deployer, own("RedemptionDesk"), usdtz, issuer, operator, p.desk_fee_bps, p.desk_flat_fee,
                        units(p.desk_max_per_request))
        desk_c = contract_at(w3, desk, own("RedemptionDesk").abi)
        for stable in (cusdt, cusdc):
            b.call(operator, desk_c.functions.setPayoutToken(stable, True))

        # Money: USDTz minted by its issuer; cUSDT/cUSDC minted by the mirror's minters when we
        # know them (local mirror), else written by the funding helper (fork).
        b.call(issuer, usdtz_token.contract(w3).functions.mint(lp, 2 * usdtz_depth))
        b.flush()
        for stable, record in ((cusdt, getattr(mirror, "cusdt_token", None)), (cusdc, getattr(mirror, "cusdc_token", None))):
            _give_stable(w3, b, stable, record, lp, stable_need)
            _give_stable(w3, b, stable, record, desk, desk_stock)
        b.flush()

        # The liquidity provider: Aave supply, then the four pairs.
        b.next_address(lp)  # register (impersonate) before topping up its ETH
        set_balance(w3, lp, 2 * weth_pair_eth + 10**22)
        pool_c = market.pool_contract(w3)
        router_c = contract_at(w3, router, uniswap("UniswapV2Router02").abi)
        for token in (cusdt, cusdc, usdtz):
            tc = erc20(w3, token)
            if token != usdtz:
                b.call(lp, tc.functions.approve(market.pool, _MAX), label=f"approve pool {token}")
            b.call(lp, tc.functions.approve(router, _MAX), label=f"approve router {token}")
        for stable in (cusdt, cusdc):
            b.call(lp, pool_c.functions.supply(stable, stable_seed, lp, 0), label=f"seed Aave {stable}")
            b.call(lp, router_c.functions.addLiquidity(usdtz, stable, usdtz_depth, usdtz_pair_stable, usdtz_depth,
                                                       usdtz_pair_stable, lp, DEADLINE), label=f"USDTz pair {stable}")
            b.call(lp, router_c.functions.addLiquidityETH(stable, weth_pair_stable, weth_pair_stable, weth_pair_eth, lp,
                                                          DEADLINE), value=weth_pair_eth, label=f"WETH pair {stable}")
        b.flush()
    finally:
        b.close()

    pairs = {
        "usdtz_cusdt": _pair_address(factory, usdtz, cusdt, init_hash),
        "usdtz_cusdc": _pair_address(factory, usdtz, cusdc, init_hash),
        "weth_cusdt": _pair_address(factory, weth9, cusdt, init_hash),
        "weth_cusdc": _pair_address(factory, weth9, cusdc, init_hash),
    }
    fac = contract_at(w3, factory, uniswap("UniswapV2Factory").abi)
    for name, (a, c) in {"usdtz_cusdt": (usdtz, cusdt), "usdtz_cusdc": (usdtz, cusdc),
                         "weth_cusdt": (weth9, cusdt), "weth_cusdc": (weth9, cusdc)}.items():
        got = to_checksum_address(fac.functions.getPair(a, c).call())
        if got != pairs[name]:
            raise OverlayError(f"pair {name} is at {got}, the router's init code hash says {pairs[name]}")

    symbols: dict[str, str] = {weth9: "WETH", weth10: "WETH10", cusdt: "cUSDT", cusdc: "cUSDC"}
    return Overlay(
        addresses_provider=market.addresses_provider,
        acl_manager=market.acl_manager,
        pool=market.pool,
        pool_configurator=market.pool_configurator,
        aave_oracle=market.oracle,
        data_provider=market.data_provider,
        a_tokens={symbols[a]: t.a_token for a, t in market.reserves.items()},
        variable_debt_tokens={symbols[a]: t.variable_debt_token for a, t in market.reserves.items()},
        stable_debt_tokens={symbols[a]: t.stable_debt_token for a, t in market.reserves.items()},
        stable_feed=stable_feed,
        uniswap_factory=factory,
        uniswap_router=router,
        pair_usdtz_cusdt=pairs["usdtz_cusdt"],
        pair_usdtz_cusdc=pairs["usdtz_cusdc"],
        pair_weth_cusdt=pairs["weth_cusdt"],
        pair_weth_cusdc=pairs["weth_cusdc"],
        usdtz=usdtz,
        desk=desk,
        aave_admin=admin,
        issuer=issuer,
        desk_operator=operator,
        liquidity_provider=lp,
        stable_feed_owner=feed_owner,
        mirror_tokens={v: k for k, v in symbols.items()},
        usdtz_token=usdtz_token,
        aave=market,
        params=params,
    )


def erc_feed_answer(w3: Web3, feed: str) -> int:
    """``latestAnswer()`` of an AggregatorV3 feed (what AaveOracle reads)."""
    return int(contract_at(w3, feed, own("PriceFeed").abi).functions.latestAnswer().call())


def _give_stable(w3: Web3, b: TxBatch, token: str, record: object, to: str, amount: int) -> None:
    """Mint with the FiatToken's minter when the record is a mirror's FiatToken; otherwise (a fork,
    or a Tether-style token) write the balance with the funding helper."""
    if isinstance(record, FiatToken):
        b.call(record.roles.minter, record.contract(w3).functions.mint(to, amount), label=f"mint {record.symbol}")
    else:
        fund(w3, token, to, amount)


# --- helpers for tests: act as the roles ---------------------------------------------------------

def freeze_usdtz(w3: Web3, overlay: Overlay, account: str) -> None:
    """The issuer blacklists ``account``: it can neither send nor receive USDTz."""
    fiattoken.freeze(w3, overlay.usdtz_token, account)


def unfreeze_usdtz(w3: Web3, overlay: Overlay, account: str) -> None:
    """The issuer takes ``account`` off the USDTz blacklist."""
    fiattoken.unfreeze(w3, overlay.usdtz_token, account)


def pause_usdtz(w3: Web3, overlay: Overlay) -> None:
    """The issuer pauses USDTz: no transfer, mint, burn or approval goes through."""
    fiattoken.pause(w3, overlay.usdtz_token)


def unpause_usdtz(w3: Web3, overlay: Overlay) -> None:
    """The issuer unpauses USDTz."""
    fiattoken.unpause(w3, overlay.usdtz_token)


def halt_desk(w3: Web3, overlay: Overlay) -> None:
    """The issuer halts redemptions at the desk."""
    act_as(w3, overlay.issuer, overlay.desk_contract(w3).functions.halt())


def resume_desk(w3: Web3, overlay: Overlay) -> None:
    """The issuer lets redemptions through again."""
    act_as(w3, overlay.issuer, overlay.desk_contract(w3).functions.resume())


def set_desk_fee(w3: Web3, overlay: Overlay, fee_bps: int, flat_fee: int = 0) -> None:
    """The desk operator sets the fee (``flat_fee`` in USDTz base units)."""
    act_as(w3, overlay.desk_operator, overlay.desk_contract(w3).functions.setFee(fee_bps, flat_fee))


def set_desk_max_per_request(w3: Web3, overlay: Overlay, max_per_request: int) -> None:
    """The desk operator sets the per-request cap (USDTz base units)."""
    act_as(w3, overlay.desk_operator, overlay.desk_contract(w3).functions.setMaxPerRequest(max_per_request))


def drain_desk(w3: Web3, overlay: Overlay, token: str | None = None, *, leave: int = 0, to: str | None = None) -> int:
    """Take the desk's stock of ``token`` (both stablecoins if None) down to ``leave`` base units,
    as if other redeemers had emptied it; the stock goes to ``to`` (default the issuer).
    Returns the total amount taken."""
    tokens = [token] if token else [overlay.mirror_tokens["cUSDT"], overlay.mirror_tokens["cUSDC"]]
    taken = 0
    for t in tokens:
        c = erc20(w3, t)
        bal = c.functions.balanceOf(overlay.desk).call()
        if bal > leave:
            act_as(w3, overlay.desk, c.functions.transfer(to_checksum_address(to or overlay.issuer), bal - leave))
            taken += bal - leave
    return taken


def set_reserve_frozen(w3: Web3, overlay: Overlay, asset: str, frozen: bool) -> None:
    """The Aave admin freezes (no new supply or borrow) or unfreezes a reserve."""
    act_as(w3, overlay.aave_admin, overlay.configurator_contract(w3).functions.setReserveFreeze(to_checksum_address(asset), frozen))


def set_reserve_paused(w3: Web3, overlay: Overlay, asset: str, paused: bool) -> None:
    """The Aave admin pauses (nothing moves, not even repay or liquidation) or unpauses a reserve."""
    act_as(w3, overlay.aave_admin, overlay.configurator_contract(w3).functions.setReservePause(to_checksum_address(asset), paused))


def set_stable_price(w3: Web3, overlay: Overlay, answer: int) -> None:
    """The $1 feed's owner pushes a new answer (8 decimals) for cUSDT and cUSDC."""
    act_as(w3, overlay.stable_feed_owner, overlay.stable_feed_contract(w3).functions.setAnswer(answer))


def pair_price(w3: Web3, overlay: Overlay, pair: str, base: str) -> Decimal:
    """The pair's spot price of ``base`` in the other token, in whole tokens (reserve ratio)."""
    pc = overlay.pair_contract(w3, pair)
    r0, r1, _ = pc.functions.getReserves().call()
    t0 = to_checksum_address(pc.functions.token0().call())
    t1 = to_checksum_address(pc.functions.token1().call())
    d0 = erc20(w3, t0).functions.decimals().call()
    d1 = erc20(w3, t1).functions.decimals().call()
    x0, x1 = Decimal(r0) / Decimal(10**d0), Decimal(r1) / Decimal(10**d1)
    return x1 / x0 if to_checksum_address(base) == t0 else x0 / x1


def approve(w3: Web3, token: str, owner: str, spender: str, amount: int) -> None:
    """``owner`` (unlocked or impersonated) approves ``amount``; a leftover allowance is reset to 0
    first (USDT-style tokens revert an approve from a non-zero allowance)."""
    t = erc20(w3, token)
    left = int(t.functions.allowance(to_checksum_address(owner), to_checksum_address(spender)).call())
    if left == amount:
        return
    if left:
        send(w3, t.functions.approve(to_checksum_address(spender), 0), owner)
    send(w3, t.functions.approve(to_checksum_address(spender), amount), owner)


def swap_on_pair(
    w3: Web3,
    overlay: Overlay,
    token_in: str,
    token_out: str,
    amount_in: int,
    *,
    trader: str | None = None,
    min_out: int = 0,
) -> int:
    """A third party swaps ``amount_in`` (base units) of ``token_in`` for ``token_out`` through
    the router (moving the pair's price); it is funded with the funding helper first. Returns
    what it received."""
    who = to_checksum_address(trader or role_address(TRADER))
    token_in, token_out = to_checksum_address(token_in), to_checksum_address(token_out)
    fund(w3, token_in, who, amount_in)
    router = overlay.router_contract(w3)
    out = erc20(w3, token_out)
    before = out.functions.balanceOf(who).call()
    with impersonating(w3, who):
        approve(w3, token_in, who, overlay.uniswap_router, amount_in)
        send(w3, router.functions.swapExactTokensForTokens(amount_in, min_out, [token_in, token_out], who, DEADLINE), who)
    return int(out.functions.balanceOf(who).call()) - int(before)


__all__ = [
    "DEADLINE", "Overlay", "OverlayError", "OverlayParams", "approve", "check_pair_init_code_hash", "deploy_overlay", "drain_desk",
    "erc20", "erc_feed_answer", "freeze_usdtz", "halt_desk", "pair_price", "pause_usdtz", "resume_desk", "set_desk_fee",
    "set_desk_max_per_request", "set_reserve_frozen", "set_reserve_paused", "set_stable_price", "swap_on_pair",
    "unfreeze_usdtz", "unpause_usdtz", "units",
]
