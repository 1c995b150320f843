"""The deployment pipeline: one DealVault per deal, found or deployed, verified, recorded.

:func:`deploy_vault`: preflight (nothing is sent before it passes), deploy the lens unless the
network config names one, deploy the vault (one transaction: the core's constructor creates the
extension), wait for the confirmations, verify, write the record. Idempotent: a record for the
deal with the same builds and constructor arguments is verified on chain and nothing is sent; a
changed build or config is an error unless ``redeploy=True``, which keeps the old record under
``history``. :func:`dry_run`: the same on a throw-away anvil fork, nothing sent upstream.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import Hash32
from eth_utils.address import to_checksum_address
from web3 import Web3

from dealvault.deploy.build import Build, build_contract, companion_builds, hexstr, keccak_hex
from dealvault.deploy.errors import DeployError, DeploymentRecordError, Problem, VerificationError
from dealvault.deploy.params import DealParams, constructor_config, encode_constructor
from dealvault.deploy.preflight import Identity, Plan, check_identity, preflight
from dealvault.deploy.records import Sent, deployment_record, jsonable, load_record, record_path, supersede, write_record
from dealvault.deploy.signers import AnvilSigner, Signer
from dealvault.deploy.verify import VerifyReport, recorded_build, verify_deployment, verify_record
from dealvault.spec.netconfig import DEPLOYMENTS_DIR, NetworkConfig

__all__ = ["DeployResult", "deploy_vault", "dry_run"]


@dataclass
class DeployResult:
    status: str                      # "deployed" | "existing" | "dry-run"
    address: str
    record_path: Path | None
    record: dict[str, Any]
    plan: Plan | None = None
    gas_used: int | None = None      # the vault's creation transaction (the core creates the extension)
    seconds: float = 0.0
    verify: VerifyReport | None = None
    lens: str = ""                   # the DealVaultLens the deal reads its views through
    extension: str = ""              # vault.extension()
    lens_gas_used: int | None = None  # the lens's creation transaction (None: the config's lens, or existing)


# ---------------------------------------------------------------------------------------------
# sending


def _wait_confirmations(w3: Web3, tx_hash: bytes, confirmations: int, timeout: float, poll: float) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(Hash32(tx_hash), timeout=timeout, poll_latency=poll)
    deadline = time.monotonic() + timeout
    target = int(receipt["blockNumber"]) + max(confirmations, 1) - 1
    while int(w3.eth.block_number) < target:
        if time.monotonic() > deadline:
            raise DeployError(f"tx {hexstr(bytes(tx_hash))} mined in block {receipt['blockNumber']} but {confirmations} "
                              f"confirmations did not arrive within {timeout:.0f} s", "confirmations")
        time.sleep(poll)
    return receipt


def _send_create(w3: Web3, signer: Signer, tx: Mapping[str, Any], confs: int, timeout: float, poll: float, what: str) -> Sent:
    nonce = int(w3.eth.get_transaction_count(to_checksum_address(signer.address), "pending"))
    tx_hash = bytes(signer.send({**tx, "nonce": nonce}))
    receipt = _wait_confirmations(w3, tx_hash, confs, timeout, poll)
    if receipt["status"] != 1:
        raise DeployError(f"the {what} deployment transaction {hexstr(tx_hash)} reverted (block {receipt['blockNumber']})", "deploy")
    return Sent(tx_hash=tx_hash, receipt=receipt, nonce=nonce)


# ---------------------------------------------------------------------------------------------
# an existing record


def _existing(w3: Web3, path: Path, net: NetworkConfig, builds: tuple[Build, Build, Build],
              identity: Identity) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Look at an existing record: returns (record to keep as is, history for a new record)."""
    if not path.exists():
        return None, []
    rec = load_record(path)
    history = list(rec.get("history") or [])
    old = {k: v for k, v in rec.items() if k != "history"}
    rec_genesis = (rec.get("network") or {}).get("genesis_hash")
    if rec_genesis and rec_genesis != identity.genesis_hash:
        if net.ephemeral:  # a restarted local chain: the old record is history
            return None, [supersede(old, f"chain restarted (genesis {rec_genesis} -> {identity.genesis_hash})"), *history]
        raise DeploymentRecordError(f"{path} was made on the chain with genesis {rec_genesis}, but this node's genesis is "
                                    f"{identity.genesis_hash}", "record.network.genesis_hash")
    build = builds[0]
    try:
        if rec.get("extension") and rec.get("lens"):
            verify_record(w3, rec, builds, {}, allow_tightened=False)
        else:  # a v1 record: its own code only (the build changed: a redeploy is needed anyway)
            b = build if rec.get("runtime_bytecode_hash") == build.runtime_hash else recorded_build(rec, build.contract)
            code = bytes(w3.eth.get_code(to_checksum_address(rec["address"])))
            got = keccak_hex(b.mask(code))
            if not code or got != str(rec.get("runtime_bytecode_hash", "")).lower():
                raise VerificationError([Problem("runtime_bytecode_hash", f"the record says {rec.get('runtime_bytecode_hash')}, "
                                                 f"the code at {rec['address']} hashes to {got} (immutables masked)")], rec["address"])
    except VerificationError as exc:
        raise DeploymentRecordError(f"{path} does not match the chain (tampered, or for another chain):\n"
                                    + "\n".join(f"  - {p}" for p in exc.problems), "record") from None
    except KeyError as exc:
        raise DeploymentRecordError(f"{path} lacks {exc}", "record") from None
    return old, history


def _diff(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(before) | set(after)):
        a, b = before.get(k), after.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _diff(a, b, f"{prefix}{k}.")
        elif str(a).lower() != str(b).lower():
            out.append(f"{prefix}{k} {a} -> {b}")
    return out


def _changes(old: Mapping[str, Any], net: NetworkConfig, deal: DealParams, builds: tuple[Build, Build, Build]) -> list[str]:
    """What differs between a record and the deployment the builds, config and spec give now."""
    build, extension_build, lens_build = builds
    changes = []
    if old.get("runtime_bytecode_hash") != build.runtime_hash or old.get("creation_bytecode_hash") != build.creation_hash:
        changes.append(f"build: runtime {old.get('runtime_bytecode_hash')} -> {build.runtime_hash}")
    old_ext, old_lens = old.get("extension") or {}, old.get("lens") or {}
    if old_ext.get("runtime_bytecode_hash") != extension_build.runtime_hash:
        changes.append(f"extension build: runtime {old_ext.get('runtime_bytecode_hash')} -> {extension_build.runtime_hash}")
    if old_lens.get("runtime_bytecode_hash") != lens_build.runtime_hash:
        changes.append(f"lens build: runtime {old_lens.get('runtime_bytecode_hash')} -> {lens_build.runtime_hash}")
    # the constructor arguments this config + spec give now (needs the pool address)
    args = old.get("constructor_args", {})
    pool = net.venues.pool or (args.get("decoded", {}) or {}).get("pool")
    if net.missing_for_vault() and not pool:
        changes.append("config: incomplete now")
        return changes
    now_cfg = constructor_config(net, deal, pool or "")
    if args.get("raw") != hexstr(encode_constructor(build, now_cfg)):
        diff = _diff(args.get("decoded") or {}, jsonable(now_cfg))
        changes.append("constructor arguments: " + ("; ".join(diff) or "differ"))
    return changes


# ---------------------------------------------------------------------------------------------
# the pipeline


def deploy_vault(
    w3: Web3,
    signer: Signer,
    net: NetworkConfig,
    deal: DealParams,
    *,
    build: Build | None = None,
    extension_build: Build | None = None,
    lens_build: Build | None = None,
    deployments_dir: str | Path = DEPLOYMENTS_DIR,
    redeploy: bool = False,
    accept_genesis: str | None = None,
    confirmations: int | None = None,
    timeout: float = 600.0,
    poll: float | None = None,
    log: Callable[[str], None] | None = None,
) -> DeployResult:
    """Deploy (or find) the vault for ``deal`` on ``net``: preflight, deploy (the lens unless
    the config names one, then the vault), verify, record.

    Returns a DeployResult with ``status`` "existing" (record found and verified, nothing sent)
    or "deployed". Raises DeployError subclasses (PreflightError, DeploymentRecordError,
    VerificationError, BuildError) with the item named; nothing is sent before preflight passed.
    """
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    build = build or build_contract()
    if extension_build is None or lens_build is None:
        ext_b, lens_b = companion_builds(build)
        extension_build, lens_build = extension_build or ext_b, lens_build or lens_b
    builds = (build, extension_build, lens_build)
    path = record_path(deployments_dir, net.name, deal.deal_id)
    identity = check_identity(w3, net, accept_genesis)
    old, history = _existing(w3, path, net, builds, identity)

    if old is not None:
        changes = _changes(old, net, deal, builds)
        old_lens = old.get("lens") or {}
        if not changes:
            say(f"{deal.deal_id}: recorded at {old['address']} (lens {old_lens.get('address')}) with the same build and config; verifying")
            report = verify_record(w3, old, builds, old["constructor_args"]["decoded"], allow_tightened=True)
            if net.venues.lens is not None and net.venues.lens != old_lens.get("address"):
                report.notes.append(f"the network config names the lens {net.venues.lens}; this deal's record keeps its own "
                                    f"{old_lens.get('address')} (any DealVaultLens serves any vault)")
            return DeployResult("existing", old["address"], path, {**old, "history": history}, None, None,
                                time.perf_counter() - t0, report, lens=report.lens, extension=report.extension)
        if not redeploy:
            raise DeploymentRecordError(
                f"{path} records {deal.deal_id} at {old['address']}, but " + " and ".join(changes)
                + " changed; pass --redeploy (redeploy=True) to deploy a new vault and keep the old record under history",
                "record")
        history = [supersede(old, "; ".join(changes)), *history]

    plan = preflight(w3, net, deal, build, signer.address, accept_genesis=accept_genesis, extension_build=extension_build,
                     lens_build=lens_build)
    say(f"{deal.deal_id}: preflight passed ({len(plan.checks)} checks); deploying, ~{plan.gas_estimate} gas"
        + (f" + the lens ~{plan.lens_gas_estimate} gas" if plan.lens_tx is not None else f" (lens {plan.lens} from the network config)"))
    confs = confirmations if confirmations is not None else max(net.confirmations, deal.confirmations, 1)
    poll = poll if poll is not None else (0.05 if net.ephemeral else 1.0)

    lens_gas = None
    if plan.lens_tx is not None:
        sent = _send_create(w3, signer, plan.lens_tx, confs, timeout, poll, "lens")
        lens = to_checksum_address(sent.address)
        lens_gas = sent.gas_used
        say(f"{deal.deal_id}: lens deployed at {lens} in block {sent.block_number} ({lens_gas} gas)")
        lens_block: dict[str, Any] = {"address": lens, "source": "deployed", "transaction_hash": hexstr(sent.tx_hash),
                                      "block_number": sent.block_number, "nonce": sent.nonce, "gas_used": lens_gas}
    else:
        lens = to_checksum_address(str(plan.lens))
        lens_block = {"address": lens, "source": f"network config venues.lens ({net.path or net.name})"}

    vault = _send_create(w3, signer, plan.tx, confs, timeout, poll, "vault")
    address = to_checksum_address(vault.address)
    say(f"{deal.deal_id}: deployed at {address} in block {vault.block_number} ({vault.gas_used} gas)")

    report = verify_deployment(w3, address, build, plan.config, lens=lens, extension_build=extension_build, lens_build=lens_build)
    block = w3.eth.get_block(vault.block_number)
    record = deployment_record(net=net, deal=deal, builds=builds, plan=plan, vault=vault, address=address,
                               block_timestamp=int(block["timestamp"]), deployer=signer.address, confirmations=confs,
                               verify=report, lens=lens_block, history=history)
    write_record(path, record)
    say(f"{deal.deal_id}: recorded {path}")
    return DeployResult("deployed", address, path, record, plan, vault.gas_used, time.perf_counter() - t0, report,
                        lens=lens, extension=report.extension, lens_gas_used=lens_gas)


# ---------------------------------------------------------------------------------------------
# dry run on a throw-away fork


def dry_run(
    upstream: Web3,
    upstream_url: str,
    net: NetworkConfig,
    deal: DealParams,
    deployer: str,
    *,
    build: Build | None = None,
    deployments_dir: str | Path = DEPLOYMENTS_DIR,
    redeploy: bool = False,
    accept_genesis: str | None = None,
    log: Callable[[str], None] | None = None,
) -> DeployResult:
    """The whole pipeline on a throw-away anvil fork of ``upstream_url``; nothing is sent upstream.

    Preflight runs read-only against the upstream itself (so the opcode probe asks the real
    chain), then deploy + verify + record run on the fork as ``deployer`` (impersonated), with
    the records copied to a temporary folder. Returns the fork's DeployResult (status
    "dry-run", or "existing" when the real record would make it a no-op)."""
    from dealvault.kit.anvil import start_anvil

    build = build or build_contract()
    existing = record_path(deployments_dir, net.name, deal.deal_id)
    if not (existing.exists() and not redeploy):
        preflight(upstream, net, deal, build, deployer, accept_genesis=accept_genesis)
    with tempfile.TemporaryDirectory(prefix="dealvault-dryrun-") as tmp:
        tmp_dir = Path(tmp)
        if existing.exists():
            dest = record_path(tmp_dir, net.name, deal.deal_id)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(existing, dest)
        node = start_anvil(chain_id=net.chain_id, fork_url=upstream_url)
        try:
            fw3 = node.web3()
            signer = AnvilSigner(fw3, deployer, impersonate=True)
            res = deploy_vault(fw3, signer, net, deal, build=build, deployments_dir=tmp_dir, redeploy=redeploy,
                               accept_genesis=accept_genesis, confirmations=1, poll=0.05, log=log)
        finally:
            node.stop()
    if res.status == "deployed":
        res.status = "dry-run"
    res.record_path = None
    return res
