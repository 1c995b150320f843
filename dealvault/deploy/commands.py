"""What ``ape run deploy`` and ``ape run verify_deployment`` do, without click: load the deal spec
and the network config, run the pipeline (or a dry run, or a re-verification), print the outcome
as JSON, and return the exit code of :class:`dealvault.errors.ExitCode` (0 done; 1 a verification
mismatch; 2 bad input, a refused preflight or a bad record, each naming its item; nothing sent).
The scripts in ``scripts/`` only parse their flags and call :func:`deploy_command` /
:func:`verify_command`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from web3 import Web3

from dealvault.accounts import ape_account, unlock_for_signing
from dealvault.cli import provider_url
from dealvault.deploy.build import Build, build_contract
from dealvault.deploy.errors import DeployError, DeploymentRecordError
from dealvault.deploy.params import deal_params
from dealvault.deploy.pipeline import deploy_vault, dry_run
from dealvault.deploy.records import record_path
from dealvault.deploy.signers import ApeSigner, Signer
from dealvault.deploy.verify import reverify
from dealvault.errors import DealVaultError, ExitCode
from dealvault.jsonable import jsonable
from dealvault.spec import load_spec
from dealvault.spec.netconfig import DEPLOYMENTS_DIR, config_for_network, load_netconfig

__all__ = ["deploy_command", "run_deploy", "run_verify", "verify_command"]

Say = Callable[[str], None]


def run_deploy(
    w3: Web3,
    *,
    deal_path: str | Path,
    config_path: str | Path,
    signer: Signer | None = None,
    deployer: str | None = None,
    upstream_url: str | None = None,
    dry: bool = False,
    redeploy: bool = False,
    accept_genesis: str | None = None,
    deployments_dir: str | Path = DEPLOYMENTS_DIR,
    resolver: Callable[[str], str] | None = None,
    build: Build | None = None,
    out: Say = print,
    err: Say = print,
) -> int:
    """`ape run deploy` without ape: load the spec and config, run the pipeline (or a dry run),
    print the outcome; returns the exit code (0, or the error's: 2 with a message naming the item)."""
    try:
        net = load_netconfig(config_path)
        deal = deal_params(load_spec(deal_path), resolver=resolver, path=deal_path)
        if dry:
            who = deployer or (signer.address if signer else None)
            if who is None or upstream_url is None:
                raise DeployError("a dry run needs the deployer address and the upstream RPC URL", "dry-run")
            res = dry_run(w3, upstream_url, net, deal, who, build=build, deployments_dir=deployments_dir,
                          redeploy=redeploy, accept_genesis=accept_genesis, log=err)
        else:
            if signer is None:
                raise DeployError("no signer (--account)", "account")
            res = deploy_vault(w3, signer, net, deal, build=build, deployments_dir=deployments_dir, redeploy=redeploy,
                               accept_genesis=accept_genesis, log=err)
    except DealVaultError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    summary: dict[str, Any] = {
        "status": res.status, "deal_id": deal.deal_id, "network": net.name, "address": res.address,
        "record": str(res.record_path) if res.record_path else None, "gas_used": res.gas_used,
        "extension": res.extension or None, "lens": res.lens or None, "lens_gas_used": res.lens_gas_used,
        "seconds": round(res.seconds, 3),
    }
    if res.plan is not None:
        summary["plan"] = res.plan.summary()
    if res.verify is not None and res.verify.notes:
        summary["notes"] = res.verify.notes
    out(json.dumps(summary, indent=2))
    return ExitCode.OK


def run_verify(w3: Web3, *, record_file: str | Path, build: Build | None = None, out: Say = print, err: Say = print) -> int:
    """`ape run verify_deployment`: 0 verified, 1 mismatch (listed), 2 no/bad record."""
    try:
        report = reverify(w3, record_file, build=build)
    except DealVaultError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    out(json.dumps({"verified": True, "address": report.address, "runtime_bytecode_hash": report.code_hash,
                    "extension": report.extension, "extension_runtime_bytecode_hash": report.extension_code_hash,
                    "lens": report.lens, "lens_runtime_bytecode_hash": report.lens_code_hash,
                    "params": jsonable(report.params), "notes": report.notes}, indent=2))
    return ExitCode.OK


def deploy_command(
    provider: Any,
    account: Any,
    *,
    deal_path: Path,
    config_path: Path | None = None,
    deployments_dir: Path = DEPLOYMENTS_DIR,
    dry: bool = False,
    redeploy: bool = False,
    accept_genesis: str | None = None,
    out: Say = print,
    err: Say = print,
) -> int:
    """``ape run deploy`` on ape's connected ``provider``, signed (or, dry, impersonated) as
    ``account``; roles given as ``alias:NAME`` resolve through ape's accounts."""
    w3 = provider.web3
    if not dry:
        try:
            unlock_for_signing(account)  # a keystore account signs unattended (passphrase once)
        except DealVaultError as exc:
            err(f"error: {exc}")
            return exc.exit_code
    return run_deploy(
        w3,
        deal_path=deal_path,
        config_path=config_path or config_for_network(provider.network.name),
        signer=None if dry else ApeSigner(account, w3),
        deployer=str(account.address),
        upstream_url=provider_url(provider),
        dry=dry,
        redeploy=redeploy,
        accept_genesis=accept_genesis,
        deployments_dir=deployments_dir,
        resolver=lambda alias: str(ape_account(alias).address),
        out=out,
        err=err,
    )


def verify_command(
    provider: Any,
    *,
    deal: str | None = None,
    record: Path | None = None,
    config_path: Path | None = None,
    deployments_dir: Path = DEPLOYMENTS_DIR,
    out: Say = print,
    err: Say = print,
) -> int:
    """``ape run verify_deployment``: the record given, or the deal's (by id or spec) under the
    network config's name in ``deployments_dir``."""
    try:
        if record is None:
            if not deal:
                raise DeployError("give the deal (--deal <id or spec>) or the record (--record <file>)", "deal")
            net = load_netconfig(config_path or config_for_network(provider.network.name))
            deal_id = load_spec(deal).deal_id if deal.endswith((".yaml", ".yml")) else deal
            record = record_path(deployments_dir, net.name, deal_id)
            if not record.exists():
                raise DeploymentRecordError(f"no deployment record {record}", "record")
    except DealVaultError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    try:
        current = build_contract()  # the working tree's build: a byte-for-byte check when it is the recorded one
    except DealVaultError as exc:
        err(f"note: no current build ({exc}); checking against the record's hashes only")
        current = None
    return run_verify(provider.web3, record_file=record, build=current, out=out, err=err)
