"""A real Aave V3 market (``@aave/core-v3@1.19.3`` artifacts), deployed the way Aave deploys it.

One account (the market's admin, a named kit role nobody holds the key of) sends everything:

1. ``PoolAddressesProvider(marketId, admin)``; ``setACLAdmin(admin)``; ``ACLManager(provider)``;
   ``setACLManager``; the admin is made pool admin, risk admin and emergency admin.
2. The logic libraries (SupplyLogic, BorrowLogic, LiquidationLogic, EModeLogic, BridgeLogic,
   PoolLogic, FlashLoanLogic -- itself linked to BorrowLogic -- and ConfiguratorLogic) and the
   ``Pool`` / ``PoolConfigurator`` implementations linked to them at the artifacts'
   ``linkReferences`` offsets. ``setPoolImpl`` / ``setPoolConfiguratorImpl`` make the provider
   create their proxies (``InitializableImmutableAdminUpgradeabilityProxy``) and initialize them.
3. ``AaveOracle`` (base currency USD, 8 decimals: it reads ``latestAnswer()`` of each source),
   ``AaveProtocolDataProvider``, the AToken / StableDebtToken / VariableDebtToken
   implementations and one ``DefaultReserveInterestRateStrategy`` per distinct rate curve.
4. ``PoolConfigurator.initReserves`` for every reserve, then collateral parameters
   (``configureReserveAsCollateral``), variable borrowing, reserve factor and caps.

Everything is pipelined through :class:`dealvault.kit.evm.TxBatch` (addresses known from nonces before
mining, one wait at the end), which keeps the whole market to a few hundred milliseconds.

Units: LTV, liquidation threshold, liquidation bonus and reserve factor are basis points (Aave's
own: 8000 = 80 %, bonus 10500 = 105 %); rates are rays (1e27 = 100 % a year).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from dealvault.artifacts import aave
from dealvault.kit.errors import KitError
from dealvault.kit.evm import TxBatch, contract_at, create_address
from dealvault.units import RAY, USD_DECIMALS

__all__ = [
    "CONFIGURATOR_LIBRARIES", "MARKET_ID", "POOL_LIBRARIES", "STABLE_STRATEGY", "WETH_STRATEGY", "AaveDeployError",
    "AaveMarket", "RateStrategy", "ReserveSpec", "ReserveTokens", "deploy_aave_market",
]

MARKET_ID = "DealVault Chain 138 Market"

# Libraries the Pool links, in deployment order (FlashLoanLogic links BorrowLogic, so it is last).
POOL_LIBRARIES = ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic", "BridgeLogic", "PoolLogic", "FlashLoanLogic")
CONFIGURATOR_LIBRARIES = ("ConfiguratorLogic",)

VARIABLE = 2  # DataTypes.InterestRateMode.VARIABLE
STABLE = 1


class AaveDeployError(KitError):
    """The market did not come out as configured; the message says what differs."""


@dataclass(frozen=True)
class RateStrategy:
    """``DefaultReserveInterestRateStrategy`` parameters, in rays (1e27 = 100 % a year)."""

    optimal_usage_ratio: int
    base_variable_borrow_rate: int
    variable_rate_slope1: int
    variable_rate_slope2: int
    stable_rate_slope1: int = RAY // 200  # 0.5 %; stable borrowing stays disabled
    stable_rate_slope2: int = 60 * RAY // 100
    base_stable_rate_offset: int = RAY // 100
    stable_rate_excess_offset: int = 8 * RAY // 100
    optimal_stable_to_total_debt_ratio: int = 20 * RAY // 100

    def args(self) -> tuple[int, ...]:
        """The strategy's constructor arguments after the addresses provider, in order."""
        return (
            self.optimal_usage_ratio, self.base_variable_borrow_rate, self.variable_rate_slope1,
            self.variable_rate_slope2, self.stable_rate_slope1, self.stable_rate_slope2,
            self.base_stable_rate_offset, self.stable_rate_excess_offset, self.optimal_stable_to_total_debt_ratio,
        )


# Aave V3 Ethereum's WETH curve (optimal 80 %, slope1 3.3 %, slope2 80 %).
WETH_STRATEGY = RateStrategy(80 * RAY // 100, 0, 33 * RAY // 1000, 80 * RAY // 100)
# A stablecoin curve close to Aave V3 Ethereum's USDT (optimal 90 %, slope1 4 %, slope2 60 %), with
# a 2 % base rate so that borrowing from a seeded but otherwise idle market still costs carry.
STABLE_STRATEGY = RateStrategy(90 * RAY // 100, 2 * RAY // 100, 4 * RAY // 100, 60 * RAY // 100)


@dataclass(frozen=True)
class ReserveSpec:
    """One reserve to list. ``ltv == 0`` means not usable as collateral."""

    asset: str
    symbol: str
    decimals: int
    price_source: str  # AggregatorInterface (latestAnswer, 8 decimals USD)
    strategy: RateStrategy
    ltv: int = 0  # bps
    liquidation_threshold: int = 0  # bps
    liquidation_bonus: int = 0  # bps, 10500 = 5 % bonus
    borrowable: bool = False  # variable-rate borrowing
    reserve_factor: int = 1_000  # bps
    supply_cap: int = 0  # whole tokens, 0 = none
    borrow_cap: int = 0  # whole tokens, 0 = none


@dataclass(frozen=True)
class ReserveTokens:
    """The proxies ``initReserves`` created for one reserve."""

    a_token: str
    stable_debt_token: str
    variable_debt_token: str


@dataclass(frozen=True)
class AaveMarket:
    """Every address of the deployed market and the account holding its admin roles."""

    addresses_provider: str
    acl_manager: str
    pool: str  # the proxy users talk to
    pool_configurator: str  # proxy
    oracle: str
    data_provider: str
    pool_impl: str
    pool_configurator_impl: str
    a_token_impl: str
    stable_debt_token_impl: str
    variable_debt_token_impl: str
    treasury: str
    admin: str  # ACL admin, pool admin, risk admin, emergency admin, provider owner
    libraries: Mapping[str, str] = field(default_factory=dict)
    rate_strategies: Mapping[str, str] = field(default_factory=dict)  # asset symbol -> strategy
    reserves: Mapping[str, ReserveTokens] = field(default_factory=dict)  # asset address -> tokens

    # typed accessors ------------------------------------------------------------------------
    def pool_contract(self, w3: Web3) -> Contract:
        return _contract(w3, "Pool", self.pool)

    def configurator_contract(self, w3: Web3) -> Contract:
        return _contract(w3, "PoolConfigurator", self.pool_configurator)

    def oracle_contract(self, w3: Web3) -> Contract:
        return _contract(w3, "AaveOracle", self.oracle)

    def data_provider_contract(self, w3: Web3) -> Contract:
        return _contract(w3, "AaveProtocolDataProvider", self.data_provider)

    def acl_contract(self, w3: Web3) -> Contract:
        return _contract(w3, "ACLManager", self.acl_manager)

    def a_token(self, w3: Web3, asset: str) -> Contract:
        return _contract(w3, "AToken", self.reserves[to_checksum_address(asset)].a_token)

    def variable_debt_token(self, w3: Web3, asset: str) -> Contract:
        return _contract(w3, "VariableDebtToken", self.reserves[to_checksum_address(asset)].variable_debt_token)


def _contract(w3: Web3, name: str, address: str) -> Contract:
    """The Aave contract ``name`` (its artifact's ABI) at ``address``."""
    return contract_at(w3, address, aave(name).abi)


def deploy_aave_market(
    w3: Web3,
    reserves: Sequence[ReserveSpec],
    *,
    admin: str,
    treasury: str,
    market_id: str = MARKET_ID,
    batch: TxBatch | None = None,
) -> AaveMarket:
    """Deploy a full Aave V3 market listing ``reserves``; ``admin`` sends everything and keeps
    every admin role. Pass ``batch`` to pipeline with other work (it is flushed here)."""
    own_batch = batch is None
    b = batch or TxBatch(w3)
    try:
        return _deploy(w3, b, reserves, to_checksum_address(admin), to_checksum_address(treasury), market_id)
    finally:
        if own_batch:
            b.close()


def _deploy(w3: Web3, b: TxBatch, reserves: Sequence[ReserveSpec], admin: str, treasury: str, market_id: str) -> AaveMarket:
    # 1. provider and ACL
    provider = b.deploy(admin, aave("PoolAddressesProvider"), market_id, admin)
    prov = _contract(w3, "PoolAddressesProvider", provider)
    b.call(admin, prov.functions.setACLAdmin(admin))
    acl = b.deploy(admin, aave("ACLManager"), provider)
    b.call(admin, prov.functions.setACLManager(acl))
    aclc = _contract(w3, "ACLManager", acl)
    for fn in (aclc.functions.addPoolAdmin, aclc.functions.addRiskAdmin, aclc.functions.addEmergencyAdmin):
        b.call(admin, fn(admin))

    # 2. libraries, Pool and PoolConfigurator behind the provider's proxies
    libs: dict[str, str] = {}
    for name in POOL_LIBRARIES + CONFIGURATOR_LIBRARIES:
        art = aave(name)
        libs[name] = b.deploy(admin, art, bytecode=art.linked(libs) if art.link_references else None)
    pool_art = aave("Pool")
    pool_impl = b.deploy(admin, pool_art, provider, bytecode=pool_art.linked(libs))
    # Lock the implementation like Aave's deploy scripts do (initialize is once-only).
    b.call(admin, _contract(w3, "Pool", pool_impl).functions.initialize(provider))
    # The provider deploys each proxy with CREATE: its nonce starts at 1.
    pool = create_address(provider, 1)
    b.call(admin, prov.functions.setPoolImpl(pool_impl))
    conf_art = aave("PoolConfigurator")
    conf_impl = b.deploy(admin, conf_art, bytecode=conf_art.linked(libs))
    b.call(admin, _contract(w3, "PoolConfigurator", conf_impl).functions.initialize(provider))
    configurator = create_address(provider, 2)
    b.call(admin, prov.functions.setPoolConfiguratorImpl(conf_impl))

    # 3. oracle, data provider, token implementations, rate strategies
    oracle = b.deploy(
        admin, aave("AaveOracle"), provider,
        [to_checksum_address(r.asset) for r in reserves], [to_checksum_address(r.price_source) for r in reserves],
        "0x" + "00" * 20, "0x" + "00" * 20, 10**USD_DECIMALS,
    )
    b.call(admin, prov.functions.setPriceOracle(oracle))
    data_provider = b.deploy(admin, aave("AaveProtocolDataProvider"), provider)
    b.call(admin, prov.functions.setPoolDataProvider(data_provider))
    a_impl = b.deploy(admin, aave("AToken"), pool)
    s_impl = b.deploy(admin, aave("StableDebtToken"), pool)
    v_impl = b.deploy(admin, aave("VariableDebtToken"), pool)
    zero = "0x" + "00" * 20
    # Lock the token implementations too (as Aave's scripts do).
    b.call(admin, _contract(w3, "AToken", a_impl).functions.initialize(pool, zero, zero, zero, 0, "ATOKEN_IMPL", "ATOKEN_IMPL", b""))
    b.call(admin, _contract(w3, "StableDebtToken", s_impl).functions.initialize(pool, zero, zero, 0, "STABLE_DEBT_TOKEN_IMPL", "STABLE_DEBT_TOKEN_IMPL", b""))
    b.call(admin, _contract(w3, "VariableDebtToken", v_impl).functions.initialize(pool, zero, zero, 0, "VARIABLE_DEBT_TOKEN_IMPL", "VARIABLE_DEBT_TOKEN_IMPL", b""))
    strategies: dict[RateStrategy, str] = {}
    for r in reserves:
        if r.strategy not in strategies:
            strategies[r.strategy] = b.deploy(admin, aave("DefaultReserveInterestRateStrategy"), provider, *r.strategy.args())

    # 4. reserves
    conf = _contract(w3, "PoolConfigurator", configurator)
    inputs = [
        (
            a_impl, s_impl, v_impl, r.decimals, strategies[r.strategy], to_checksum_address(r.asset), treasury, zero,
            f"Aave Chain138 {r.symbol}", f"aC138{r.symbol}",
            f"Aave Chain138 Variable Debt {r.symbol}", f"variableDebtC138{r.symbol}",
            f"Aave Chain138 Stable Debt {r.symbol}", f"stableDebtC138{r.symbol}",
            b"",
        )
        for r in reserves
    ]
    for r, inp in zip(reserves, inputs, strict=True):  # one reserve per tx: stays far below any block gas limit
        b.call(admin, conf.functions.initReserves([inp]), label=f"initReserves {r.symbol}")
    for r in reserves:
        asset = to_checksum_address(r.asset)
        if r.ltv or r.liquidation_threshold:
            b.call(admin, conf.functions.configureReserveAsCollateral(asset, r.ltv, r.liquidation_threshold, r.liquidation_bonus),
                   label=f"collateral {r.symbol}")
        if r.borrowable:
            b.call(admin, conf.functions.setReserveBorrowing(asset, True), label=f"borrowing {r.symbol}")
        b.call(admin, conf.functions.setReserveFactor(asset, r.reserve_factor), label=f"reserve factor {r.symbol}")
        if r.supply_cap:
            b.call(admin, conf.functions.setSupplyCap(asset, r.supply_cap))
        if r.borrow_cap:
            b.call(admin, conf.functions.setBorrowCap(asset, r.borrow_cap))
    b.flush()

    # 5. read back what the chain says
    if to_checksum_address(prov.functions.getPool().call()) != pool:
        raise AaveDeployError(f"pool proxy is {prov.functions.getPool().call()}, expected {pool}")
    if to_checksum_address(prov.functions.getPoolConfigurator().call()) != configurator:
        raise AaveDeployError(f"configurator proxy is {prov.functions.getPoolConfigurator().call()}, expected {configurator}")
    dp = _contract(w3, "AaveProtocolDataProvider", data_provider)
    tokens: dict[str, ReserveTokens] = {}
    for r in reserves:
        a, s, v = dp.functions.getReserveTokensAddresses(to_checksum_address(r.asset)).call()
        tokens[to_checksum_address(r.asset)] = ReserveTokens(to_checksum_address(a), to_checksum_address(s), to_checksum_address(v))
    return AaveMarket(
        addresses_provider=provider, acl_manager=acl, pool=pool, pool_configurator=configurator, oracle=oracle,
        data_provider=data_provider, pool_impl=pool_impl, pool_configurator_impl=conf_impl, a_token_impl=a_impl,
        stable_debt_token_impl=s_impl, variable_debt_token_impl=v_impl, treasury=treasury, admin=admin,
        libraries=dict(libs), rate_strategies={r.symbol: strategies[r.strategy] for r in reserves}, reserves=tokens,
    )
