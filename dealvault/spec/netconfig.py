"""Network deployment configs: what every deal on one network shares.

A network config (``deployments/chain138.config.yaml``, checked in, no secrets) gives the
network's identity (chain id, genesis block hash), the canonical token and feed addresses and
the venue addresses (Aave V3 pool or its addresses provider, Uniswap V2 router, redemption
desk) and, optionally, the network's DealVaultLens (``venues.lens``: one stateless lens serves
every vault on a chain; when it is null the deploy pipeline deploys one and records it with the
deal). A deal's own parameters (id, roles, risk) come from its deal spec, never from here.

The local mirror writes its own config with :func:`write_local_config` into
``deployments/local/<name>.config.yaml`` (ignored by git), never over the Chain 138 files.

``load_netconfig(path)`` returns a :class:`NetworkConfig` or raises :class:`ConfigError`
naming the key (dotted path) and what is allowed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3

from dealvault.paths import ROOT
from dealvault.spec.validate import FieldError, Fields, load_yaml

__all__ = [
    "CHAIN138_CONFIG",
    "MIRROR_NETWORKS",
    "config_for_network",
    "DEPLOYMENTS_DIR",
    "TOKEN_KEYS",
    "ConfigError",
    "FeedEntry",
    "NetworkConfig",
    "TokenEntry",
    "Venues",
    "load_netconfig",
    "local_config_data",
    "local_config_path",
    "parse_netconfig",
    "write_local_config",
]

DEPLOYMENTS_DIR = ROOT / "deployments"
CHAIN138_CONFIG = DEPLOYMENTS_DIR / "chain138.config.yaml"
FORMAT_VERSION = 1

# The vault's Config struct names for each token key.
TOKEN_KEYS = ("weth9", "weth10", "cusdt", "cusdc", "usdtz")
VENUE_KEYS = ("pool", "pool_addresses_provider", "router", "desk", "lens")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}(/[a-z0-9][a-z0-9_-]{0,40})?$")


class ConfigError(FieldError):
    """A bad network config; ``key`` is the dotted path of the offending item, ``path`` the file."""

    def __init__(self, key: str, message: str, path: Path | None = None):
        self.path = path
        super().__init__(key, message, f"{path}: " if path else "")


F = Fields(ConfigError, "<config>")


@dataclass(frozen=True)
class TokenEntry:
    key: str                 # weth9, weth10, cusdt, cusdc, usdtz
    address: str | None      # None: not known for this network (yet)
    symbol: str
    decimals: int


@dataclass(frozen=True)
class FeedEntry:
    address: str | None
    decimals: int = 8
    max_age: int = 3600      # seconds; preflight refuses an older answer


@dataclass(frozen=True)
class Venues:
    pool: str | None = None                     # Aave V3 IPool
    pool_addresses_provider: str | None = None  # or its PoolAddressesProvider (getPool())
    router: str | None = None                   # Uniswap V2 Router02
    desk: str | None = None                     # IRedemptionDesk
    lens: str | None = None                     # DealVaultLens (optional: the deploy pipeline deploys one if null)


@dataclass(frozen=True)
class NetworkConfig:
    name: str                 # records go to deployments/<name>/<deal-id>.json
    chain_id: int
    genesis_hash: str | None  # lower-case 0x hash of block 0; None = not pinned (see preflight)
    confirmations: int
    ephemeral: bool           # a throw-away chain (local mirror): stale records are archived
    tokens: Mapping[str, TokenEntry]
    feed: FeedEntry
    venues: Venues
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    sha256: str = field(default="", compare=False)

    def address_items(self) -> list[tuple[str, str | None]]:
        """(dotted key, address or None) for every configured address."""
        items: list[tuple[str, str | None]] = [(f"tokens.{k}.address", t.address) for k, t in self.tokens.items()]
        items.append(("feeds.eth_usd.address", self.feed.address))
        items += [(f"venues.{k}", getattr(self.venues, k)) for k in VENUE_KEYS]
        return items

    def missing_for_vault(self) -> list[str]:
        """Keys that a vault deployment needs but that are null here."""
        missing = [f"tokens.{k}.address" for k in TOKEN_KEYS if self.tokens[k].address is None]
        if self.feed.address is None:
            missing.append("feeds.eth_usd.address")
        if self.venues.pool is None and self.venues.pool_addresses_provider is None:
            missing.append("venues.pool (or venues.pool_addresses_provider)")
        missing += [f"venues.{k}" for k in ("router", "desk") if getattr(self.venues, k) is None]
        return missing


# --------------------------------------------------------------------------------------------
# loading


def load_netconfig(path: str | Path) -> NetworkConfig:
    """Read and validate a network config YAML file."""
    path = Path(path)
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"cannot read network config: {exc.strerror or exc}", path) from exc
    try:
        data = load_yaml(data_bytes.decode())
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {exc}", path) from exc
    try:
        cfg = parse_netconfig(data)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.detail, path) from None
    return replace(cfg, path=path, sha256=hashlib.sha256(data_bytes).hexdigest())


_TOP = {"version": True, "description": False, "network": True, "tokens": True, "feeds": True, "venues": True}
_NETWORK = {"name": True, "chain_id": True, "genesis_hash": True, "confirmations": False, "ephemeral": False}
_TOKEN = {"address": True, "symbol": True, "decimals": True}
_FEEDS = {"eth_usd": True}
_FEED = {"address": True, "decimals": False, "max_age": False}
_VENUES = dict.fromkeys(VENUE_KEYS, False)


def parse_netconfig(data: Any) -> NetworkConfig:
    """Validate a network config given as a mapping."""
    data = F.mapping("", data)
    F.check_keys("", data, _TOP)
    if data["version"] != FORMAT_VERSION:
        F.fail("version", f"{data['version']!r} is not supported; allowed: {FORMAT_VERSION}")
    description = F.text("description", data.get("description") or "", allow_empty=True)

    net = F.mapping("network", data["network"])
    F.check_keys("network", net, _NETWORK)
    name = F.text("network.name", net["name"])
    if not _NAME.match(name):
        F.fail("network.name", f"{name!r}: allowed: lower-case letters, digits, '-', '_' (optionally one '/': local/<name>)")
    chain_id = F.integer("network.chain_id", net["chain_id"], 1, 2**63 - 1)
    genesis = F.block_hash("network.genesis_hash", net["genesis_hash"])
    confirmations = F.integer("network.confirmations", net.get("confirmations", 1), 1, 64)
    ephemeral = F.boolean("network.ephemeral", net.get("ephemeral", False))

    toks = F.mapping("tokens", data["tokens"])
    F.check_keys("tokens", toks, dict.fromkeys(TOKEN_KEYS, True))
    tokens: dict[str, TokenEntry] = {}
    for k in TOKEN_KEYS:
        t = F.mapping(f"tokens.{k}", toks[k])
        F.check_keys(f"tokens.{k}", t, _TOKEN)
        tokens[k] = TokenEntry(
            key=k,
            address=F.optional_address(f"tokens.{k}.address", t["address"]),
            symbol=F.text(f"tokens.{k}.symbol", t["symbol"]),
            decimals=F.integer(f"tokens.{k}.decimals", t["decimals"], 0, 36),
        )

    feeds = F.mapping("feeds", data["feeds"])
    F.check_keys("feeds", feeds, _FEEDS)
    f = F.mapping("feeds.eth_usd", feeds["eth_usd"])
    F.check_keys("feeds.eth_usd", f, _FEED)
    feed = FeedEntry(
        address=F.optional_address("feeds.eth_usd.address", f["address"]),
        decimals=F.integer("feeds.eth_usd.decimals", f.get("decimals", 8), 0, 36),
        max_age=F.integer("feeds.eth_usd.max_age", f.get("max_age", 3600), 1, 7 * 86400),
    )

    ven = F.mapping("venues", data["venues"] if data["venues"] is not None else {})
    F.check_keys("venues", ven, _VENUES)
    venues = Venues(**{k: F.optional_address(f"venues.{k}", ven.get(k)) for k in VENUE_KEYS})

    cfg = NetworkConfig(name, chain_id, genesis, confirmations, ephemeral, tokens, feed, venues, description, raw=dict(data))
    seen: dict[str, str] = {}
    for key, addr in cfg.address_items():
        if addr is None:
            continue
        if addr in seen:
            F.fail(key, f"{addr} is also {seen[addr]}; every configured address must be distinct")
        seen[addr] = key
    return cfg


# --------------------------------------------------------------------------------------------
# the local mirror's config


def local_config_path(name: str = "mirror", deployments_dir: Path = DEPLOYMENTS_DIR) -> Path:
    return deployments_dir / "local" / f"{name}.config.yaml"


#: ape network names (``ecosystem:<name>:provider``) served by the embedded mirror: ape's own
#: ``local`` and ``chain138:mirror`` (ape-config.yaml: ``make mirror`` on 127.0.0.1:8545)
MIRROR_NETWORKS = ("local", "mirror")


def config_for_network(network_name: str | None) -> Path:
    """The network config of an ape network: the mirror's (written by ``ape run mirror
    --overlay``) for :data:`MIRROR_NETWORKS`, else Chain 138's."""
    return local_config_path() if network_name in MIRROR_NETWORKS else CHAIN138_CONFIG


_ERC20_ABI = [
    {"name": "symbol", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string"}]},
    {"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8"}]},
]


def _first(obj: Any, *names: str) -> ChecksumAddress | None:
    for n in names:
        v = getattr(obj, n, None) if obj is not None else None
        if isinstance(v, str) and Web3.is_address(v):
            return to_checksum_address(v)
    return None


def local_config_data(w3: Web3, mirror: Any, overlay: Any | None, name: str = "mirror", lens: str | None = None) -> dict[str, Any]:
    """The config mapping describing a running local mirror (+ overlay): addresses from the
    kit's records, symbols and decimals read from the chain, identity from the node; ``lens``: a
    DealVaultLens already on the mirror (None: each deployment deploys its own)."""
    addrs = {
        "weth9": _first(mirror, "weth9"),
        "weth10": _first(mirror, "weth10"),
        "cusdt": _first(mirror, "cusdt"),
        "cusdc": _first(mirror, "cusdc"),
        "usdtz": _first(overlay, "usdtz"),
    }
    tokens: dict[str, Any] = {}
    for k, addr in addrs.items():
        symbol, decimals = {"weth9": ("WETH", 18), "weth10": ("WETH10", 18), "usdtz": ("USDTz", 6)}.get(k, (k, 6))
        if addr is not None and w3.eth.get_code(addr):
            c = w3.eth.contract(address=addr, abi=_ERC20_ABI)
            try:
                symbol, decimals = c.functions.symbol().call(), int(c.functions.decimals().call())
            except Exception:  # written as expected; preflight will say what is wrong
                pass
        tokens[k] = {"address": addr, "symbol": symbol, "decimals": decimals}
    genesis = w3.eth.get_block(0)["hash"]
    return {
        "version": FORMAT_VERSION,
        "description": "Written by dealvault.spec.netconfig.write_local_config for a local Chain 138 mirror; not checked in.",
        "network": {
            "name": f"local/{name}",
            "chain_id": int(w3.eth.chain_id),
            "genesis_hash": "0x" + bytes(genesis).hex(),
            "confirmations": 1,
            "ephemeral": True,
        },
        "tokens": tokens,
        "feeds": {"eth_usd": {"address": _first(mirror, "eth_usd_feed", "feed"), "decimals": 8, "max_age": 3600}},
        "venues": {
            "pool": _first(overlay, "pool"),
            "pool_addresses_provider": _first(overlay, "pool_addresses_provider", "addresses_provider", "provider"),
            "router": _first(overlay, "uniswap_router", "router"),
            "desk": _first(overlay, "desk", "redemption_desk"),
            "lens": to_checksum_address(lens) if lens else None,
        },
    }


def write_local_config(w3: Web3, mirror: Any, overlay: Any | None, path: str | Path | None = None, *, lens: str | None = None) -> Path:
    """Write the local mirror's network config (default ``deployments/local/mirror.config.yaml``).

    Refuses to write anywhere but a ``local`` folder, so the checked-in Chain 138 files are
    never overwritten. Returns the path; the file validates with :func:`load_netconfig`.
    """
    path = Path(path) if path is not None else local_config_path()
    if path.parent.name != "local":
        raise ConfigError("", f"refusing to write a local config outside a 'local' folder: {path}")
    stem = path.name.removesuffix(".yaml").removesuffix(".config")
    data = local_config_data(w3, mirror, overlay, name=re.sub(r"[^a-z0-9_-]", "-", stem.lower()) or "mirror", lens=lens)
    parse_netconfig(data)  # never write what we would refuse to read
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("# Local Chain 138 mirror: written by the kit, ignored by git. Do not edit.\n" + yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path
