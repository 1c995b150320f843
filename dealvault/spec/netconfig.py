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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from eth_utils import is_checksum_address, to_checksum_address
from web3 import Web3

from dealvault.paths import ROOT

__all__ = [
    "ConfigError",
    "TokenEntry",
    "FeedEntry",
    "Venues",
    "NetworkConfig",
    "load_netconfig",
    "parse_netconfig",
    "write_local_config",
    "local_config_path",
    "DEPLOYMENTS_DIR",
    "CHAIN138_CONFIG",
    "TOKEN_KEYS",
]

DEPLOYMENTS_DIR = ROOT / "deployments"
CHAIN138_CONFIG = DEPLOYMENTS_DIR / "chain138.config.yaml"
FORMAT_VERSION = 1

# The vault's Config struct names for each token key.
TOKEN_KEYS = ("weth9", "weth10", "cusdt", "cusdc", "usdtz")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}(/[a-z0-9][a-z0-9_-]{0,40})?$")
_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ZERO = "0x" + "0" * 40


class ConfigError(ValueError):
    """A bad network config; ``key`` is the dotted path of the offending item."""

    def __init__(self, key: str, message: str, path: Path | None = None):
        self.key = key
        self.detail = message
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key}: {message}" if key else f"{where}{message}")


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
        for k in ("pool", "pool_addresses_provider", "router", "desk", "lens"):
            items.append((f"venues.{k}", getattr(self.venues, k)))
        return items

    def missing_for_vault(self) -> list[str]:
        """Keys that a vault deployment needs but that are null here."""
        missing = [f"tokens.{k}.address" for k in TOKEN_KEYS if self.tokens[k].address is None]
        if self.feed.address is None:
            missing.append("feeds.eth_usd.address")
        if self.venues.pool is None and self.venues.pool_addresses_provider is None:
            missing.append("venues.pool (or venues.pool_addresses_provider)")
        for k in ("router", "desk"):
            if getattr(self.venues, k) is None:
                missing.append(f"venues.{k}")
        return missing


# --------------------------------------------------------------------------------------------
# loading


class _Loader(yaml.SafeLoader):
    """Keeps ``0x...`` as text (YAML 1.1 would read an unquoted address as a hex integer)."""


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    if text.lower().lstrip("+-").startswith("0x"):
        return text
    return yaml.SafeLoader.construct_yaml_int(loader, node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_netconfig(path: str | Path) -> NetworkConfig:
    """Read and validate a network config YAML file."""
    path = Path(path)
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"cannot read network config: {exc.strerror or exc}", path) from exc
    try:
        data = yaml.load(data_bytes.decode(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {exc}", path) from exc
    try:
        cfg = parse_netconfig(data)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.detail, path) from None
    return NetworkConfig(**{**cfg.__dict__, "path": path, "sha256": hashlib.sha256(data_bytes).hexdigest()})


def _typename(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _mapping(key: str, v: Any) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise ConfigError(key or "<config>", f"expected a mapping, got {_typename(v)} {v!r}")
    return v


def _keys(prefix: str, data: Mapping[str, Any], allowed: Mapping[str, bool]) -> None:
    for k in data:
        if k not in allowed:
            raise ConfigError(f"{prefix}.{k}" if prefix else str(k), f"unknown key; allowed here: {', '.join(allowed)}")
    for k, required in allowed.items():
        if required and k not in data:
            raise ConfigError(f"{prefix}.{k}" if prefix else k, "missing required key")


def _int(key: str, v: Any, low: int, high: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(key, f"expected an integer in {low}..{high}, got {_typename(v)} {v!r}")
    if not low <= v <= high:
        raise ConfigError(key, f"{v} is out of range; allowed: {low}..{high}")
    return v


def _str(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(key, f"expected a non-empty string, got {_typename(v)} {v!r}")
    return v


def _address(key: str, v: Any, nullable: bool = True) -> str | None:
    if v is None and nullable:
        return None
    if not isinstance(v, str):
        raise ConfigError(key, f"expected a quoted 0x address or null, got {_typename(v)} {v!r}")
    if not _HEX_ADDRESS.match(v):
        raise ConfigError(key, f"{v!r} is not an address; allowed: 0x followed by 40 hex digits, or null")
    if v[2:] != v[2:].lower() and v[2:] != v[2:].upper() and not is_checksum_address(v):
        raise ConfigError(key, f"{v!r} has a bad EIP-55 checksum; expected {to_checksum_address(v)}")
    if v.lower() == _ZERO:
        raise ConfigError(key, "the zero address is not allowed (use null for unknown)")
    return to_checksum_address(v)


_TOP = {"version": True, "description": False, "network": True, "tokens": True, "feeds": True, "venues": True}
_NETWORK = {"name": True, "chain_id": True, "genesis_hash": True, "confirmations": False, "ephemeral": False}
_TOKEN = {"address": True, "symbol": True, "decimals": True}
_FEEDS = {"eth_usd": True}
_FEED = {"address": True, "decimals": False, "max_age": False}
_VENUES = {"pool": False, "pool_addresses_provider": False, "router": False, "desk": False, "lens": False}


def parse_netconfig(data: Any) -> NetworkConfig:
    """Validate a network config given as a mapping."""
    data = _mapping("", data)
    _keys("", data, _TOP)
    if data["version"] != FORMAT_VERSION:
        raise ConfigError("version", f"{data['version']!r} is not supported; allowed: {FORMAT_VERSION}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError("description", f"expected a string, got {_typename(description)}")

    net = _mapping("network", data["network"])
    _keys("network", net, _NETWORK)
    name = _str("network.name", net["name"])
    if not _NAME.match(name):
        raise ConfigError("network.name", f"{name!r}: allowed: lower-case letters, digits, '-', '_' (optionally one '/': local/<name>)")
    chain_id = _int("network.chain_id", net["chain_id"], 1, 2**63 - 1)
    genesis = net["genesis_hash"]
    if genesis is not None:
        if not isinstance(genesis, str) or not _HASH32.match(genesis):
            raise ConfigError("network.genesis_hash", f"{genesis!r} is not a block hash; allowed: 0x followed by 64 hex digits, or null")
        genesis = genesis.lower()
    confirmations = _int("network.confirmations", net.get("confirmations", 1), 1, 64)
    ephemeral = net.get("ephemeral", False)
    if not isinstance(ephemeral, bool):
        raise ConfigError("network.ephemeral", f"expected true or false, got {_typename(ephemeral)} {ephemeral!r}")

    toks = _mapping("tokens", data["tokens"])
    _keys("tokens", toks, {k: True for k in TOKEN_KEYS})
    tokens: dict[str, TokenEntry] = {}
    for k in TOKEN_KEYS:
        t = _mapping(f"tokens.{k}", toks[k])
        _keys(f"tokens.{k}", t, _TOKEN)
        tokens[k] = TokenEntry(
            key=k,
            address=_address(f"tokens.{k}.address", t["address"]),
            symbol=_str(f"tokens.{k}.symbol", t["symbol"]),
            decimals=_int(f"tokens.{k}.decimals", t["decimals"], 0, 36),
        )

    feeds = _mapping("feeds", data["feeds"])
    _keys("feeds", feeds, _FEEDS)
    f = _mapping("feeds.eth_usd", feeds["eth_usd"])
    _keys("feeds.eth_usd", f, _FEED)
    feed = FeedEntry(
        address=_address("feeds.eth_usd.address", f["address"]),
        decimals=_int("feeds.eth_usd.decimals", f.get("decimals", 8), 0, 36),
        max_age=_int("feeds.eth_usd.max_age", f.get("max_age", 3600), 1, 7 * 86400),
    )

    ven = _mapping("venues", data["venues"] if data["venues"] is not None else {})
    _keys("venues", ven, _VENUES)
    venues = Venues(**{k: _address(f"venues.{k}", ven.get(k)) for k in _VENUES})

    seen: dict[str, str] = {}
    cfg = NetworkConfig(name, chain_id, genesis, confirmations, ephemeral, tokens, feed, venues, description, raw=dict(data))
    for key, addr in cfg.address_items():
        if addr is None:
            continue
        if addr in seen:
            raise ConfigError(key, f"{addr} is also {seen[addr]}; every configured address must be distinct")
        seen[addr] = key
    return cfg


# --------------------------------------------------------------------------------------------
# the local mirror's config


def local_config_path(name: str = "mirror", deployments_dir: Path = DEPLOYMENTS_DIR) -> Path:
    return deployments_dir / "local" / f"{name}.config.yaml"


_ERC20_ABI = [
    {"name": "symbol", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string"}]},
    {"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8"}]},
]


def _first(obj: Any, *names: str) -> str | None:
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
            except Exception:  # noqa: BLE001 - written as expected; preflight will say what is wrong
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
