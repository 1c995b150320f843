"""Where a deal's contracts are: :class:`Venues` (the vault, what it was built with, and the
DealVaultLens its views are read through), from a deployment record or a network config.

Also the lens registry (:func:`register_lens`: which lens reads which vault) and the dict-shaped
reads older callers use (:func:`read_risk`, :func:`read_params`, :func:`read_twap`): thin wrappers
over :class:`dealvault.vault.VaultClient`, which new code uses directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from web3 import Web3

from dealvault.run.chain import rpc_guard
from dealvault.run.errors import InputError
from dealvault.vault import VaultClient

if TYPE_CHECKING:
    from dealvault.spec import DealSpec

__all__ = ["Venues", "venues_for", "register_lens", "lens_for", "client_for", "read_risk", "read_params", "read_twap"]

# the deal spec's names for the tokens, each named explicitly (anything else is refused)
STABLES = ("cUSDT", "cUSDC")
WRAPPERS = ("WETH9", "WETH10")

# vault -> the lens its deal reads through (set by Venues with a lens, or register_lens)
_LENSES: dict[str, str] = {}


def register_lens(vault: str, lens: str) -> None:
    """Remember ``lens`` as the DealVaultLens to read ``vault`` through (read_risk's default)."""
    _LENSES[to_checksum_address(vault)] = to_checksum_address(lens)


def lens_for(vault: str, lens: str | None = None) -> str:
    """``lens`` if given, else the lens registered for ``vault``; InputError if none is known."""
    if lens:
        return to_checksum_address(lens)
    found = _LENSES.get(to_checksum_address(vault))
    if found is None:
        raise InputError(f"no DealVaultLens known for the vault {vault}: the deployment record (lens.address) or the "
                         "network config (venues.lens) names it; pass it (lens=...)")
    return found


def client_for(w3: Web3, vault: str, lens: str | None = None) -> VaultClient:
    """A :class:`VaultClient` for ``vault`` read through ``lens`` (default: the registered one)."""
    return VaultClient(w3, vault, lens_for(vault, lens))


@dataclass(frozen=True)
class Venues:
    """Addresses a deal's legs need: the vault and what it was built with."""

    vault: str
    weth9: str
    weth10: str
    cusdt: str
    cusdc: str
    usdtz: str
    router: str
    pool: str
    desk: str
    feed: str
    deploy_block: int = 0
    buckets: tuple[int, int, int] | None = None  # the vault's (core, working, opportunistic) bps if known
    lens: str | None = None        # the DealVaultLens the deal reads its views through
    lens_code_hash: str | None = None  # its runtime's keccak as the deployment record has it (checked before a run)
    genesis_hash: str | None = None  # block 0 of the chain the vault was deployed on (its deployment record)

    def __post_init__(self) -> None:
        if self.lens:
            register_lens(self.vault, self.lens)

    def wrapper(self, spec: DealSpec) -> str:
        """The wrapper the spec names: WETH9 or WETH10 (anything else is refused)."""
        if spec.wrapper == "WETH9":
            return self.weth9
        if spec.wrapper == "WETH10":
            return self.weth10
        raise InputError(f"wrapper {spec.wrapper!r}: allowed: {', '.join(WRAPPERS)}")

    def stable(self, spec: DealSpec) -> str:
        """The stablecoin the spec names: cUSDT or cUSDC (anything else is refused)."""
        if spec.stablecoin == "cUSDT":
            return self.cusdt
        if spec.stablecoin == "cUSDC":
            return self.cusdc
        raise InputError(f"stablecoin {spec.stablecoin!r}: allowed: {', '.join(STABLES)}")

    def stable_name(self, address: str) -> str:
        """cUSDT or cUSDC for one of the two addresses (anything else is refused)."""
        a = to_checksum_address(address)
        if a == self.cusdt:
            return "cUSDT"
        if a == self.cusdc:
            return "cUSDC"
        raise InputError(f"{a} is neither the deal's cUSDT ({self.cusdt}) nor its cUSDC ({self.cusdc})")

    @classmethod
    def from_deploy_record(cls, rec: Mapping[str, Any], *, lens: str | None = None) -> Venues:
        """From a deployment record (``deployments/<network>/<deal>.json`` or DeployResult.record);
        the lens is the record's (``lens.address``) unless ``lens`` is given (the network config's)."""
        c = rec["constructor_args"]["decoded"]
        rec_lens = rec.get("lens") or {}
        code_hash = rec_lens.get("runtime_bytecode_hash") if not lens or lens == rec_lens.get("address") else None
        lens = lens or rec_lens.get("address")
        risk = c.get("risk") or {}
        buckets = None
        if all(k in risk for k in ("coreBps", "workingBps", "opportunisticBps")):
            buckets = (int(risk["coreBps"]), int(risk["workingBps"]), int(risk["opportunisticBps"]))
        cs = to_checksum_address
        return cls(vault=cs(rec["address"]), weth9=cs(c["weth9"]), weth10=cs(c["weth10"]), cusdt=cs(c["cusdt"]),
                   cusdc=cs(c["cusdc"]), usdtz=cs(c["usdtz"]), router=cs(c["router"]), pool=cs(c["pool"]),
                   desk=cs(c["desk"]), feed=cs(c["ethUsdFeed"]), deploy_block=int(rec.get("block_number") or 0),
                   buckets=buckets, lens=cs(lens) if lens else None, lens_code_hash=code_hash,
                   genesis_hash=str((rec.get("network") or {}).get("genesis_hash") or "").lower() or None)

    @classmethod
    def from_netconfig(cls, net: Any, vault: str, *, pool: str | None = None, deploy_block: int = 0,
                       lens: str | None = None) -> Venues:
        """From a network config (a spec with a vault address): the lens is the config's
        ``venues.lens`` unless given."""
        t = net.tokens
        p = pool or net.venues.pool
        missing = [k for k, v in (("usdtz", t["usdtz"].address), ("pool", p), ("router", net.venues.router),
                                  ("desk", net.venues.desk)) if v is None]
        if missing:
            raise InputError(f"network config {getattr(net, 'path', '')}: {', '.join(missing)} unknown (null); the deal needs them")
        cs = to_checksum_address
        lens = lens or getattr(net.venues, "lens", None)
        return cls(vault=cs(vault), weth9=cs(t["weth9"].address), weth10=cs(t["weth10"].address), cusdt=cs(t["cusdt"].address),
                   cusdc=cs(t["cusdc"].address), usdtz=cs(t["usdtz"].address), router=cs(net.venues.router), pool=cs(p),
                   desk=cs(net.venues.desk), feed=cs(net.feed.address), deploy_block=deploy_block,
                   lens=cs(lens) if lens else None)


class _NoRecordError(Exception):
    pass


def venues_for(spec: DealSpec, *, deployment: Path | None = None, config: Path | None = None,
               spec_path: str | Path | None = None) -> Venues:
    """A deal's Venues: from its deployment record (``deployment``, else
    ``deployments/<network>/<deal>.json`` of the network config) or, for a spec with a vault
    address, from the network config (``config``, default Chain 138's). The lens is the record's,
    else the config's ``venues.lens``. InputError (nothing sent) when something is missing."""
    from dealvault.deploy import load_record, record_path
    from dealvault.errors import DealVaultError
    from dealvault.spec.netconfig import CHAIN138_CONFIG, DEPLOYMENTS_DIR, load_netconfig

    from_record = deployment is not None or spec.vault_address is None
    try:
        if from_record and deployment is None:
            deployment = record_path(DEPLOYMENTS_DIR, load_netconfig(config or CHAIN138_CONFIG).name, spec.deal_id)
        if from_record and not Path(str(deployment)).exists():
            raise _NoRecordError()
        if from_record:
            rec = load_record(Path(str(deployment)))
            if rec.get("deal_id") not in (None, spec.deal_id):  # one vault, one deal
                raise InputError(f"the deployment record {deployment} is deal {rec.get('deal_id')!r}'s vault, "
                                 f"not deal {spec.deal_id!r}'s (the spec's deal_id); nothing sent")
            cfg_lens = None
            if not (rec.get("lens") or {}).get("address"):  # the record names none: the network config's
                cfg_lens = load_netconfig(config or CHAIN138_CONFIG).venues.lens
            venues = Venues.from_deploy_record(rec, lens=cfg_lens)
        else:
            venues = Venues.from_netconfig(load_netconfig(config or CHAIN138_CONFIG), str(spec.vault_address))
    except InputError:
        raise
    except _NoRecordError:
        raise InputError(f"no deployment record {deployment}: deploy the vault first "
                         f"(`ape run deploy --deal {spec_path or '<spec>'}`) or pass --deployment") from None
    except (DealVaultError, KeyError) as exc:
        raise InputError(f"vault addresses: {exc}") from exc
    if venues.lens is None:
        raise InputError(f"vault {venues.vault}: no DealVaultLens: the deployment record names none and the network config has no "
                         "venues.lens (deploy one with `ape run deploy`, or set venues.lens)")
    return venues


# -- dict-shaped reads (status, scripts, tests); new code uses VaultClient's typed reads


def read_risk(w3: Web3, vault: str, block: Any = "latest", *, lens: str | None = None) -> dict[str, Any]:
    """The vault's risk view (``lens.riskView(vault)``) as a dict keyed by the Solidity field names
    (+ ``phaseName``...): :meth:`dealvault.vault.RiskView.as_dict`. ``lens``: the DealVaultLens to
    read through (default: the one its Venues named, see :func:`register_lens`)."""
    client = client_for(w3, vault, lens)
    with rpc_guard("riskView"):
        return client.risk_view(block).as_dict()


def read_params(w3: Web3, vault: str, *, lens: str | None = None) -> dict[str, Any]:
    """``lens.params(vault)``: the risk parameters now, keyed like IDealVault.RiskParams (rungs a list)."""
    client = client_for(w3, vault, lens)
    with rpc_guard("params"):
        return client.params().as_dict()


def read_twap(w3: Web3, vault: str, stable: str, *, lens: str | None = None) -> dict[str, int]:
    """``lens.twap(vault, stable)``: spotE6, twapE6, observedAt, readyAt, spotX112, twapX112."""
    client = client_for(w3, vault, lens)
    with rpc_guard("twap"):
        return dataclasses.asdict(client.twap(stable))
