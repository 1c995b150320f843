"""The deployment record: ``<deployments>/<network>/<deal-id>.json``, one per deal and network
(format ``dealvault-deployment/1``, documented key by key in deployments/README.md).

Where a record lives, reading one (a missing, unreadable or foreign file is a
:class:`DeploymentRecordError`), writing one atomically, what it holds (the transaction, the
three builds, the verification, the preflight plan, the configs, the standard-JSON input) and its
``history`` (earlier records of the deal, newest first, each with ``superseded: {at, reason}``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealvault.deploy.build import Build, hexstr
from dealvault.deploy.errors import DeploymentRecordError
from dealvault.deploy.params import DealParams
from dealvault.jsonable import jsonable
from dealvault.spec.netconfig import NetworkConfig

if TYPE_CHECKING:  # verify reads records: the types only
    from dealvault.deploy.preflight import Plan
    from dealvault.deploy.verify import VerifyReport

__all__ = [
    "RECORD_FORMAT", "Sent", "deployment_record", "jsonable", "load_record", "now", "record_path", "supersede",
    "write_record",
]

RECORD_FORMAT = "dealvault-deployment/1"


def record_path(deployments_dir: str | Path, network: str, deal_id: str) -> Path:
    return Path(deployments_dir) / network / f"{deal_id}.json"


def load_record(path: str | Path) -> dict[str, Any]:
    """A deployment record; DeploymentRecordError (item ``record``) if it cannot be read or is not one."""
    try:
        rec = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DeploymentRecordError(f"cannot read {path}: {exc.strerror or exc}", "record") from exc
    except ValueError as exc:
        raise DeploymentRecordError(f"{path} is not valid JSON: {exc}", "record") from exc
    if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
        raise DeploymentRecordError(f"{path} is not a {RECORD_FORMAT} record", "record")
    return rec


def write_record(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def now() -> str:
    """UTC now, to the second (ISO 8601)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def supersede(old: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """``old`` (without its own history) marked as superseded now, for a new record's history."""
    return {**{k: v for k, v in old.items() if k != "history"}, "superseded": {"at": now(), "reason": reason}}


def _configs_block(net: NetworkConfig, deal: DealParams) -> dict[str, Any]:
    return {
        "network": {
            "path": str(net.path) if net.path else None,
            "sha256": net.sha256 or None,
            "content": jsonable(net.raw),
        },
        "deal": {
            "path": deal.spec_path,
            "sha256": deal.spec_sha256,
            "deal_id": deal.deal_id,
            "roles": deal.roles,
            "risk": jsonable(deal.risk),
            "stablecoin": deal.stablecoin,
        },
    }


def _build_block(build: Build) -> dict[str, Any]:
    return {
        "source_key": build.source_key,
        "creation_bytecode_hash": build.creation_hash,
        "runtime_bytecode_hash": build.runtime_hash,
        "immutable_references": build.immutable_references,
        "immutable_names": build.immutable_names,
    }


@dataclass(frozen=True)
class Sent:
    """A creation transaction, mined: its hash, the receipt, the nonce it used."""

    tx_hash: bytes
    receipt: Mapping[str, Any]
    nonce: int

    @property
    def address(self) -> str:
        return str(self.receipt["contractAddress"])

    @property
    def gas_used(self) -> int:
        return int(self.receipt["gasUsed"])

    @property
    def block_number(self) -> int:
        return int(self.receipt["blockNumber"])


def deployment_record(
    *,
    net: NetworkConfig,
    deal: DealParams,
    builds: tuple[Build, Build, Build],
    plan: Plan,
    vault: Sent,
    address: str,
    block_timestamp: int,
    deployer: str,
    confirmations: int,
    verify: VerifyReport,
    lens: Mapping[str, Any],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """The record of a new deployment (``lens``: the lens's address and where it came from)."""
    build, extension_build, lens_build = builds
    identity = plan.identity
    return {
        "format": RECORD_FORMAT,
        "deal_id": deal.deal_id,
        "contract": build.contract,
        "network": {"name": net.name, "chain_id": identity.chain_id, "genesis_hash": identity.genesis_hash,
                    "genesis_accepted_by_flag": identity.genesis_accepted_by_flag},
        "address": address,
        "transaction_hash": hexstr(vault.tx_hash),
        "block_number": vault.block_number,
        "block_hash": hexstr(bytes(vault.receipt["blockHash"])),
        "block_timestamp": block_timestamp,
        "deployer": deployer,
        "nonce": vault.nonce,
        "gas_used": vault.gas_used,
        "effective_gas_price": int(vault.receipt.get("effectiveGasPrice", plan.gas_price_wei) or 0),
        "confirmations": confirmations,
        "timestamp": now(),
        "constructor_args": {"decoded": jsonable(plan.config), "raw": hexstr(plan.constructor_args)},
        "compiler": {"name": "solc", "version": build.compiler_version, "settings": build.settings},
        "source_key": build.source_key,
        "source_hash": build.source_hash,
        "creation_bytecode_hash": build.creation_hash,
        "runtime_bytecode_hash": build.runtime_hash,
        "immutable_references": build.immutable_references,
        "immutable_names": build.immutable_names,
        "immutables": verify.immutables,
        "extension": {
            "contract": extension_build.contract,
            "address": verify.extension,
            "created_by": "the vault's constructor (same transaction)",
            **_build_block(extension_build),
            "immutables": verify.extension_immutables,
            "abi": extension_build.abi,
        },
        "lens": {
            "contract": lens_build.contract,
            **lens,
            **_build_block(lens_build),
            "abi": lens_build.abi,
        },
        "verification": {"at": now(), "runtime_code": "the core, the extension and the lens match their builds (immutables masked)",
                         "params": jsonable(verify.params)},
        "preflight": plan.summary(),
        "configs": _configs_block(net, deal),
        "abi": build.abi,
        "standard_json_input": build.standard_json_input,
        "history": history,
    }
