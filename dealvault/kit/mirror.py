"""The Chain 138 mirror: what the real chain has, installed at the real addresses on an anvil.

:func:`install_mirror` puts on a fresh anvil (started with ``--chain-id 138``):

* WETH9 at its canonical address, *deployed* (constructor run) from the mainnet deployer at
  nonce 446 with the real bytecode of ``@uniswap/v2-periphery/build/WETH9.json``;
* WETH10 (our ``contracts/test/WETH10.sol``) by ``anvil_setCode``; it has no constructor state
  and computes its EIP-712 domain separator from ``address(this)`` at run time;
* cUSDT and cUSDC: Circle's FiatToken proxy + V2_2 placed at their addresses
  (:func:`dealvault.kit.fiattoken.place_fiat_token`), 6 decimals, named issuer roles; or, with
  ``cusdt_kind="tether"``, a Tether-style token at cUSDT instead
  (:func:`dealvault.kit.tether.place_tether_token`: no bool returns, USDT's approve rule, an
  owner who pauses and blacklists), so a fork run can meet a stablecoin that is not a FiatToken;
* the ETH/USD feed (our ``contracts/test/PriceFeed.sol``) by ``anvil_setCode`` + ``initialize``;
* Multicall3 at its canonical address (:data:`MULTICALL3`) when missing, by ``anvil_setCode`` of
  its real runtime bytecode (:func:`install_multicall3`).

Re-installing is refused: if any canonical address already has code (a second install, or a
fork of the real chain), :func:`install_mirror` raises :class:`MirrorError` naming the
addresses and changes nothing. Use :func:`check_upstream` to verify a chain that already has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from dealvault import chain138
from dealvault.artifacts import Artifact, own, uniswap
from dealvault.kit.errors import KitError
from dealvault.kit.evm import at, contract_at, has_code, impersonating, role_address, send, send_raw, set_code, set_nonce
from dealvault.kit.fiattoken import FiatToken, deploy_implementation, place_fiat_token
from dealvault.kit.tether import TetherToken, place_tether_token
from dealvault.units import E8, USD_DECIMALS

DEFAULT_ETH_USD = 3_000 * E8  # $3,000 with the feed's 8 decimals
FEED_DECIMALS = USD_DECIMALS
FEED_OWNER_LABEL = "feed.owner"
# What the mirror can put at cUSDT: Circle's FiatToken (as Chain 138 has it) or a Tether-style token.
CUSDT_KINDS = ("fiattoken", "tether")
# The environment variable through which a fork run picks it (tools/test_fork.sh --usdt-style sets it
# to "tether"; tests/fork/conftest.py passes it to start_kit when it starts the upstream mirror).
CUSDT_KIND_ENV = "DEALVAULT_FORK_CUSDT"

# chain138.py spells WETH10 with a lower-case final "f", which is not its EIP-55 checksum
# (web3 rejects it): every address the mirror hands out goes through to_checksum_address.
WETH9 = to_checksum_address(chain138.WETH9)
WETH10 = to_checksum_address(chain138.WETH10)
CUSDT = to_checksum_address(chain138.CUSDT)
CUSDC = to_checksum_address(chain138.CUSDC)
ETH_USD_FEED = to_checksum_address(chain138.ETH_USD_FEED)
# Multicall3 (https://github.com/mds1/multicall, MIT licence): the same address on every chain
# that has it (a pre-signed, keyless deployment).
MULTICALL3 = to_checksum_address("0xcA11bde05977b3631167028862bE2a173976CA11")


class MirrorError(KitError):
    """The mirror cannot be installed here; the message says which address and why."""


@dataclass(frozen=True)
class CanonicalTokens:
    """The canonical Chain 138 contracts on a chain: the mirror's record and an upstream's."""

    chain_id: int
    weth9: str
    weth10: str
    cusdt: str
    cusdc: str
    eth_usd_feed: str

    def token(self, symbol: str) -> str:
        """Address by chain138 symbol: WETH (or WETH9), WETH10, cUSDT, cUSDC; KeyError otherwise."""
        return {"WETH": self.weth9, "WETH9": self.weth9, "WETH10": self.weth10, "cUSDT": self.cusdt, "cUSDC": self.cusdc}[symbol]


@dataclass(frozen=True)
class Mirror(CanonicalTokens):
    """Addresses of everything the mirror installed, and the accounts holding its roles."""

    feed_owner: str
    cusdt_token: FiatToken | TetherToken  # cUSDT's record: name, symbol, roles (pauser, ...) or owner
    cusdc_token: FiatToken
    fiat_implementation: str  # the FiatTokenV2_2 both proxies delegate to


def weth9(w3: Web3, address: str = WETH9) -> Contract:
    """WETH9 (the real bytecode's ABI) at ``address``."""
    return at(w3, uniswap("WETH9"), address)


def weth10(w3: Web3, address: str = WETH10) -> Contract:
    """WETH10 at ``address``."""
    return at(w3, own("WETH10"), address)


def feed(w3: Web3, address: str = ETH_USD_FEED) -> Contract:
    """The settable ETH/USD PriceFeed at ``address``."""
    return at(w3, own("PriceFeed"), address)


def _runtime(artifact: Artifact) -> str:
    code = artifact.deployed_bytecode
    if not code or code in ("0x", "0x0"):
        raise MirrorError(f"{artifact.name} has no runtime bytecode in the build output; run `ape compile`")
    return code


def multicall3_runtime() -> str:
    """Multicall3's deployed runtime bytecode (0x hex), as eth-ape ships it for local networks
    (``ape_ethereum.multicall.constants.MULTICALL3_CODE``, eth-ape's Apache-2.0 package; the
    contract is mds1/multicall's Multicall3, MIT, solc 0.8.12, the code at MULTICALL3 on mainnet:
    its metadata hash bb2b5c71... is the one of mds1/multicall's pre-signed deployment)."""
    from ape_ethereum.multicall.constants import MULTICALL3_ADDRESS, MULTICALL3_CODE

    if to_checksum_address(MULTICALL3_ADDRESS) != MULTICALL3:
        raise MirrorError(f"eth-ape's Multicall3 address {MULTICALL3_ADDRESS} is not {MULTICALL3}")
    return "0x" + bytes(MULTICALL3_CODE).hex()


def install_multicall3(w3: Web3) -> bool:
    """Put Multicall3's runtime at :data:`MULTICALL3` if no code is there; whether it did."""
    if has_code(w3, MULTICALL3):
        return False
    set_code(w3, MULTICALL3, multicall3_runtime())
    return True


def _install_weth9(w3: Web3) -> None:
    art = uniswap("WETH9")
    deployer = chain138.WETH9_DEPLOYER
    with impersonating(w3, deployer) as who:
        set_nonce(w3, who, chain138.WETH9_DEPLOYER_NONCE)
        receipt = send_raw(w3, who, None, data=art.bytecode)
    got = receipt["contractAddress"]
    if got is None or to_checksum_address(got) != WETH9:
        raise MirrorError(f"WETH9 deployed at {got}, not at {WETH9}: deployer nonce was not {chain138.WETH9_DEPLOYER_NONCE}?")


def _install_feed(w3: Web3, answer: int) -> str:
    set_code(w3, ETH_USD_FEED, _runtime(own("PriceFeed")))
    owner = role_address(FEED_OWNER_LABEL)
    with impersonating(w3, owner):
        send(w3, feed(w3).functions.initialize(owner, answer), owner)
    return owner


def install_mirror(w3: Web3, *, eth_usd: int = DEFAULT_ETH_USD, cusdt_kind: str = "fiattoken") -> Mirror:
    """Install the Chain 138 mirror on ``w3`` (an anvil with chain id 138); return its record.

    ``eth_usd`` is the feed's first answer (8 decimals). ``cusdt_kind`` is what stands at cUSDT:
    ``"fiattoken"`` (Circle's FiatToken, as on Chain 138) or ``"tether"`` (a Tether-style token,
    same name, symbol and decimals, owned by the kit role ``cusdt.owner``). Raises :class:`MirrorError` if the chain
    id is not 138 or if any canonical address already has code (nothing is changed then).
    """
    if cusdt_kind not in CUSDT_KINDS:
        raise MirrorError(f"cusdt_kind is {cusdt_kind!r}; the mirror can put one of {', '.join(CUSDT_KINDS)} at cUSDT")
    chain_id = int(w3.eth.chain_id)
    if chain_id != chain138.CHAIN_ID:
        raise MirrorError(f"chain id is {chain_id}, the mirror needs {chain138.CHAIN_ID} (start anvil with --chain-id 138)")
    canonical = {"WETH9": WETH9, "WETH10": WETH10, "cUSDT": CUSDT,
                 "cUSDC": CUSDC, "ETH/USD feed": ETH_USD_FEED}
    taken = [f"{what} at {addr}" for what, addr in canonical.items() if has_code(w3, addr)]
    if taken:
        raise MirrorError(
            "refusing to install the mirror: code already present at " + ", ".join(taken)
            + " (already installed, or a fork of the real chain: use check_upstream instead)"
        )

    _install_weth9(w3)
    set_code(w3, WETH10, _runtime(own("WETH10")))
    feed_owner = _install_feed(w3, eth_usd)
    impl = deploy_implementation(w3)
    facts = {t.symbol: t for t in chain138.TOKENS}
    tokens: dict[str, FiatToken | TetherToken] = {}
    for symbol, label in (("cUSDT", "cusdt"), ("cUSDC", "cusdc")):
        f = facts[symbol]
        if symbol == "cUSDT" and cusdt_kind == "tether":
            tokens[symbol] = place_tether_token(w3, f.address, f.name, f.symbol, f"{label}.owner", decimals=f.decimals)
            continue
        tokens[symbol] = place_fiat_token(w3, to_checksum_address(f.address), f.name, f.symbol, "USD", label, decimals=f.decimals, implementation=impl)
    install_multicall3(w3)
    fiat = tokens["cUSDC"]
    assert isinstance(fiat, FiatToken)  # cUSDC is always Circle's FiatToken
    return Mirror(
        chain_id=chain_id,
        weth9=WETH9,
        weth10=WETH10,
        cusdt=CUSDT,
        cusdc=CUSDC,
        eth_usd_feed=ETH_USD_FEED,
        feed_owner=feed_owner,
        cusdt_token=tokens["cUSDT"],
        cusdc_token=fiat,
        fiat_implementation=impl,
    )


# --- the feed, for tests ----------------------------------------------------------------------


def set_eth_price(w3: Web3, mirror: Mirror, answer: int, updated_at: int | None = None) -> None:
    """Push a new ETH/USD round (``answer`` has 8 decimals: 2500e8 is $2,500).

    ``updated_at`` None means the block time of the update; otherwise the round carries that
    timestamp (in the past for a stale round).
    """
    c = feed(w3, mirror.eth_usd_feed)
    fn = c.functions.setAnswer(answer) if updated_at is None else c.functions.setRound(answer, updated_at)
    with impersonating(w3, mirror.feed_owner):
        send(w3, fn, mirror.feed_owner)


def make_feed_stale(w3: Web3, mirror: Mirror, age: int = 2 * 86_400) -> int:
    """Push a round with the current answer but updated ``age`` seconds before the latest block.

    Returns that ``updatedAt``. The chain's clock is not moved (see also ``evm.advance_time``
    to let a fresh round age instead).
    """
    now = w3.eth.get_block("latest")["timestamp"]
    updated_at = max(now - age, 1)
    answer = int(feed(w3, mirror.eth_usd_feed).functions.latestAnswer().call())
    set_eth_price(w3, mirror, answer, updated_at)
    return updated_at


# --- verifying a chain that should have all this ------------------------------------------------

_ERC20_META_ABI = [
    {"type": "function", "name": n, "stateMutability": "view", "inputs": [], "outputs": [{"type": t, "name": ""}]}
    for n, t in (("name", "string"), ("symbol", "string"), ("decimals", "uint8"))
]
_FEED_ABI = [
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8", "name": ""}]},
    {"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
     "outputs": [{"type": "uint80", "name": "roundId"}, {"type": "int256", "name": "answer"}, {"type": "uint256", "name": "startedAt"},
                 {"type": "uint256", "name": "updatedAt"}, {"type": "uint80", "name": "answeredInRound"}]},
]


def check_upstream(w3: Web3) -> list[str]:
    """What differs between the chain behind ``w3`` and the Chain 138 facts; [] if nothing.

    Checks the chain id, code at every canonical address, each token's name, symbol and
    decimals, and that the feed answers ``decimals()`` (8) and ``latestRoundData()`` with a
    positive answer. Each message names the address and what was found there.
    """
    problems: list[str] = []
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:  # unreachable RPC: one clear problem, nothing else can be checked
        return [f"cannot read the chain id: {exc}"]
    if chain_id != chain138.CHAIN_ID:
        problems.append(f"chain id is {chain_id}, expected {chain138.CHAIN_ID}")
    for fact in chain138.TOKENS:
        address = to_checksum_address(fact.address)
        where = f"{fact.symbol} at {address}"
        if not has_code(w3, address):
            problems.append(f"{where}: no code")
            continue
        c = contract_at(w3, address, _ERC20_META_ABI)
        for attr, want in (("name", fact.name), ("symbol", fact.symbol), ("decimals", fact.decimals)):
            try:
                got = getattr(c.functions, attr)().call()
            except Exception as exc:
                problems.append(f"{where}: {attr}() reverted or is missing ({type(exc).__name__}: {exc})")
                continue
            if got != want:
                problems.append(f"{where}: {attr}() is {got!r}, expected {want!r}")
    where = f"ETH/USD feed at {ETH_USD_FEED}"
    if not has_code(w3, ETH_USD_FEED):
        problems.append(f"{where}: no code")
    else:
        c = contract_at(w3, ETH_USD_FEED, _FEED_ABI)
        try:
            dec = c.functions.decimals().call()
            if dec != FEED_DECIMALS:
                problems.append(f"{where}: decimals() is {dec}, expected {FEED_DECIMALS}")
        except Exception as exc:
            problems.append(f"{where}: decimals() reverted or is missing ({type(exc).__name__}: {exc})")
        try:
            _rid, answer, _s, updated_at, _a = c.functions.latestRoundData().call()
            if answer <= 0:
                problems.append(f"{where}: latestRoundData() answer is {answer}, expected > 0")
            if updated_at == 0:
                problems.append(f"{where}: latestRoundData() updatedAt is 0")
        except Exception as exc:
            problems.append(f"{where}: latestRoundData() reverted or is missing ({type(exc).__name__}: {exc})")
    return problems


__all__ = [
    "CUSDC", "CUSDT", "CUSDT_KIND_ENV", "CUSDT_KINDS", "DEFAULT_ETH_USD", "ETH_USD_FEED", "FEED_DECIMALS", "MULTICALL3", "WETH9",
    "WETH10", "CanonicalTokens", "Mirror", "MirrorError", "check_upstream", "feed", "install_mirror", "install_multicall3",
    "make_feed_stale", "multicall3_runtime", "set_eth_price", "weth9", "weth10",
]
